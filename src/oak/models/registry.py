"""`create_model(name, num_classes)`: every model the study names, timm underneath.

timm builds most of them; Oak registers the two it lacks with timm (`plain.py`,
`inception_resnet_v1.py`) and builds torchvision's classics and ShuffleNet-v2 here. `ZOO` holds
what the study needs to know of each model: family, year, reference and the parameter count its
model card publishes.
"""

import difflib
from dataclasses import dataclass
from functools import cache, partial

import timm
import torchvision
from torch import nn

import oak.models.inception_resnet_v1  # noqa: F401  registers inception_resnet_v1 with timm
import oak.models.plain  # noqa: F401  registers plain18 and plain34 with timm
from oak.errors import OakError

LARGE, LIGHT = "large-scale", "lightweight"
TIMM_CARD = "timm model card (huggingface.co/timm)"
TV_CARD = "torchvision model card (weights meta num_params)"


@dataclass(frozen=True)
class ModelCard:
    family: str
    year: int
    reference: str
    published_params: int | None  # None: no published count; Oak's own count stands alone
    source: str


def _cards(names: list[str], family: str, year: int, reference: str, published_m: list[float | None], source: str) -> dict[str, ModelCard]:
    return {
        name: ModelCard(family, year, reference, None if count is None else round(count * 1e6), source)
        for name, count in zip(names, published_m, strict=True)
    }


RESNET_RS = [f"resnetrs{depth}" for depth in (50, 101, 152, 200, 270, 350, 420)]
EFFICIENTNETS = [f"efficientnet_b{phi}" for phi in range(8)]
SHUFFLENETS = [f"shufflenet_v2_x{width}" for width in ("0_5", "1_0", "1_5", "2_0")]

ZOO: dict[str, ModelCard] = {
    **_cards(
        ["plain18", "plain34"], LARGE, 2016, "He et al. 2016, Deep Residual Learning (plain baselines)", [None, None], "none published"
    ),
    **_cards(
        ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        LARGE,
        2016,
        "He et al. 2016, Deep Residual Learning",
        [11.689512, 21.797672, 25.557032, 44.549160, 60.192808],
        TV_CARD,
    ),
    **_cards(
        RESNET_RS, LARGE, 2021, "Bello et al. 2021, Revisiting ResNets", [35.69, 63.62, 86.62, 93.21, 129.86, 163.96, 191.89], TIMM_CARD
    ),
    **_cards(["inception_v3"], LARGE, 2016, "Szegedy et al. 2016, Rethinking the Inception Architecture", [23.83], TIMM_CARD),
    **_cards(
        ["inception_v4", "inception_resnet_v2", "inception_resnet_v1"],
        LARGE,
        2017,
        "Szegedy et al. 2017, Inception-v4, Inception-ResNet",
        [42.68, 55.84, None],
        TIMM_CARD,
    ),
    **_cards(SHUFFLENETS, LIGHT, 2018, "Ma et al. 2018, ShuffleNet V2", [1.366792, 2.278604, 3.503624, 7.393996], TV_CARD),
    **_cards(EFFICIENTNETS, LIGHT, 2019, "Tan & Le 2019, EfficientNet", [5.29, 7.79, 9.11, 12.23, 19.34, 30.39, 43.04, 66.35], TIMM_CARD),
    **_cards(["alexnet"], LARGE, 2012, "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs", [61.100840], TV_CARD),
    **_cards(["vgg16"], LARGE, 2014, "Simonyan & Zisserman 2014, Very Deep Convolutional Networks", [138.357544], TV_CARD),
    **_cards(["googlenet"], LARGE, 2015, "Szegedy et al. 2015, Going Deeper with Convolutions", [6.624904], TV_CARD),
    **_cards(["squeezenet1_1"], LIGHT, 2016, "Iandola et al. 2016, SqueezeNet", [1.235496], TV_CARD),
    **_cards(["mobilenetv1_100"], LIGHT, 2017, "Howard et al. 2017, MobileNets", [4.23], TIMM_CARD),
    **_cards(["mobilenetv2_100"], LIGHT, 2018, "Sandler et al. 2018, MobileNetV2", [3.50], TIMM_CARD),
    **_cards(["mobilenetv3_large_100"], LIGHT, 2019, "Howard et al. 2019, Searching for MobileNetV3", [5.48], TIMM_CARD),
}


def _torchvision(name: str, num_classes: int, drop_rate: float = 0.0, drop_path_rate: float = 0.0, **kwargs) -> nn.Module:
    if drop_path_rate:
        raise OakError(f"{name} has no stochastic depth; set drop_path_rate=0")
    if name.startswith("shufflenet"):
        if drop_rate:
            raise OakError(f"{name} has no dropout layer; set drop_rate=0")
    else:
        kwargs["dropout"] = drop_rate
    if name == "googlenet":
        kwargs |= {"aux_logits": False, "init_weights": True}  # the auxiliary heads only serve training tricks of 2015
    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **kwargs)


_TORCHVISION = {name: partial(_torchvision, name) for name in ["alexnet", "vgg16", "googlenet", "squeezenet1_1", *SHUFFLENETS]}


@cache
def available_models() -> tuple[str, ...]:
    return tuple(sorted(set(timm.list_models()) | set(_TORCHVISION)))


def check_model_name(name: str) -> None:
    """Raise an error that suggests the closest names unless `name` can be built."""
    if name not in available_models():
        closest = difflib.get_close_matches(name, list(ZOO) + list(available_models()), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(dict.fromkeys(closest))}" if closest else "; `oak models` lists the study's models"
        raise OakError(f"unknown model {name!r}{hint}")


def create_model(name: str, num_classes: int, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> nn.Module:
    """A randomly initialised `name` with a `num_classes`-way classifier."""
    check_model_name(name)
    if name in _TORCHVISION:
        return _TORCHVISION[name](num_classes=num_classes, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **kwargs)
    except TypeError as error:
        if "drop_path_rate" not in str(error):
            raise
        raise OakError(f"{name} has no stochastic depth; set drop_path_rate=0") from None


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
