"""A recipe's image transforms: timm's training augmentations, and one evaluation protocol per recipe.

Mean, std, interpolation and the crop fraction come from the recipe (each recipe cites the paper
they follow), never from a model's timm default tag: rows of a study that share a recipe are
evaluated on the same pixels whatever timm's defaults for their models are.

Images leave the loader as uint8 (a quarter of float32's bytes to pin and copy) and become floats
on the device (`DevicePixels`), as in timm's own prefetching loader; random erasing, which works on
the normalised floats, runs on the device too, with mixup (oak.training.classifier). The operations
are those of ToTensor and Normalize in the same order, so the values are bit for bit those of
normalising in the loader.
"""

import io
import math
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from PIL import Image
from timm.data import create_transform
from torchvision import transforms as T

TEN_CROPS = 10


class FromJpeg:
    """A JPEG's bytes -> `transform` of its RGB image (a class, so loader workers can pickle it)."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, jpeg: bytes) -> torch.Tensor:
        with Image.open(io.BytesIO(jpeg)) as image:
            return self.transform(image.convert("RGB"))


def train_transform(recipe: DictConfig) -> FromJpeg:
    """timm's RandomResizedCrop, flip and the recipe's augmentations, at `image_size`, to uint8."""
    return FromJpeg(
        create_transform(
            **_pixels(recipe, recipe.image_size),
            is_training=True,
            scale=(recipe.scale_min, 1.0),
            hflip=recipe.hflip,
            color_jitter=recipe.color_jitter,
            auto_augment=recipe.auto_augment,
            use_prefetcher=True,  # uint8 out, normalised by DevicePixels; no random erasing, the Classifier's
        )
    )


def _pixels(recipe: DictConfig, size: int) -> dict:
    """What training and evaluation share: the size, the interpolation and the normalisation."""
    return {"input_size": (3, size, size), "interpolation": recipe.interpolation, "mean": tuple(recipe.mean), "std": tuple(recipe.std)}


def eval_size(recipe: DictConfig) -> int:
    return recipe.eval_image_size or recipe.image_size


def eval_transform(recipe: DictConfig, *, crops: int = 1) -> FromJpeg:
    """Shorter side to `size / eval_crop_pct` (floored, as timm), then the centre crop or ten crops, to uint8.

    Ten crops give a (10, C, H, W) tensor per image: the four corners, the centre and their mirror
    images, whose softmax `Classifier` averages (Krizhevsky et al. 2012's protocol, used by He et al. 2016).
    """
    size = eval_size(recipe)
    if crops == 1:
        return FromJpeg(create_transform(**_pixels(recipe, size), is_training=False, crop_pct=recipe.eval_crop_pct, use_prefetcher=True))
    return FromJpeg(
        T.Compose(
            [
                T.Resize(math.floor(size / recipe.eval_crop_pct), interpolation=T.InterpolationMode(recipe.interpolation)),
                T.TenCrop(size),
                StackCrops(),
            ]
        )
    )


class StackCrops:
    """PIL crops -> one (crops, C, H, W) uint8 tensor."""

    def __call__(self, crops: tuple) -> torch.Tensor:
        return torch.stack([T.functional.pil_to_tensor(crop) for crop in crops])


class DevicePixels:
    """uint8 images on the device -> the recipe's normalised floats."""

    def __init__(self, recipe: DictConfig) -> None:
        self.mean = torch.tensor(recipe.mean).view(3, 1, 1)
        self.std = torch.tensor(recipe.std).view(3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # ToTensor's division by 255, then Normalize's subtraction and division, in float32
        return images.float().div(255).sub_(self.mean.to(images.device)).div_(self.std.to(images.device))
