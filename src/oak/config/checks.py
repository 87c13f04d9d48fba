"""Values the schema's types admit but no training can use: one error naming the key and the fix."""

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oak.errors import OakError

SCHEDULES = ("cosine", "step", "poly")
# Lightning's precision names (its aliases "16", "bf16", "32" and "64" too)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "transformer-engine", "16", "bf16", "32", "64")
INTERPOLATIONS = ("bilinear", "bicubic")
EVAL_CROPS = (1, 10)
DECODES = ("auto", "loader", "device")
SEEDS = 2**32  # Lightning's seed_everything and NumPy take seeds in [0, 2**32)


@dataclass(frozen=True)
class Range:
    """The values a numeric setting takes: from `low` to `high`, each bound itself included unless `open` names it;
    finite. A null passes where the schema allows one; a list's values are each checked."""

    low: float
    high: float = math.inf
    why: str = ""  # what the value means or what goes wrong outside, where the bounds alone do not say
    open: tuple[str, ...] = ()  # "low", "high": the bounds the values stay strictly within

    def admits(self, value: float) -> bool:
        above = self.low < value if "low" in self.open else self.low <= value
        below = value < self.high if "high" in self.open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        low, high = _number(self.low), ("below " if "high" in self.open else "") + _number(self.high)
        if self.high == math.inf:
            return f"a value above {low}" if "low" in self.open else f"{low} or more"
        if "low" in self.open:
            return f"a value above {low} and {high if 'high' in self.open else 'at most ' + high}"
        return f"a value from {low} to {high}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


POSITIVE = Range(0, open=("low",))
COUNT = Range(1)
FRACTION = Range(0, 1)
BELOW_ONE = Range(0, 1, open=("high",))

# Every numeric setting of the schema (a test keeps this complete), checked as the config is loaded, before anything
# is written: a value outside crashes later with a traceback, or trains to NaN.
RANGES: dict[str, Range] = {
    "seed": Range(0, SEEDS - 1),
    "demo.classes": Range(2),  # the most is the number of kinds of picture, which oak.preparing.demo checks
    "demo.train_per_class": COUNT,
    "demo.val_per_class": COUNT,
    "demo.image_size": COUNT,
    "demo.seed": Range(0, SEEDS - 1),
    "prepare.samples_per_shard": COUNT,
    "prepare.seed": Range(0, SEEDS - 1),
    "prepare.workers": COUNT,
    "prepare.resize_short_side": COUNT,
    "prepare.resize_quality": Range(1, 100),
    "prepare.cap_long_side": COUNT,
    "train.epochs": COUNT,
    "train.batch_size": COUNT,  # 1 trains where no BatchNorm sees a 1x1 feature map (oak.training.classifier says so)
    "train.lr": POSITIVE,
    "train.lr_batch_size": Range(1, why="the global batch the lr is for; null: the lr as given"),
    "train.reference_batch_size": Range(1, why="the source's global batch; null: none stated"),
    "train.momentum": BELOW_ONE,
    "train.optimizer_eps": Range(0, why="null: the optimizer's default", open=("low",)),
    "train.weight_decay": Range(0),
    "train.warmup_epochs": Range(0),
    "train.min_lr": Range(0),
    "train.decay_epochs": POSITIVE,
    "train.decay_rate": POSITIVE,
    "train.label_smoothing": BELOW_ONE,
    "train.drop_rate": BELOW_ONE,
    "train.drop_path_rate": BELOW_ONE,
    "train.aux_loss_weight": Range(0, why="0: no auxiliary classifier"),
    "train.bn_momentum": Range(0, 1, why="PyTorch's convention: TensorFlow's 0.99 is 0.01"),
    "train.bn_eps": Range(0, why="null: the model's", open=("low",)),
    "train.ema_decay": Range(0, 1, why="null: no EMA", open=("high",)),
    "train.image_size": COUNT,
    "train.eval_image_size": Range(1, why="null: train.image_size"),
    "train.progressive_min_size": Range(1, why="the first epochs' training size; null: every epoch at train.image_size"),
    "train.progressive_start_epoch": Range(0),
    "train.progressive_end_epoch": Range(0),
    "train.eval_crop_pct": Range(0, 1, why="null: the train.eval_crop_padding rule", open=("low",)),
    "train.eval_crop_padding": Range(0, why="pixels; null: train.eval_crop_pct as given"),
    "train.mean": FRACTION,
    "train.std": Range(0, 1, why="the images are divided by it", open=("low",)),
    "train.scale_min": Range(0, 1, open=("low",)),
    "train.hflip": FRACTION,
    "train.color_jitter": Range(0),
    "train.mixup_alpha": Range(0),
    "train.cutmix_alpha": Range(0),
    "train.random_erasing": FRACTION,
    "train.cpu_threads": Range(1, why="threads; null: one per core"),
    "train.checkpoint_every_n_steps": Range(1, why="null: at the end of each epoch only"),
    "train.num_workers": Range(0, why="0: the training process reads"),
    "train.shuffle_buffer": Range(0, why="0 or 1: no shuffling"),
    "train.global_batch_size": COUNT,  # resolved (oak.config.resolve)
    "train.ema_decay_per_update": Range(0, 1, open=("high",)),  # resolved (oak.config.resolve)
    "trainer.num_nodes": COUNT,
    "trainer.accumulate_grad_batches": COUNT,
    "trainer.gradient_clip_val": Range(0, why="null: no clipping", open=("low",)),
    "trainer.log_every_n_steps": COUNT,
    "evaluate.batch_size": COUNT,
    "evaluate.num_workers": Range(0, why="0: the evaluating process reads"),
    "tracking.patience_seconds": Range(0),
    "cluster.cpus_per_task": COUNT,
    "bench.g1_rounds": COUNT,
}


