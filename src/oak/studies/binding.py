"""What a committed measurement was measured with, so that it is shown only while the plan still asks for that.

Measurements made once and committed (`oak smoke`'s record, `oak bench cost` on each device) outlive the
settings they were taken with: a recipe's batch, a study's epochs or a run's resolution may change
after. Each entry therefore records what it measured, and readers compare it with what the plan gives
the run now:

- a smoke test exercises everything a training does, so it is bound to the run's whole resolved
  settings (`settings_fingerprint`); runs whose settings differ only in what the smoke test replaces
  (`SMOKE_REPLACED`: their length) train alike in it, so one smoke test stands for them all (`smoke_fingerprint`);
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


def settings_fingerprint(config: DictConfig, model: str, *, leave_out: tuple[str, ...] = ()) -> str:
    """A digest of the run's model, seed, `train` section (less `leave_out`) and the trainer settings that decide its outcome."""
    train = OmegaConf.to_container(config.train, resolve=True)
    settings = {
        "model": model,
        "seed": config.seed,
        "train": {key: value for key, value in train.items() if key not in leave_out},
        "trainer": {key: OmegaConf.to_container(config.trainer, resolve=True)[key] for key in DECISIVE_TRAINER_KEYS},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def smoke_fingerprint(config: DictConfig, model: str) -> str:
    """What a smoke test of the run trains: its settings less what the smoke test replaces."""
    return settings_fingerprint(config, model, leave_out=SMOKE_REPLACED)


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
