"""`create_model(name, num_classes)`: every model the study names, timm underneath.

timm builds most of them; Oak registers those it lacks with timm (`plain.py`,
`inception_resnet_v1.py`, `resnet_a.py`, `scaled.py`) and builds torchvision's classics and ShuffleNet-v2 here. What the
study knows of each model (family, year, published parameter count) is in `cards.py`.
"""

import difflib
from functools import cache, partial

import timm
import torch
import torchvision
from torch import nn

import oak.models.inception_resnet_v1  # noqa: F401  registers inception_resnet_v1 with timm
import oak.models.plain  # noqa: F401  registers plain18 and plain34 with timm
import oak.models.resnet_a  # noqa: F401  registers resnet18a and resnet34a (option A shortcuts) with timm
import oak.models.scaled  # noqa: F401  registers the one-dimension scalings of the scaling figures with timm
from oak.errors import OakError

SHUFFLENETS = [f"shufflenet_v2_x{width}" for width in ("0_5", "1_0", "1_5", "2_0")]


class DropoutLinear(nn.Linear):
    """A classifier that drops out its input features in training; its parameters keep a Linear's names.

    torchvision's ShuffleNet-v2 has no dropout; Ma et al.'s code (megvii-model/ShuffleNet-Series,
    ShuffleNetV2/network.py) puts Dropout(0.2) between the global pool and the classifier of 2.0x."""

    def __init__(self, linear: nn.Linear, drop_rate: float) -> None:
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None)
        self.load_state_dict(linear.state_dict())
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(self.dropout(features))


def _torchvision(name: str, num_classes: int, drop_rate: float = 0.0, drop_path_rate: float = 0.0, **kwargs) -> nn.Module:
    if drop_path_rate:
        raise OakError(f"{name} has no stochastic depth; set drop_path_rate=0")
    if not name.startswith("shufflenet"):
        kwargs["dropout"] = drop_rate
    if name == "googlenet":
        kwargs |= {"aux_logits": False, "init_weights": True}  # the auxiliary heads only serve training tricks of 2015
    net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **kwargs)
    if name.startswith("shufflenet") and drop_rate:
        net.fc = DropoutLinear(net.fc, drop_rate)
    return net


_TORCHVISION = {name: partial(_torchvision, name) for name in ["alexnet", "vgg16", "googlenet", "squeezenet1_1", *SHUFFLENETS]}


@cache
def available_models() -> tuple[str, ...]:
    return tuple(sorted(set(timm.list_models()) | set(_TORCHVISION)))


def check_model_name(name: str) -> None:
    """Raise an error that suggests the closest names unless `name` can be built."""
    if name not in available_models():
        closest = difflib.get_close_matches(name, list(available_models()), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(dict.fromkeys(closest))}" if closest else "; `oak models` lists the study's models"
        raise OakError(f"unknown model {name!r}{hint}")


def create_model(
    name: str, num_classes: int, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0, aux_logits: bool = False
) -> nn.Module:
    """A randomly initialised `name` with a `num_classes`-way classifier (and its auxiliary one, with `aux_logits`)."""
    check_model_name(name)
    if aux_logits and name != "inception_v3":
        raise OakError(f"{name} has no auxiliary classifier Oak trains (only inception_v3); set train.aux_loss_weight=0")
    if name in _TORCHVISION:
        return _TORCHVISION[name](num_classes=num_classes, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    kwargs = ({"drop_path_rate": drop_path_rate} if drop_path_rate else {}) | ({"aux_logits": True} if aux_logits else {})
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **kwargs)
    except TypeError as error:
        if "drop_path_rate" not in str(error):
            raise
        raise OakError(f"{name} has no stochastic depth; set drop_path_rate=0") from None


def set_batchnorm(net: nn.Module, *, momentum: float | None, eps: float | None) -> None:
    """Give every BatchNorm of `net` the recipe's momentum (PyTorch's convention) and epsilon, where set."""
    for layer in net.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                layer.momentum = momentum
            if eps is not None:
                layer.eps = eps


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_init_residual(net: nn.Module) -> None:
    """Start every residual block of `net` as the identity: zero the scale of the BatchNorm that ends
    its branch (Goyal et al. 2017, Accurate, Large Minibatch SGD, Sec. 5.1). timm does so for its ResNets
    (`zero_init_last`) but not for its MBConv blocks (EfficientNet, MobileNet), where `has_skip` marks
    a residual block and the branch's last BatchNorm is the block's last."""
    for block in net.modules():
        if hasattr(block, "zero_init_last"):
            block.zero_init_last()
        elif getattr(block, "has_skip", False):
            norms = [layer for layer in block.children() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]
            nn.init.zeros_(norms[-1].weight)
