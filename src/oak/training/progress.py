"""What a training or an evaluation shows as it goes: Lightning's progress bar on a terminal, lines of text elsewhere.

A log (a DVC stage's output, `oak repro`'s logs in logs/repro/, a SLURM job's file) cannot show a
progress bar. There `ProgressLines` writes a line every `trainer.log_every_n_steps` optimizer steps
and one per epoch, each with the loss, top-1 (per cent), images per second over all devices and the
time left; an evaluation a line every as many batches. `trainer.enable_progress_bar` chooses: null
(the default) the bar when stdout is a terminal and the lines otherwise; true the bar; false the lines.
Lines go to stdout, as the bar does, and are flushed at once (a log file is block-buffered).

Lightning's model summary becomes one line (its table counts Oak's metric modules and shows
"Total FLOPs: 0": it counts FLOPs only for a module with an example input). The notices that a user
cannot act on are dropped as this module loads (see NOISE); warnings that ask something of the user stay.
"""

import logging
import math
import re
import sys
import time
import warnings

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from tqdm import tqdm

NOISE = (
    # Lightning's advertisements for its cloud services, at every Trainer's start
    r"💡 Tip: ",
    # the schema's default, which Oak always passes (an int 1 is a different notice, and kept)
    r"`Trainer\(limit_train_batches=1\.0\)` was configured so 100% of the batches per epoch will be used",
    # a machine without TPUs (one with TPUs still says so)
    r"TPU available: False,",
)
# Lightning calling torch's pytree API the way torch 2.14 deprecates: Lightning's code, not the user's
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(re.match(pattern, record.getMessage()) for pattern in NOISE)


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropNoise())


def shows_bar(setting: bool | None) -> bool:
    """`trainer.enable_progress_bar`: as set, or (null) a bar exactly when stdout is a terminal."""
    return sys.stdout.isatty() if setting is None else setting


class ModelLine(L.Callback):
    """Lightning's model summary in one line: the network and its parameters."""

    def __init__(self, model: str) -> None:
        self.model = model

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        parameters = list(module.parameters())
        total = sum(p.numel() for p in parameters)
        trainable = sum(p.numel() for p in parameters if p.requires_grad)
        frozen = f", {get_human_readable_count(total - trainable)} of them frozen" if trainable < total else ""
        _say(f"{self.model}: {get_human_readable_count(total)} parameters{frozen}")


class ProgressLines(L.Callback):
    """A line of progress every `every_n_steps` steps (evaluation: batches) and at each epoch's end, on global rank zero.

    The values come from the Classifier's metrics (oak.training.classifier), summed over ranks: every
    rank computes them at the same step (the ranks train on as many batches each), so that each
    collective has every rank.
    """

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self._last_step = -1

    # training

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._batches = time.perf_counter(), 0  # this process's: a resumed training counts from its checkpoint
        self.on_train_epoch_start(trainer, module)  # a resumed epoch starts part way, without its epoch-start hook

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._epoch_start, self._epoch_images, self._epoch_training_seconds = time.perf_counter(), 0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int) -> None:
        self._batches += 1
        self._epoch_images += len(batch[-1])  # the labels, whether images are decoded here or on the device
        self._epoch_training_seconds = time.perf_counter() - self._epoch_start  # validation comes after the last batch
        step = trainer.global_step
        if step % self.every_n_steps or step == self._last_step or batch_index + 1 >= trainer.num_training_batches:
            return  # the epoch's line follows its last batch
        self._last_step = step
        loss, top1 = (module.metrics[f"train_{name}"].compute().item() for name in ("loss", "top1"))
        batches_left = (trainer.max_epochs - trainer.current_epoch) * trainer.num_training_batches - (batch_index + 1)
        if trainer.is_global_zero:
            _say(
                f"{self._epoch(trainer)}, step {step} (batch {batch_index + 1}/{trainer.num_training_batches}): "
                f"loss {loss:.4g}, top-1 {top1:.1f}% (this epoch so far); {self._rate(trainer)}; {self._left(batches_left)}"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}  # on every rank: they sync
        batches_left = (trainer.max_epochs - trainer.current_epoch - 1) * trainer.num_training_batches
        if not trainer.is_global_zero:
            return
        parts = [f"{self._epoch(trainer)} done in {tqdm.format_interval(time.perf_counter() - self._epoch_start)}"]
        parts += [f"train loss {metrics['train/loss']:.4g}, top-1 {metrics['train/top1']:.1f}%"]
        if "val/top1" in metrics:
            parts += [f"validation loss {metrics['val/loss']:.4g}, top-1 {metrics['val/top1']:.1f}%"]
        parts += [self._rate(trainer)] + ([self._left(batches_left)] if batches_left else [])
        _say("; ".join(parts))

    def _epoch(self, trainer: L.Trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def _rate(self, trainer: L.Trainer) -> str:
        """Training images per second over all devices, this epoch (validation not counted)."""
        rate = self._epoch_images * trainer.world_size / max(self._epoch_training_seconds, 1e-9)
        return f"{rate:,.0f} images/s"

    def _left(self, batches_left: int) -> str:
        """At the pace of this process's batches so far, validation included after the first epoch."""
        if not self._batches:
            return "time left unknown"
        seconds = (time.perf_counter() - self._start) / self._batches * batches_left
        return f"about {tqdm.format_interval(seconds)} left" if math.isfinite(seconds) else "time left unknown"

    # evaluation (`oak evaluate`: Lightning's test loop)

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._images = time.perf_counter(), 0

    def on_test_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_index: int, dataloader_index: int = 0
    ) -> None:
        # The ranks' shares of the val set differ by up to a batch (each sample is counted once): these lines are
        # rank zero's, without a collective that the other ranks would not join.
        self._images += len(batch[-1])
        batches = trainer.num_test_batches[dataloader_index]
        if not trainer.is_global_zero or (batch_index + 1) % self.every_n_steps or batch_index + 1 >= batches:
            return
        so_far = f"top-1 {module.metrics['eval_top1'].compute().item():.1f}% so far; " if trainer.world_size == 1 else ""
        seconds = time.perf_counter() - self._start
        left = seconds / (batch_index + 1) * (batches - batch_index - 1)
        rate = self._images * trainer.world_size / seconds
        _say(f"evaluate: batch {batch_index + 1}/{batches}: {so_far}{rate:,.0f} images/s; about {tqdm.format_interval(left)} left")

    def on_test_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        images = int(module.metrics["eval_samples"].compute().item())
        if trainer.is_global_zero:
            seconds = time.perf_counter() - self._start
            _say(f"evaluated {images:,} images in {tqdm.format_interval(seconds)} ({images / seconds:,.0f} images/s)")


def _say(line: str) -> None:
    print(line, flush=True)

