"""`oak bench cost`: the training throughput of every run a profile plans, measured on this device.

The report turns these into the compute each study needs (throughput x epochs x dataset size),
one column per device measured: run the command on a machine to add its column. Each run is
timed as it would train: its model, resolution, per-device batch, precision and memory format,
with the recipe's optimizer, on random tensors (data loading excluded: a loader that keeps up is
assumed, which the README's loader benchmark checks). Warm-up steps are left out of the timing.
Where the recipe's batch does not fit in the GPU's memory, the batch is halved until it does.
"""

import json
import re
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from timm.optim import create_optimizer_v2

from oak.bench.infer import device_name, synchronize
from oak.files import write_json
from oak.models import create_model

CLASSES = 1000  # ImageNet's
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def training_throughput(
    config: DictConfig, model: str, precision: str, *, batch_size: int, device: torch.device, steps: int, warmup: int
) -> float:
    """Images/s of forward, loss, backward and optimizer step for `model` under `config`'s recipe."""
    recipe = config.train
    net = create_model(model, num_classes=CLASSES, drop_rate=recipe.drop_rate, drop_path_rate=recipe.drop_path_rate).to(device).train()
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = create_optimizer_v2(net, opt=recipe.optimizer, lr=recipe.lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum)
    images = torch.randn(batch_size, 3, recipe.image_size, recipe.image_size, device=device).to(memory_format=memory_format)
    targets = torch.randint(0, CLASSES, (batch_size,), device=device)
    # float16 needs a loss scaler, as Lightning's 16-mixed uses
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=AUTOCAST.get(precision), enabled=precision in AUTOCAST):
            loss = torch.nn.functional.cross_entropy(net(images), targets, label_smoothing=recipe.label_smoothing)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch_size * steps / (time.perf_counter() - start)


def measure_run(config: DictConfig, model: str, *, device: torch.device, batch_size: int | None, steps: int, warmup: int) -> dict:
    """The run's throughput at the recipe's batch (at most `batch_size`), halving it while the GPU runs out of memory.

    On a CPU the precision is 32-bit: mixed precision is a GPU recipe's setting.
    """
    batch = recipe_batch = min(batch_size or config.train.batch_size, config.train.batch_size)
    precision = config.trainer.precision if device.type == "cuda" else "32-true"
    while True:
        try:
            rate = training_throughput(config, model, precision, batch_size=batch, device=device, steps=steps, warmup=warmup)
            break
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
    return {
        "model": model,
        "recipe": config.recipe,
        "image_size": config.train.image_size,
        "batch_size": batch,
        **({"batch_limited_by": "memory"} if batch < recipe_batch else {}),
        "precision": precision,
        "channels_last": config.train.channels_last,
        "epochs": config.train.epochs,
        "images_per_second": round(rate, 2),
    }


def device_slug(device: torch.device) -> str:
    """A file name for the device: "NVIDIA H200" -> "nvidia-h200"."""
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def bench_cost(
    runs: dict[str, tuple[str, DictConfig]],
    out: Path,
    *,
    device: torch.device,
    batch_size: int | None,
    steps: int,
    warmup: int,
) -> dict:
    """Each run's throughput on `device`, from `runs`: name -> (model, resolved config).

    The runs already in `out` are kept, each until it is measured again (hours of GPU time, which a second
    measurement cut short must not lose); `out` is rewritten after each run, so a measurement cut short keeps
    the runs it finished. A kept entry whose settings the plan has since changed is shown as stale.
    """
    kept = json.loads(out.read_text())["runs"] if out.exists() else {}
    # what a reader compares each entry's settings with (oak.studies.binding): where the device, or the cap, sets them
    result = {"device": device_name(device), "device_kind": device.type, "batch_size_cap": batch_size, "torch": torch.__version__}
    result |= {"steps": steps, "warmup": warmup, "runs": kept}
    for name, (model, config) in runs.items():
        result["runs"][name] = measure_run(config, model, device=device, batch_size=batch_size, steps=steps, warmup=warmup)
        print(f"{name}: {result['runs'][name]}", flush=True)
        write_json(out, result)
    return result
