"""Released checkpoints of the paper's models: named as their library names them, found offline,
read without running code, and evaluated with their own preprocessing.

A spec is `timm:<pretrained tag>` (e.g. `timm:tf_efficientnet_b3.aa_in1k`, published on Hugging Face as
`timm/<tag>`) or `torchvision:<builder>.<weights>` (e.g. `torchvision:resnet18.IMAGENET1K_V1`). The file
is looked for in `paths.weights` first, named `<tag>.safetensors` (timm) or as torchvision names its
download (`resnet18-f37072fd.pth`), then in the Hugging Face and torch hub caches; nothing is
downloaded. Which weights stand for which row, and why, is said in each study file.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from omegaconf import OmegaConf
from timm.data import resolve_data_config
from torch import nn

from oak.config.resolve import eval_crop_fraction
from oak.data.imagenet import IMAGENET_1K_WNIDS
from oak.errors import OakError
from oak.models.weights import load_weights

LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class Published:
    library: str  # timm or torchvision
    name: str  # timm's pretrained tag, or torchvision's `<builder>.<weights>`

    @classmethod
    def parse(cls, spec: str) -> "Published":
        library, _, name = spec.partition(":")
        if library not in LIBRARIES or not name:
            raise OakError(f"weights {spec!r}: expected timm:<pretrained tag> or torchvision:<builder>.<weights>")
        published = cls(library, name)
        published._check_known()
        return published

    @property
    def spec(self) -> str:
        return f"{self.library}:{self.name}"

    def _check_known(self) -> None:
        if self.library == "timm" and self.name not in timm.list_pretrained(self.name):
            raise OakError(f"weights {self.spec!r}: timm {timm.__version__} has no such pretrained tag; see `timm.list_pretrained()`")
        if self.library == "torchvision":
            try:
                self._torchvision_weights()
            except (ValueError, KeyError):
                builder, _, member = self.name.partition(".")
                raise OakError(f"weights {self.spec!r}: torchvision has no {member!r} weights for the builder {builder!r}") from None

    def _torchvision_weights(self) -> torchvision.models.WeightsEnum:
        builder, _, member = self.name.partition(".")
        return torchvision.models.get_model_weights(builder)[member]

    def architecture(self) -> nn.Module:
        """The untrained network the weights fit (1000 ImageNet classes)."""
        if self.library == "timm":
            return timm.create_model(self.name, pretrained=False)
        return torchvision.models.get_model(self.name.partition(".")[0], weights=None)

    def preprocessing(self) -> dict[str, object]:
        """The weights' own evaluation settings, as `train.*` overrides: size, crop fraction, interpolation, mean and std.

        timm's are its pretrained config at the test size (as timm's validate.py); torchvision's its weights' transforms().
        """
        if self.library == "timm":
            data = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(self.name).to_dict(), use_test_size=True)
            if data["crop_mode"] != "center":
                raise OakError(f"weights {self.spec!r}: crop mode {data['crop_mode']!r}; Oak evaluates centre crops only")
            size, crop_pct, interpolation = data["input_size"][-1], data["crop_pct"], data["interpolation"]
            mean, std = data["mean"], data["std"]
        else:
            transforms = self._torchvision_weights().transforms()
            size, resize = transforms.crop_size[0], transforms.resize_size[0]
            crop_pct, interpolation = _crop_pct(size, resize), transforms.interpolation.value
            mean, std = transforms.mean, transforms.std
        return {
            "image_size": size,
            "eval_image_size": size,
            "eval_crop_pct": crop_pct,
            "interpolation": interpolation,
            "mean": [float(value) for value in mean],
            "std": [float(value) for value in std],
        }

    def file_name(self) -> str:
        if self.library == "timm":
            return f"{self.name}.safetensors"
        return Path(self._torchvision_weights().url).name

    def where_published(self) -> str:
        if self.library == "timm":
            return f"https://huggingface.co/{timm.models.get_pretrained_cfg(self.name).hf_hub_id} (model.safetensors)"
        return self._torchvision_weights().url

    def cached_file(self) -> Path | None:
        """The file in the library's own download cache, if it is there."""
        if self.library == "torchvision":
            cached = Path(torch.hub.get_dir()) / "checkpoints" / self.file_name()
            return cached if cached.exists() else None
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(timm.models.get_pretrained_cfg(self.name).hf_hub_id, "model.safetensors")
        return Path(found) if isinstance(found, str) else None