def check_values(config: DictConfig) -> None:
    """Values the schema's types admit but no training can use: one error naming the key and the fix."""
    for key, valid in RANGES.items():
        value = OmegaConf.select(config, key)
        if value is not None and not all(valid.admits(item) for item in (value if OmegaConf.is_list(value) else [value])):
            raise OakError(f"{key}={value}: use {valid}" + (f" ({valid.why})" if valid.why else ""))
    train = config.train
    problems = {
        "train.schedule": (train.schedule in SCHEDULES, f"use one of {', '.join(SCHEDULES)}"),
        "train.interpolation": (train.interpolation in INTERPOLATIONS, f"use one of {', '.join(INTERPOLATIONS)}"),
        "train.eval_crops": (train.eval_crops in EVAL_CROPS, "use 1 (centre crop) or 10 (corners, centre and mirrors)"),
        "train.mean": (len(train.mean) == 3 and len(train.std) == 3, "give 3 values (R, G, B) for mean and std"),
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
        "trainer.limit_train_batches": (
            _valid_batch_limit(config.trainer.limit_train_batches),
            "use a count of batches (1 or more) or a fraction of the epoch above 0 and at most 1.0",
        ),
        "prepare.classes": (
            _valid_class_choice(config.prepare.classes),
            "use null (all), a count of 1 or more, or a list of WordNet IDs",
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
    if train.progressive_min_size is not None and not (
        train.progressive_min_size <= train.image_size and train.progressive_start_epoch <= train.progressive_end_epoch
    ):
        raise OakError(
            f"train.progressive_min_size={train.progressive_min_size}, progressive_start_epoch={train.progressive_start_epoch}, "
            f"progressive_end_epoch={train.progressive_end_epoch}: the size rises from progressive_min_size to "
            f"train.image_size={train.image_size}; use a progressive_min_size at most train.image_size and a start epoch at most the end epoch"
        )
    if train.optimizer.lower() in ("sgd", "nesterov") and train.momentum == 0:
        raise OakError(
            f"train.momentum=0: train.optimizer={train.optimizer} is Nesterov SGD, which needs a momentum; "
            "use train.optimizer=momentum for plain SGD"
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


def _valid_batch_limit(limit: Any) -> bool:
    """Lightning's limit_train_batches: a count of batches, or a fraction of the epoch (0 would train nothing)."""
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        return False
    return limit >= 1 if isinstance(limit, int) else 0 < limit <= 1


def _valid_class_choice(classes: Any) -> bool:
    return classes is None or OmegaConf.is_list(classes) or (isinstance(classes, int) and not isinstance(classes, bool) and classes >= 1)


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
