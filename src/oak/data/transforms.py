"""A recipe's image transforms: timm's training augmentations, and one evaluation protocol per recipe.

Mean, std, interpolation and the crop fraction come from the recipe (each recipe cites the paper
they follow), never from a model's timm default tag: rows of a study that share a recipe are
evaluated on the same pixels whatever timm's defaults for their models are.
"""

import math
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from timm.data import create_transform
from torchvision import transforms as T

TEN_CROPS = 10


def train_transform(recipe: DictConfig) -> Callable:
    """timm's RandomResizedCrop, flip and the recipe's augmentations, at `image_size`."""
    return create_transform(
        **_pixels(recipe, recipe.image_size),
        is_training=True,
        scale=(recipe.scale_min, 1.0),
        hflip=recipe.hflip,
        color_jitter=recipe.color_jitter,
        auto_augment=recipe.auto_augment,
        re_prob=recipe.random_erasing,
    )


def _pixels(recipe: DictConfig, size: int) -> dict:
    """What training and evaluation share: the size, the interpolation and the normalisation."""
    return {"input_size": (3, size, size), "interpolation": recipe.interpolation, "mean": tuple(recipe.mean), "std": tuple(recipe.std)}


def eval_size(recipe: DictConfig) -> int:
    return recipe.eval_image_size or recipe.image_size


def eval_transform(recipe: DictConfig, *, crops: int = 1) -> Callable:
    """Shorter side to `size / eval_crop_pct` (floored, as timm), then the centre crop or ten crops.

    Ten crops give a (10, C, H, W) tensor per image: the four corners, the centre and their mirror
    images, whose softmax `Classifier` averages (Krizhevsky et al. 2012's protocol, used by He et al. 2016).
    """
    size = eval_size(recipe)
    if crops == 1:
        return create_transform(**_pixels(recipe, size), is_training=False, crop_pct=recipe.eval_crop_pct)
    return T.Compose(
        [
            T.Resize(math.floor(size / recipe.eval_crop_pct), interpolation=T.InterpolationMode(recipe.interpolation)),
            T.TenCrop(size),
            StackCrops(T.Compose([T.ToTensor(), T.Normalize(tuple(recipe.mean), tuple(recipe.std))])),
        ]
    )


class StackCrops:
    """PIL crops -> one (crops, C, H, W) tensor, each normalised (a class, so loader workers can pickle it)."""

    def __init__(self, to_tensor: Callable) -> None:
        self.to_tensor = to_tensor

    def __call__(self, crops: tuple) -> torch.Tensor:
        return torch.stack([self.to_tensor(crop) for crop in crops])
