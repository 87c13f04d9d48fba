"""What a committed measurement was measured with, so that it is shown only while the plan still asks for that.

Measurements made once and committed (`oak smoke`'s record, `oak bench cost` on each device) outlive the
settings they were taken with: a recipe's batch, a study's epochs or a run's resolution may change
after. Each entry therefore records what it measured, and readers compare it with what the plan gives
the run now:

- a smoke test exercises what a training builds and runs: the model, its modules, the data pipeline, the
  optimizer, the precision, the batch and its memory. It is bound to those (`smoke_fingerprint`): to the run's
  resolved settings less what the smoke test replaces (`SMOKE_REPLACED`: their length) and less the numbers
  that change no module, tensor shape or code path (`SMOKE_INDIFFERENT`: a learning rate, a decay, a crop
  fraction, a RandAugment magnitude); where a number's being zero or null switches a part off, only whether
  it is on counts (`SMOKE_SWITCHES`). Runs alike in this train alike in it, so one smoke test stands for them all;
- a throughput measurement depends on what each step computes and how many there are, so it is bound
  to those settings only (`COST_SETTINGS`): a change of learning rate keeps it, a change of batch does not.
"""

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from oak.config.schema import DECISIVE_TRAINER_KEYS

# What a throughput measurement (`oak bench cost`) depends on: the step's work and the run's length.
COST_SETTINGS = ("model", "image_size", "batch_size", "precision", "channels_last", "epochs")


# What `oak smoke` replaces in every run (oak.training.smoke): one epoch of two steps at the run's last training size,
# so the epochs, their schedule's epoch counts and the sizes earlier epochs train at never reach it.
SMOKE_REPLACED = ("epochs", "warmup_epochs", "decay_epochs", "progressive_min_size", "progressive_start_epoch", "progressive_end_epoch")


# Numbers a smoke test of two steps cannot tell apart: they scale values, never build, shape or route anything.
SMOKE_INDIFFERENT = (
    "lr", "lr_batch_size", "reference_batch_size", "global_batch_size", "momentum", "optimizer_eps", "weight_decay",
    "min_lr", "decay_rate", "bn_momentum", "bn_eps", "ema_decay_per_update", "eval_crop_pct", "eval_crop_padding",
    "mean", "std", "scale_min", "hflip",
)  # fmt: skip
# Numbers that switch a part on where non-zero (an EMA copy of the weights, DropPath modules, a transform, a loss term).
SMOKE_SWITCHES = (
    "ema_decay", "drop_rate", "drop_path_rate", "label_smoothing", "aux_loss_weight", "color_jitter", "random_erasing",
    "mixup_alpha", "cutmix_alpha",
)  # fmt: skip


def smoke_fingerprint(config: DictConfig, model: str) -> str:
    """What a smoke test of the run exercises (see the module's docstring): the same for runs that train alike in it."""
    train = OmegaConf.to_container(config.train, resolve=True)
    exercised = {key: value for key, value in train.items() if key not in SMOKE_REPLACED + SMOKE_INDIFFERENT}
    exercised |= {key: bool(train[key]) for key in SMOKE_SWITCHES}
    exercised["auto_augment"] = _augment_policy(train["auto_augment"])
    settings = {
        "model": model,
        "seed": config.seed,
        # a null switches a part off as a missing key does: new keys that default to null keep the fingerprints
        "train": {key: value for key, value in exercised.items() if value is not None},
        "trainer": {key: OmegaConf.to_container(config.trainer, resolve=True)[key] for key in DECISIVE_TRAINER_KEYS},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _augment_policy(policy: str | None) -> str | None:
    """timm's policy string without its numbers (`rand-m15-n2-mmax15` -> `rand`): the policy's code, not its strength."""
    return policy.split("-")[0] if policy else None


def cost_settings(config: DictConfig, model: str) -> dict[str, object]:
    """The settings a throughput measurement of the run must have been taken with (COST_SETTINGS)."""
    train = config.train
    return {
        "model": model,
        "image_size": train.image_size,
        "batch_size": train.batch_size,
        "precision": config.trainer.precision,
        "channels_last": train.channels_last,
        "epochs": train.epochs,
    }


def cost_differences(measured: dict, planned: dict[str, object], device: dict) -> list[str]:
    """How a throughput measurement differs from the run's planned settings, as `key measured -> planned`.

    `device` is the measurement file's header. Two settings may differ by design, as the file says: a CPU
    times in 32-bit precision and at most `batch_size_cap` images a step (to bound the time), and a batch the
    device's memory could not hold is halved until it fits (the entry's `batch_limited_by`).
    """
    expected = dict(planned)
    if device.get("device_kind") == "cpu":
        expected["precision"] = "32-true"
    if device.get("batch_size_cap"):
        expected["batch_size"] = min(device["batch_size_cap"], planned["batch_size"])
    differences = []
    for key in COST_SETTINGS:
        value, wanted = measured.get(key), expected[key]
        if key == "batch_size" and measured.get("batch_limited_by") and isinstance(value, int) and value < wanted:
            continue
        if value != wanted:
            differences.append(f"{key} {value} -> {wanted}")
    return differences
