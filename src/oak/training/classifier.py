"""The LightningModule every Oak model trains and evaluates in; the network is passed in built.

The training recipe (the `train` section of the config) reaches it through timm: the optimizer
and its weight-decay exemption of norms and biases, the scheduler (stepped per optimizer update, as
the TensorFlow references do), random erasing and mixup/cutmix (on the device, on the whole batch),
label smoothing, an auxiliary classifier's loss and the EMA of the weights.

The EMA copy is deliberately not a submodule: DDP would take its parameters for the network's,
find them unused by the loss and stop. It is moved to the device when fitting starts and travels in
the checkpoint's `state_dict` under `ema.module.` (what `oak.models.weights` evaluates).
"""

import inspect
import math
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2, get_optimizer_info
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from oak.errors import OakError
from oak.seeding import seed_every_generator

STAGES = ("train", "val", "eval")
EMA_PREFIX = "ema.module."
# torch's words when a convolution or pooling layer gets a feature map smaller than its window
TOO_SMALL = ("Kernel size can't be greater than actual input size", "Output size is too small")
EVAL_SIZE = "train.eval_image_size"  # what sets the images' size in validation and evaluation (else train.image_size)


def fused_available(optimizer: str) -> bool:
    """Whether the timm optimizer is one of PyTorch's with a fused step (AdamW, SGD, ...), on CPUs as on GPUs.

    One kernel per parameter group instead of one per tensor and operation: on resnet18 with 2 CPU
    cores, an AdamW step took 5.8 ms fused against 42.7 ms by default, SGD 4.6 against 11.0 (best of 4).
    timm's own optimizers (rmsproptf, lamb, ...) have none and keep their default.
    """
    return "fused" in inspect.signature(get_optimizer_info(optimizer).opt_class).parameters


class WarmupEma(ModelEmaV3):
    """timm's EMA with TensorFlow's warm-up of the decay: min(decay, (1 + n) / (10 + n)) after n updates.

    tf.train.ExponentialMovingAverage(decay, num_updates=global_step), as the EfficientNet and
    ResNet-RS references in tensorflow/tpu build it. Without it, a 10-epoch run at batch 4096
    (3,120 updates) would be evaluated on weights still 0.9999^3120 = 73% those of its first update.
    """

    def get_decay(self, step: int | None = None) -> float:
        return self.decay if step is None else min(self.decay, (1 + step) / (10 + step))


class PercentAccuracy(MulticlassAccuracy):
    """torchmetrics' top-k accuracy in per cent: the paper's scale, and so that of every file, MLflow view and
    report Oak writes (one scale everywhere: a reader never meets 0.798 beside 79.8)."""

    def compute(self) -> torch.Tensor:
        return 100 * super().compute()


