"""Settings derived from the others as the config loads, written into it: MLflow's params, the run's
config.yaml and the settings fingerprint then show what the run does, not only what it was asked.

- `train.global_batch_size`: the images of one optimizer update, over every device and accumulated batch.
- `train.ema_decay_per_update`: the recipe's EMA decay is per update at its source's global batch
  (`reference_batch_size`). An EMA of decay d averages about 1 / (1 - d) updates; at a global batch k times
  smaller a run makes k times more updates per epoch, so d^(1/k) keeps the average over the same epochs
  (ResNet-RS's 0.9999 at 4096: about 32 epochs; at 128 per update unscaled, about one). TensorFlow's warm-up
  of the decay, min(d, (1 + n) / (10 + n)), then reaches the scaled decay k times more updates later: the
  same epoch.
- `train.eval_crop_pct` from `eval_crop_padding`, where a recipe gives the crop as a padding rule.
"""

from omegaconf import DictConfig, OmegaConf

from oak.errors import OakError

RESOLVED = ("global_batch_size", "ema_decay_per_update")


def resolve(config: DictConfig) -> None:
    """Fill in the resolved keys of `config` (checked, still writable)."""
    train = config.train
    for key in RESOLVED:
        if train[key] is not None:
            raise OakError(f"train.{key}={train[key]}: Oak resolves it from the other settings; set those instead (see src/oak/config/resolve.py)")
    train.global_batch_size = global_batch_size(config)
    if train.ema_decay:
        train.ema_decay_per_update = per_update_decay(train.ema_decay, train.reference_batch_size, train.global_batch_size)
    train.eval_crop_pct = eval_crop_fraction(train)


def global_batch_size(config: DictConfig) -> int:
    trainer = config.trainer
    return config.train.batch_size * devices_per_node(trainer.devices, trainer.accelerator) * trainer.num_nodes * trainer.accumulate_grad_batches


def devices_per_node(devices: object, accelerator: str) -> int:
    """How many devices Lightning trains on per node for `trainer.devices` (already checked by oak.config.checks)."""
    if OmegaConf.is_list(devices) or isinstance(devices, list):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):  # every visible GPU, or one CPU process, as Lightning counts them
        return _visible_gpus(accelerator) or 1
    if "," in text:  # device indices, e.g. "0,1"
        return len([index for index in text.split(",") if index.strip()])
    return int(text)


def _visible_gpus(accelerator: str) -> int:
    if accelerator not in ("auto", "gpu", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count()


def per_update_decay(decay: float, reference_batch_size: int | None, global_batch_size: int) -> float:
    """`decay` per update at `reference_batch_size`, as the same average over epochs at `global_batch_size`."""
    return decay if reference_batch_size is None else decay ** (global_batch_size / reference_batch_size)


def eval_crop_fraction(train: DictConfig) -> float:
    """`eval_crop_pct`, or eval size / (eval size + eval_crop_padding) where the recipe gives the padding rule."""
    padding, fraction = train.eval_crop_padding, train.eval_crop_pct
    if padding is None and fraction is None:
        raise OakError("train.eval_crop_pct=null: give a crop fraction, or the padding rule with train.eval_crop_padding")
    if padding is None:
        return fraction
    if fraction is not None:
        raise OakError(
            f"train.eval_crop_pct={fraction} and train.eval_crop_padding={padding} both set the evaluation crop; "
            "set train.eval_crop_pct=null to use the padding rule, or train.eval_crop_padding=null to use the fraction"
        )
    size = train.eval_image_size or train.image_size
    return size / (size + padding)


def batch_note(train: DictConfig) -> str | None:
    """A line saying how the run's global batch differs from its source's and what Oak scaled, or None where it does not."""
    reference, actual = train.reference_batch_size, train.global_batch_size
    if reference is None or reference == actual:
        return None
    scaled = ["lr" + (f" scaled linearly from its value at {train.lr_batch_size}" if train.lr_batch_size else " as given, unscaled")]
    if train.ema_decay:
        scaled.append(f"EMA decay per update {train.ema_decay} -> {train.ema_decay_per_update:.8f}")
    return f"global batch {actual}, the source's is {reference}: " + "; ".join(scaled)