def _crop_pct(size: int, resize: int) -> float:
    """The fraction that makes timm's floor(size / fraction) the weights' resize (224 of 232 would floor to 231)."""
    fraction = size / resize
    return fraction if math.floor(size / fraction) == resize else math.nextafter(fraction, 0.0)


def locate(published: Published, folder: Path) -> Path:
    """The weights' file: in `folder`, else in the library's cache; else one error naming the file and where it is published."""
    in_folder = folder / published.file_name()
    if in_folder.exists():
        return in_folder
    cached = published.cached_file()
    if cached:
        return cached
    raise OakError(
        f"{in_folder}: weights file not found (nor in the {published.library} download cache); "
        f"run `oak weights pull {published.spec}`, or download {published.where_published()} and save it as {in_folder}"
    )


def load_published(published: Published, folder: Path) -> tuple[nn.Module, Path]:
    """The network with the weights loaded, every tensor matched by name and shape, and the file they came from."""
    net = published.architecture()
    path = locate(published, folder)
    load_weights(net, path)
    return net, path


class ImageNetClasses(nn.Module):
    """A 1000-class network's logits for the classes of the data, in the data's order.

    Oak's shards number their classes by sorted WordNet ID, as ImageNet-1k's networks do: on ImageNet
    this is every logit in place; on a subset (the demo's 10 ImageNet IDs) the logits of those classes.
    """

    def __init__(self, net: nn.Module, classes: list[str]) -> None:
        super().__init__()
        unknown = sorted(set(classes) - set(IMAGENET_1K_WNIDS))
        if unknown:
            raise OakError(f"classes {', '.join(unknown[:3])}: not ImageNet-1k WordNet IDs, the classes published weights know")
        self.net = net
        self.register_buffer("indices", torch.tensor([IMAGENET_1K_WNIDS.index(wnid) for wnid in classes]), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).index_select(1, self.indices)


def evaluation_protocol(spec: str, settings: dict) -> str:
    """How the published profile evaluates the weights: their own preprocessing under the study row's `train`
    settings (the row's size or crop, where it sets one), e.g. "299 px, centre crop 0.875, bicubic"."""
    train = OmegaConf.create({"eval_crop_padding": None} | Published.parse(spec).preprocessing() | settings.get("train", {}))
    return f"{train.eval_image_size} px, centre crop {eval_crop_fraction(train):.4g}, {train.interpolation}"


# tensorflow/tpu's models/official/efficientnet/README.md, "Using Pretrained EfficientNet Checkpoints": top-1 (%) of
# each release, B0 first (the standard release stops at B5). Tan and Le's paper: 76.3, 78.8, 79.8, 81.1, 82.6, 83.3,
# 84.0, 84.4. timm's tf_efficientnet_b<N>.in1k and .aa_in1k are ports of these two releases.
EFFICIENTNET_RELEASES = {
    "in1k": ("standard preprocessing (\"similar accuracy as the original ICML paper\")", (76.8, 78.8, 79.8, 81.0, 82.6, 83.2)),
    "aa_in1k": ("AutoAugment (\"higher accuracy than the original ICML paper\")", (77.3, 79.2, 80.3, 81.7, 83.0, 83.7, 84.2, 84.5)),
}


def release_note(spec: str) -> str | None:
    """Which tensorflow/tpu release a timm EfficientNet port is, with the top-1 its README reports for it."""
    library, _, name = spec.partition(":")
    architecture, _, tag = name.partition(".")
    if library != "timm" or not architecture.startswith("tf_efficientnet_b") or tag not in EFFICIENTNET_RELEASES:
        return None
    what, reported = EFFICIENTNET_RELEASES[tag]
    variant = int(architecture.removeprefix("tf_efficientnet_b"))
    return f"`{spec}`: tensorflow/tpu's release trained with {what}; its README reports {reported[variant]}% top-1"
