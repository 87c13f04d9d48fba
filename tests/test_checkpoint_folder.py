"""A run's checkpoint folder under a new training: the previous training's files stay as they were until the
new one's first checkpoint is written whole, whatever fails before; from then on the folder is the new one's.

A real Lightning Trainer on a model of a few weights, with Oak's own checkpoint callback and curves logger.
"""

import json
import zipfile
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel

from oak.layout import CHECKPOINT_FILE, CURVES_FILE, RESOLVED_CONFIG_FILE, RUN_FILE
from oak.training.checkpoints import LastCheckpoint
from oak.training.curves import EpochCurves, read_curves

RECORD = {"tracking_uri": "sqlite:///mlflow.db", "run_id": "new", "fingerprint": "f", "complete": False}
BATCHES = 3  # per epoch


class LoggingModel(BoringModel):
    """Logs one validation metric per epoch, as Oak's classifier does."""

    def validation_step(self, batch, batch_index):
        loss = super().validation_step(batch, batch_index)["x"]
        self.log("val/loss", loss, on_epoch=True)


class FailAt(L.Callback):
    """Raises as the given batch of the given epoch starts."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_index: int) -> None:
        if (trainer.current_epoch, batch_index) == (self.epoch, self.batch):
            raise RuntimeError("the new training fails here")


def finished_run(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True)
    files = {
        CHECKPOINT_FILE: b"the finished training's checkpoint",
        RUN_FILE: json.dumps({"run_id": "finished", "complete": True}).encode(),
        CURVES_FILE: b"epoch,val/top1,step\n0,0.5,10\n",
        RESOLVED_CONFIG_FILE: b"train:\n  epochs: 1\n",
    }
    for name, content in files.items():
        (out / name).write_bytes(content)
    return files


def fit_fresh(out: Path, scratch: Path, *callbacks: L.Callback) -> None:
    """A fresh training into `out`, its curves kept in `scratch` until it takes the folder over, as oak.training.train does."""
    curves = EpochCurves(scratch / CURVES_FILE, resume=False)
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=BATCHES,
        limit_val_batches=1,
        logger=[curves],
        callbacks=[LastCheckpoint(out, None, fresh=True, run_record=RECORD, curves=curves), *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        accelerator="cpu",
        default_root_dir=out,
    )
    trainer.fit(LoggingModel())


def contents(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in out.iterdir()}


# the first step; and after the first epoch's validation and curves, before the checkpoint at the second's first batch
@pytest.mark.parametrize("epoch, batch", [(0, 0), (1, 0)])
def test_a_training_that_fails_before_its_first_checkpoint_leaves_the_previous_runs_files_as_they_were(
    epoch: int, batch: int, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "run"
    before = finished_run(out)
    with pytest.raises(RuntimeError, match="fails here"):
        fit_fresh(out, tmp_path / "scratch", FailAt(epoch, batch))
    assert contents(out) == before


def test_the_first_checkpoint_makes_the_folder_the_new_trainings_and_drops_the_previous_config(tmp_path: Path) -> None:
    out = tmp_path / "models" / "run"
    finished_run(out)
    with pytest.raises(RuntimeError, match="fails here"):
        fit_fresh(out, tmp_path / "scratch", FailAt(1, 1))  # just after the checkpoint at epoch 2's first batch
    assert sorted(path.name for path in out.iterdir()) == sorted([CHECKPOINT_FILE, RUN_FILE, CURVES_FILE])
    assert json.loads((out / RUN_FILE).read_text()) == RECORD  # resumable: an unfinished run of the new fingerprint
    assert zipfile.is_zipfile(out / CHECKPOINT_FILE)
    assert [row["step"] for row in read_curves(out / CURVES_FILE)] == [BATCHES - 1]  # the new training's first epoch only


def test_a_finished_fresh_training_leaves_its_own_checkpoint_record_and_every_epochs_curves(tmp_path: Path) -> None:
    out = tmp_path / "models" / "run"
    finished_run(out)
    fit_fresh(out, tmp_path / "scratch")
    assert sorted(path.name for path in out.iterdir()) == sorted([CHECKPOINT_FILE, RUN_FILE, CURVES_FILE])
    assert [row["step"] for row in read_curves(out / CURVES_FILE)] == [BATCHES - 1, 2 * BATCHES - 1]
