"""Values the schema's types admit but no training can use: one error naming the key and the fix."""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from oak.errors import OakError

SCHEDULES = ("cosine", "step", "poly")
# Lightning's precision names (its aliases "16", "bf16", "32" and "64" too)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "transformer-engine", "16", "bf16", "32", "64")
INTERPOLATIONS = ("bilinear", "bicubic")
EVAL_CROPS = (1, 10)
DECODES = ("auto", "loader", "device")


def check_values(config: DictConfig) -> None:
    """Values the schema's types admit but no training can use: one error naming the key and the fix."""
    train = config.train
    problems = {
        "train.epochs": (train.epochs >= 1, "train at least 1 epoch"),
        "train.batch_size": (train.batch_size >= 1, "use a batch of at least 1 image per device"),
        "train.lr_batch_size": (
            train.lr_batch_size is None or train.lr_batch_size >= 1,
            "the batch the lr is for must be at least 1 image (null: the lr as given)",
        ),
        "train.schedule": (train.schedule in SCHEDULES, f"use one of {', '.join(SCHEDULES)}"),
        "train.interpolation": (train.interpolation in INTERPOLATIONS, f"use one of {', '.join(INTERPOLATIONS)}"),
        "train.eval_crops": (train.eval_crops in EVAL_CROPS, "use 1 (centre crop) or 10 (corners, centre and mirrors)"),
        "train.eval_crop_pct": (0 < train.eval_crop_pct <= 1, "use a fraction in (0, 1]"),
        "train.mean": (len(train.mean) == 3 and len(train.std) == 3, "give 3 values (R, G, B) for mean and std"),
        "train.aux_loss_weight": (train.aux_loss_weight >= 0, "use 0 (no auxiliary classifier) or a positive weight"),
        "trainer.precision": (config.trainer.precision in PRECISIONS, f"use one of {', '.join(PRECISIONS[:6])}"),
        "trainer.devices": (
            _valid_devices(config.trainer.devices),
            "use a count (2), -1 or auto for all, or device indices (0,1 or [0, 1])",
        ),
        "train.optimizer": (_known_optimizer(train.optimizer), "use a timm optimizer name, e.g. sgd, momentum, rmsproptf, adamw"),
        "train.auto_augment": (
            _known_policy(train.auto_augment),
            "use a timm policy, e.g. rand-m9-mstd0.5, v0r or augmix-m5-w4-d2, or null",
        ),
        "train.decode": (train.decode in DECODES, f"use one of {', '.join(DECODES)}"),
        "train.num_workers": (train.num_workers is None or train.num_workers >= 0, "use 0 (the training process reads), more, or null"),
        "train.cpu_threads": (train.cpu_threads is None or train.cpu_threads >= 1, "use 1 or more threads, or null (one per core)"),
        "train.bn_momentum": (
            train.bn_momentum is None or 0 <= train.bn_momentum <= 1,
            "use PyTorch's convention, in [0, 1] (TensorFlow's 0.99 is 0.01)",
        ),
    }
    for key, (valid, fix) in problems.items():
        if not valid:
            raise OakError(f"{key}={OmegaConf.select(config, key)}: {fix}")
    if train.decode == "device" and train.auto_augment:
        raise OakError(
            f"train.decode=device: train.auto_augment={train.auto_augment} runs on Pillow images only; "
            "use train.decode=loader or auto (which decodes such recipes in the loader)"
        )
    if train.bn_momentum == 1 and not train.ema_decay:
        raise OakError(
            "train.bn_momentum=1 keeps only the last batch's BatchNorm statistics; "
            "set train.ema_decay to average them (as ResNet-RS does) or use a momentum below 1"
        )


def _valid_devices(devices: Any) -> bool:
    if isinstance(devices, int) or OmegaConf.is_list(devices):
        return all(isinstance(index, int) for index in (devices if OmegaConf.is_list(devices) else [devices]))
    text = str(devices).strip()
    return text == "auto" or text == "-1" or all(part.strip().isdigit() for part in text.split(","))


def _known_optimizer(name: str) -> bool:
    from timm.optim import list_optimizers

    return name.lower() in list_optimizers()


def _known_policy(policy: str | None) -> bool:
    """Whether timm builds `policy` (create_transform's dispatch: rand-*, augmix-*, else an AutoAugment policy)."""
    if not policy:
        return True
    from timm.data import auto_augment

    build = {"rand": auto_augment.rand_augment_transform, "augmix": auto_augment.augment_and_mix_transform}
    try:
        build.get(policy.split("-")[0], auto_augment.auto_augment_transform)(policy, {})
    except Exception:  # timm says "Unknown ..." by AssertionError, KeyError or ValueError, depending on the part
        return False
    return True
