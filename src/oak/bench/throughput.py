"""`oak bench throughput`: does the data path keep the device busy? Oak's training end to end beside
the model alone, measured in one run.

For each model, at the given resolution and precision, with the ResNet recipe's augmentation (He et
al. 2016 as pipelines/recipes/resnet_he2016.yaml gives it: random-resized crops, flips, colour
jitter 0.4), on generated ImageNet-sized JPEGs (oak.preparing.fullsize):
- model_only: the training step (forward, loss, backward, update) on a batch already on the device,
  the ceiling (oak.bench.cost.training_throughput);
- end_to_end: `oak train` decoding on the device (train.decode=device), images/s of its last epoch as
  the training logs it (train/images_per_second: the epoch's images over its wall time, loader
  workers' start and the small validation included);
- loader_path: the same with decoding in the loader workers (train.decode=loader).
Loader workers: the node's cores (train.num_workers: null). Writes metrics/devices/<device>/throughput.json.
"""

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from oak.bench.cost import training_throughput
from oak.bench.infer import device_name
from oak.config.load import load_config
from oak.errors import OakError
from oak.files import write_json
from oak.preparing.fullsize import fullsize_shards

RECIPE = "resnet_he2016"
CLASSES = 100
VAL_IMAGES = 32  # validation runs inside each timed epoch: kept small


def bench_throughput(
    params: Path, out: Path, *, models: list[str], device: torch.device, batch_size: int, image_size: int, images: int, epochs: int
) -> dict:
    precision = "bf16-mixed" if device.type == "cuda" else "32-true"
    settings = [f"recipe={RECIPE}", f"train.image_size={image_size}", f"train.batch_size={batch_size}", f"trainer.precision={precision}"]
    result = {"device": device_name(device), "torch": torch.__version__, "recipe": RECIPE, "images": images, "models": {}}
    with tempfile.TemporaryDirectory(prefix="oak-throughput-") as folder:
        per_class = max(1, images // CLASSES)
        train = dict.fromkeys(range(CLASSES), per_class)
        shards = fullsize_shards(Path(folder), train=train, val={0: VAL_IMAGES}, samples_per_shard=max(8, per_class * CLASSES // 64))
        for model in models:
            config = load_config(params, settings)
            ceiling = training_throughput(config, model, precision, batch_size=batch_size, device=device, steps=20, warmup=5)
            measured = {"batch": batch_size, "precision": precision, "image_size": image_size, "model_only": round(ceiling, 1)}
            for path, key in (("device", "end_to_end"), ("loader", "loader_path")):
                run = Path(folder) / f"{model}-{path}"
                overrides = [*settings, f"train.decode={path}", f"train.epochs={epochs}", *_on(device), *_into(run, shards)]
                measured[key] = round(_oak_train(params, model, overrides, run), 1)
            measured["end_to_end_of_model_only"] = round(measured["end_to_end"] / ceiling, 3)
            measured["device_path_over_loader_path"] = round(measured["end_to_end"] / measured["loader_path"], 3)
            result["models"][model] = measured
            print(f"{model}: {measured}", flush=True)
            write_json(out, result)  # after each model, so that a measurement cut short keeps the ones it finished
    return result


def _on(device: torch.device) -> list[str]:
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    return [f"trainer.accelerator={accelerator}", "trainer.devices=1", "trainer.enable_progress_bar=false"]


def _into(run: Path, shards: Path) -> list[str]:
    return [f"paths.shards={shards}", f"paths.checkpoints={run / 'models'}", f"paths.metrics={run / 'metrics'}"] + [
        f"tracking.uri=sqlite:///{run / 'mlflow.db'}",
        "tracking.experiment=oak-throughput",
    ]


def _oak_train(params: Path, model: str, overrides: list[str], run: Path) -> float:
    """`oak train` as the pipeline runs it; its last epoch's images/s."""
    run.mkdir(parents=True)
    command = [sys.executable, "-m", "oak.cli", "--params", str(params.resolve()), "train", model, *overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise OakError(f"oak train {model} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    with (run / "metrics" / "curves" / f"{model}.csv").open() as curves:
        return float(list(csv.DictReader(curves))[-1]["train/images_per_second"])
