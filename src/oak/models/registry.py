"""`create_model(name, num_classes)`: timm's models, and Oak's own under the same call.

Oak adds the study's models that timm lacks (ShuffleNet-v2, from torchvision) to its own table;
every other name goes to `timm.create_model`.
"""

import difflib
from collections.abc import Callable
from functools import cache, partial

import timm
import torchvision
from torch import nn

from oak.errors import OakError

def _torchvision_shufflenet(variant: str, num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    if drop_rate:
        raise OakError(f"shufflenet_v2_{variant} has no dropout layer; set train.drop_rate=0")
    return getattr(torchvision.models, f"shufflenet_v2_{variant}")(weights=None, num_classes=num_classes)


_OAK_MODELS: dict[str, Callable[..., nn.Module]] = {
    f"shufflenet_v2_{variant}": partial(_torchvision_shufflenet, variant) for variant in ("x0_5", "x1_0", "x1_5", "x2_0")
}


@cache
def available_models() -> tuple[str, ...]:
    return tuple(sorted(set(timm.list_models()) | set(_OAK_MODELS)))


def create_model(name: str, num_classes: int, *, drop_rate: float = 0.0) -> nn.Module:
    """A randomly initialised `name` with a `num_classes`-way classifier."""
    if name in _OAK_MODELS:
        return _OAK_MODELS[name](num_classes=num_classes, drop_rate=drop_rate)
    if name not in available_models():
        closest = difflib.get_close_matches(name, available_models(), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(closest)}" if closest else "; `python -c 'import timm; print(timm.list_models())'` lists timm's"
        raise OakError(f"unknown model {name!r}{hint}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
