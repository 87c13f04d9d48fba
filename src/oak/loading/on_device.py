"""JPEGs decoded and augmented on the training device (nvJPEG on a GPU), planned in the loader workers.

The loader path (oak.loading.transforms) decodes with Pillow in the loader workers: at about 400-500
full-size ImageNet JPEGs a core a second, a 16-core node cannot feed one H200. On this path the
workers only read each JPEG's header and draw its random crop, flip and colour jitter with timm's
and torchvision's own samplers, in the order and from the seeded generators the loader path uses,
so both paths draw the same parameters for the same sample (tests/test_on_device.py checks it). The
device then decodes the batch (torchvision.io.decode_jpeg: nvJPEG on CUDA, libjpeg on the CPU) and
applies them with torchvision's tensor functions. Only the resampling differs: torch's antialiased
interpolation instead of Pillow's, within the tolerance the tests state.

AutoAugment and RandAugment exist in timm for Pillow images only: recipes with `auto_augment`
decode in the loader (`train.decode: auto` chooses so; `device` refuses them, see oak.config.checks).
"""

import io
import math
import warnings
from typing import NamedTuple

import torch
from omegaconf import DictConfig
from PIL import Image
from timm.data import create_transform
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision import transforms as T
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from oak.errors import OakError

# torchvision 0.29 points to TorchCodec for decoding; its decode_jpeg still batches nvJPEG and is what
# this torchvision release documents. Replacing it is a change of dependency, left for its own measurement.
warnings.filterwarnings("ignore", message=r"The image decoding and encoding capabilities of TorchVision are deprecated")


class Plan(NamedTuple):
    """One training image's augmentation, drawn in a loader worker and applied on the device."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    jitter_order: tuple[int, ...]  # torchvision ColorJitter's random order of its four adjustments
    jitter: tuple[float | None, float | None, float | None, float | None]  # brightness, contrast, saturation, hue factors
    size: int  # the crop's output side: the recipe's image size at this epoch (oak.loading.progressive)


class JpegBatch(NamedTuple):
    """A batch as the loader delivers it on this path: the undecoded JPEGs, with their plans (training)."""

    jpegs: list[torch.Tensor]  # one uint8 tensor of bytes per image, on the CPU: nvJPEG reads host memory
    plans: list[Plan] | None  # None: evaluation, whose preprocessing is not random
    labels: torch.Tensor


def _jpeg_tensor(jpeg: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)


def _interpolation(recipe: DictConfig) -> T.InterpolationMode:
    return T.InterpolationMode(recipe.interpolation)


class TrainPlanner:
    """In a loader worker: a JPEG's bytes -> (bytes tensor, Plan), drawn as the loader path's
    transform (oak.loading.transforms.train_transform) draws them: crop, then flip, then colour jitter."""

    def __init__(self, recipe: DictConfig) -> None:
        primary, secondary, _ = create_transform(
            input_size=(3, recipe.image_size, recipe.image_size),
            is_training=True,
            scale=(recipe.scale_min, 1.0),
            hflip=recipe.hflip,
            color_jitter=recipe.color_jitter,
            interpolation=recipe.interpolation,
            separate=True,
        )
        [self.crop] = [t for t in primary.transforms if isinstance(t, RandomResizedCropAndInterpolation)]
        self.flip = next((t.p for t in primary.transforms if isinstance(t, T.RandomHorizontalFlip)), 0.0)
        # timm adds ColorJitter even at strength 0 (it then draws its order and changes nothing): drawn here too
        [self.jitter] = secondary.transforms
        self.size = recipe.image_size
        if not isinstance(self.jitter, T.ColorJitter):
            raise OakError(f"train.auto_augment={recipe.auto_augment} runs on Pillow images only: set train.decode=loader")

    def __call__(self, jpeg: bytes) -> tuple[torch.Tensor, Plan]:
        with Image.open(io.BytesIO(jpeg)) as image:  # reads the header only: the size, no pixels
            top, left, height, width = self.crop.get_params(image, self.crop.scale, self.crop.ratio)
        flip = bool(self.flip > 0 and torch.rand(1) < self.flip)
        order, *factors = T.ColorJitter.get_params(self.jitter.brightness, self.jitter.contrast, self.jitter.saturation, self.jitter.hue)
        return _jpeg_tensor(jpeg), Plan(top, left, height, width, flip, tuple(order.tolist()), tuple(factors), self.size)


def eval_jpeg(jpeg: bytes) -> torch.Tensor:
    """In a loader worker, for evaluation: the bytes only (the device resizes and crops)."""
    return _jpeg_tensor(jpeg)


def collate(samples: list[tuple[torch.Tensor | tuple[torch.Tensor, Plan], int]]) -> JpegBatch:
    labels = torch.tensor([label for _, label in samples])
    if samples and isinstance(samples[0][0], tuple):
        return JpegBatch([jpeg for (jpeg, _), _ in samples], [plan for (_, plan), _ in samples], labels)
    return JpegBatch([jpeg for jpeg, _ in samples], None, labels)


class DeviceDecoder:
    """On the device: a JpegBatch -> uint8 images, (B, 3, S, S), or (B, 10, 3, S, S) for ten crops."""

    def __init__(self, recipe: DictConfig, *, crops: int = 1) -> None:
        self.eval_size = recipe.eval_image_size or recipe.image_size
        self.resize_to = math.floor(self.eval_size / recipe.eval_crop_pct)  # the shorter side, as timm's eval transform
        self.interpolation = _interpolation(recipe)
        self.crops = crops

    def __call__(self, batch: JpegBatch, device: torch.device) -> torch.Tensor:
        images = decode_jpeg(batch.jpegs, mode=ImageReadMode.RGB, device=device)
        if batch.plans is None:
            return torch.stack([self._evaluated(image) for image in images])
        return torch.stack([self._augmented(image, plan) for image, plan in zip(images, batch.plans)])

    def _augmented(self, image: torch.Tensor, plan: Plan) -> torch.Tensor:
        size = [plan.size, plan.size]
        image = F.resized_crop(image, plan.top, plan.left, plan.height, plan.width, size, interpolation=self.interpolation, antialias=True)
        if plan.flip:
            image = F.horizontal_flip(image)
        brightness, contrast, saturation, hue = plan.jitter
        for step in plan.jitter_order:  # torchvision's ColorJitter.forward, on the tensor
            if step == 0 and brightness is not None:
                image = F.adjust_brightness(image, brightness)
            elif step == 1 and contrast is not None:
                image = F.adjust_contrast(image, contrast)
            elif step == 2 and saturation is not None:
                image = F.adjust_saturation(image, saturation)
            elif step == 3 and hue is not None:
                image = F.adjust_hue(image, hue)
        return image

    def _evaluated(self, image: torch.Tensor) -> torch.Tensor:
        image = F.resize(image, [self.resize_to], interpolation=self.interpolation, antialias=True)
        if self.crops == 1:
            return F.center_crop(image, [self.eval_size, self.eval_size])
        return torch.stack(F.ten_crop(image, [self.eval_size, self.eval_size]))
