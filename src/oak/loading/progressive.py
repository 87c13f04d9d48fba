"""Progressive resizing: the training resolution rising over the epochs, as FFCV's ImageNet recipes train.

FFCV (libffcv/ffcv-imagenet, train_imagenet.py, `get_resolution`) trains at `min_res` up to epoch
`start_ramp`, then linearly up to `max_res` at epoch `end_ramp`, each size in between rounded to a
multiple of 32 px; its ResNet-50 recipes go from 160 to 192 px (rn50_88_epochs.yaml: ramp from
epoch 65 to 76 of 88; rn50_16_epochs.yaml: 11 to 13 of 16) and evaluate at 256 px
(validation.resolution; the README says 224), higher than they train: Touvron et al. 2019 (FixRes)
show that a network trained on random crops tests best at a larger size. Oak's keys: `train.progressive_min_size` (null: every epoch at `train.image_size`),
`train.progressive_start_epoch` and `train.progressive_end_epoch`; `train.image_size` is the size
the ramp ends at and `train.eval_image_size` the evaluation's. Epochs count from 0, as in FFCV and
Lightning. The batch size stays the same at every size (FFCV's does too).

A resumed training asks for its epoch's loader again (oak.loading.datamodule), so it continues at
the size that epoch trains at, with the same samples in the same order.
"""

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from oak.loading.loader import Transform

SIZE_STEP = 32  # FFCV rounds the sizes on the ramp to multiples of 32 px


def image_size_at(recipe: DictConfig, epoch: int) -> int:
    """The training image size of `epoch` (FFCV's get_resolution)."""
    low, high = recipe.progressive_min_size, recipe.image_size
    if low is None:
        return high
    start, end = recipe.progressive_start_epoch, recipe.progressive_end_epoch
    if epoch <= start:
        return low
    if epoch >= end:
        return high
    interpolated = low + (high - low) * (epoch - start) / (end - start)
    return round(interpolated / SIZE_STEP) * SIZE_STEP  # half-way rounds to even, as NumPy's round in FFCV


class TransformsByEpoch:
    """epoch -> the training transform at that epoch's size, built by `build` from the recipe at that size."""

    def __init__(self, recipe: DictConfig, build: Callable[[DictConfig], Transform]) -> None:
        self.recipe = recipe
        self.build = build

    def __call__(self, epoch: int) -> Transform:
        return self.build(OmegaConf.merge(self.recipe, {"image_size": image_size_at(self.recipe, epoch)}))