class Classifier(L.LightningModule):
    """Trains `net` with `recipe`; logs loss, top-1, top-5 and the sample count per epoch as `<stage>/<name>`.

    Without a recipe the module only evaluates. Every metric is a torchmetrics state summed over
    ranks, so a distributed evaluation counts each sample exactly once.
    """

    def __init__(
        self, net: nn.Module, *, num_classes: int, recipe: DictConfig | None = None, train_samples: int | None = None, seed: int = 0
    ) -> None:
        super().__init__()
        self.net = net
        self.recipe = recipe
        self.train_samples = train_samples  # to count an epoch's updates for the schedule
        self.seed = seed
        self.mixup = _mixup(recipe, num_classes) if recipe else None
        self.erasing = recipe.random_erasing if recipe else 0.0  # probability per image
        smoothing = recipe.label_smoothing if recipe else 0.0
        self.train_loss = SoftTargetCrossEntropy() if self.mixup else nn.CrossEntropyLoss(label_smoothing=smoothing)
        self.eval_loss = nn.CrossEntropyLoss()
        self.channels_last = bool(recipe and recipe.channels_last)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        # object.__setattr__: kept out of the module tree, so that DDP never sees its parameters. The decay per update
        # is the recipe's scaled to this run's global batch (oak.config.resolve)
        object.__setattr__(self, "ema", WarmupEma(net, decay=recipe.ema_decay_per_update) if recipe and recipe.ema_decay else None)
        self._ema_step: int | None = None  # the update the EMA last took
        self.aux_loss_weight = recipe.aux_loss_weight if recipe else 0.0
        if recipe and recipe.compile:
            net.compile()  # in place: the state_dict keeps its names
        # One metric set per stage, keyed "<stage>_<name>": Lightning resets and syncs each at its
        # own epoch end. (A bare "train" key would clash with nn.Module.train.)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in STAGES
                for name, metric in (
                    ("top1", PercentAccuracy(num_classes, top_k=1, average="micro")),
                    ("top5", PercentAccuracy(num_classes, top_k=min(5, num_classes), average="micro")),
                    ("loss", MeanMetric()),
                    ("samples", SumMetric()),
                )
            }
        )
        # The training metrics' running sums travel in the checkpoint, so that an epoch resumed part
        # way reports on all its batches, not only those after the checkpoint.
        for name, metric in self.metrics.items():
            metric.persistent(name.startswith("train_"))
        self.epoch_lr = MeanMetric()
        self.epoch_lr.persistent(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return _main_logits(self.net(images))

    def _evaluated_net(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.net

    def on_fit_start(self) -> None:
        if self.ema is not None:
            self.ema.to(self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        if self.ema is not None:
            state.update({EMA_PREFIX + name: value for name, value in self.ema.module.state_dict().items()})
        if self.channels_last:  # weights in the usual layout, whatever the training's: safetensors refuses NHWC strides
            checkpoint["state_dict"] = {name: value.contiguous() for name, value in state.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Called before Lightning loads the state_dict strictly into the module, which has no `ema.` keys.
        state = checkpoint["state_dict"]
        for name, value in self.state_dict().items():  # a checkpoint from before the metrics were kept: start them at zero
            if name.startswith(("metrics.", "epoch_lr.")):
                state.setdefault(name, value)
        ema = {name.removeprefix(EMA_PREFIX): state.pop(name) for name in [name for name in state if name.startswith(EMA_PREFIX)]}
        if self.ema is not None:
            if not ema:
                raise OakError("the checkpoint holds no EMA weights but the recipe keeps an EMA (train.ema_decay); start afresh")
            self.ema.module.load_state_dict(ema)

    def _log_metrics(self, stage: str, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        batch_size = targets.shape[0]
        updates = {"top1": (logits, targets), "top5": (logits, targets), "loss": (loss.detach(), batch_size), "samples": (batch_size,)}
        for name, arguments in updates.items():
            metric = self.metrics[f"{stage}_{name}"]
            metric.update(*arguments)
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=batch_size)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def on_train_start(self) -> None:
        self.on_train_epoch_start()  # a resumed epoch starts part way, without its epoch-start hook

    def on_train_epoch_start(self) -> None:
        self._epoch_start, self._epoch_images = time.perf_counter(), 0

    def on_train_batch_start(self, batch, batch_index: int) -> None:
        # Random erasing, dropout, stochastic depth, mixup and cutmix draw from streams keyed by the batch's place, so a
        # resumed epoch draws what it would have (see oak.seeding); each rank its own.
        seed_every_generator(self.seed, self.global_rank, self.current_epoch, batch_index)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        images, targets = batch
        self._epoch_images += targets.shape[0]
        # One "lr" key whatever the optimizer, so the runs of a study line up in MLflow's compare view;
        # the epoch's mean, kept in a metric so that it travels in the checkpoint as the others do.
        self.epoch_lr.update(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log("lr", self.epoch_lr, on_step=False, on_epoch=True)
        mixed_images, mixed_targets = self.augmented(images, targets)
        try:
            outputs = self._forward(self.net, mixed_images, "train.image_size")
        except ValueError as error:  # torch's words for a BatchNorm over a single value per channel
            if "Expected more than 1 value per channel when training" not in str(error):
                raise
            raise OakError(
                f"{self._run()}: train.batch_size={self.recipe.batch_size}: a BatchNorm layer of the network sees a single value "
                f"per channel in training (one image per device, a 1x1 feature map at {images.shape[-1]} px); "
                "use a batch of 2 or more images per device"
            ) from None
        loss = self.training_loss(outputs, mixed_targets)
        self._check_finite(loss)
        self._log_metrics("train", _main_logits(outputs).detach(), targets, loss)  # accuracy against the unmixed labels
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop at the first NaN or infinite loss: the weights are lost from there on, and the run would otherwise go on
        to its last epoch and exit 0 with NaN metrics. (One check per step; Lightning's detect_anomaly checks every
        operator, many times slower.)"""
        if not torch.isfinite(loss):
            raise OakError(
                f"{self._run()}: the training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "try a lower train.lr, a longer train.warmup_epochs or trainer.gradient_clip_val, or check the data"
            )

    def _forward(self, net: nn.Module, images: torch.Tensor, size_key: str) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The network's outputs; images smaller than its layers allow (Inception-v3 below 75 px, VGG below 32) are one
        error naming the size setting, not torch's traceback from deep inside the network."""
        try:
            return net(self._images(images))
        except RuntimeError as error:
            if not any(words in str(error) for words in TOO_SMALL):
                raise
            raise OakError(
                f"{self._run()}: {size_key}: {images.shape[-1]} px images are too small for this network "
                f"({str(error).splitlines()[0]}); use a larger {size_key}"
            ) from None

    def _run(self) -> str:
        return Path(self.trainer.default_root_dir).name  # the run's checkpoint folder, named after it (oak.layout)

    def augmented(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as the network trains on it: timm's random erasing (per image, normal noise on the
        normalised pixels), then its mixup or cutmix."""
        if self.erasing:
            images = RandomErasing(self.erasing, mode="pixel", device=images.device)(images)
        return self.mixup(images, targets) if self.mixup else (images, targets)

    def training_loss(self, outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, tuple):  # (logits, auxiliary logits): Inception-v3's side classifier in training
            return self.train_loss(outputs[0], targets) + self.aux_loss_weight * self.train_loss(outputs[1], targets)
        return self.train_loss(outputs, targets)

    def on_train_batch_end(self, outputs, batch, batch_index: int) -> None:
        # Once per optimizer update (not per accumulated batch), counted as TensorFlow counts them.
        if self.ema is not None and self.global_step != self._ema_step:
            self.ema.update(self.net, step=self.global_step)
            self._ema_step = self.global_step

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.log("train/images_per_second", self._epoch_images / seconds, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum")

    def _evaluation_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        images, targets = batch
        net = self._evaluated_net()
        if images.dim() == 5:  # (batch, crops, C, H, W): average the crops' softmax, log it for the loss and top-k
            batch_size, crops = images.shape[:2]
            probabilities = _main_logits(self._forward(net, images.flatten(0, 1), EVAL_SIZE)).float().softmax(-1)
            logits = probabilities.view(batch_size, crops, -1).mean(1).log()
        else:
            logits = _main_logits(self._forward(net, images, EVAL_SIZE))
        self._log_metrics(stage, logits, targets, self.eval_loss(logits, targets))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> None:
        self._evaluation_step(batch, "eval")

    def configure_optimizers(self) -> dict:
        recipe = self.recipe
        if recipe is None:
            raise OakError("this Classifier was built for evaluation only; give it a recipe to train")
        lr = scaled_lr(recipe.lr, recipe.lr_batch_size, self.global_batch_size())
        extra = {"eps": recipe.optimizer_eps} if recipe.optimizer_eps is not None else {}
        extra |= {"fused": True} if fused_available(recipe.optimizer) else {}
        # timm leaves norms and biases out of weight decay (filter_bias_and_bn, on by default)
        optimizer = create_optimizer_v2(
            self.net, opt=recipe.optimizer, lr=lr, weight_decay=recipe.weight_decay, momentum=recipe.momentum, **extra
        )
        # Per update, as the TensorFlow references (EfficientNet, ResNet-RS, ShuffleNet-v2's linear decay)
        # step theirs: warmup rises linearly from 0, a step schedule decays on the update that crosses
        # each `decay_epochs` boundary (2.4 epochs for EfficientNet), as tf.train.exponential_decay's staircase.
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched=recipe.schedule,
            num_epochs=recipe.epochs,
            decay_epochs=recipe.decay_epochs,
            decay_rate=recipe.decay_rate,
            min_lr=recipe.min_lr,
            warmup_epochs=recipe.warmup_epochs,
            warmup_lr=0.0,
            step_on_epochs=False,
            updates_per_epoch=self.updates_per_epoch(),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def updates_per_epoch(self) -> int:
        """Counted as oak.loading.loader.TrainBatches deals the batches, not by Lightning's
        `estimated_stepping_batches`: that loads the training loader before a checkpoint's progress is
        restored, and Lightning then keeps that loader, which does not skip the batches already trained."""
        if self.train_samples is None:
            raise OakError("this Classifier cannot schedule a training without train_samples, the training split's size")
        trainer = self.trainer
        batches = self.train_samples // (trainer.world_size * self.recipe.batch_size)
        limit = trainer.limit_train_batches
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches))

    def global_batch_size(self) -> int:
        return self.recipe.batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # timm schedulers take the number of updates done, not a bare step()
        scheduler.step_update(num_updates=self.global_step)


def scaled_lr(lr: float, reference_batch_size: int | None, global_batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): `lr` is for `reference_batch_size` images per step."""
    return lr if reference_batch_size is None else lr * global_batch_size / reference_batch_size


def _main_logits(outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The classifier's logits, without an auxiliary classifier's (timm's Inception-v3 returns both when built with one)."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def _mixup(recipe: DictConfig, num_classes: int) -> Mixup | None:
    if not (recipe.mixup_alpha or recipe.cutmix_alpha):
        return None
    if recipe.batch_size % 2:
        raise OakError(f"train.batch_size={recipe.batch_size}: mixup and cutmix pair the images of a batch; use an even batch size")
    return Mixup(
        mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha, label_smoothing=recipe.label_smoothing, num_classes=num_classes
    )
