"""The LightningModule every Oak model trains and evaluates in; the network is passed in built."""

import time

import lightning as L
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class Classifier(L.LightningModule):
    """Cross-entropy training of `net`; loss, top-1 and top-5 logged per epoch as `<stage>/<name>`."""

    def __init__(
        self,
        net: nn.Module,
        *,
        num_classes: int,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 1,
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)  # the run params are the resolved config
        self.net = net
        self.loss = nn.CrossEntropyLoss()
        # One metric pair per stage, keyed "<stage>_<name>": Lightning resets and syncs each at its
        # own epoch end. (A bare "train" key would clash with nn.Module.train.)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": MulticlassAccuracy(num_classes, top_k=min(k, num_classes), average="micro")
                for stage in ("train", "val", "eval")
                for name, k in (("top1", 1), ("top5", 5))
            }
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        loss = self.loss(logits, targets)
        batch_size = targets.shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        for name in ("top1", "top5"):
            metric = self.metrics[f"{stage}_{name}"]
            metric(logits, targets)
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def on_train_epoch_start(self) -> None:
        # One "lr" key whatever the optimizer, so the runs of a study line up in MLflow's compare view.
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)
        self._epoch_start, self._epoch_images = time.perf_counter(), 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        self._epoch_images += batch[1].shape[0]
        return self._step(batch, "train")

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.log("train/images_per_second", self._epoch_images / seconds, on_step=False, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._step(batch, "eval")

    def configure_optimizers(self) -> dict:
        # timm leaves norms and biases out of weight decay (filter_bias_and_bn)
        optimizer = create_optimizer_v2(self.net, opt=self.hparams.optimizer, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="cosine",
            num_epochs=self.hparams.epochs,
            warmup_epochs=self.hparams.warmup_epochs,
            warmup_lr=self.hparams.lr / 10,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # timm schedulers take the epoch that starts next, not a bare step()
        scheduler.step(epoch=self.current_epoch + 1)
