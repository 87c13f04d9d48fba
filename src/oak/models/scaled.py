"""Models scaled in one dimension only, for the paper's scaling figures. Registered with timm.

- Fig. 4 (depth versus width): `resnet18_w1_5` and `resnet50_w1_5` widen every stage 1.5 times
  and keep the depth, which costs about the MACs of doubling the depth (`resnet34`, `resnet101`):
  the two ways of scaling compared at equal cost.
- Fig. 9 (one dimension versus compound scaling): `efficientnet_b0_w<m>` and `efficientnet_b0_d<m>`
  are EfficientNet-B0 with only its width, or only its depth, multiplied by m, made by the
  generator timm builds B0 to B7 with (B1 is B0 at depth x1.1): width x1.4, x2 and x2.6, depth x2,
  x4 and x8, three points per line for the saturation Tan and Le show (their Fig. 3 scales each
  dimension further, up to width x5, depth x8 and 560 px). Width x2 and depth x4 cost about 4x B0's
  MACs, as do B0 at twice the resolution (scaling resolution alone: B0 trained at a larger image
  size) and, nearly, EfficientNet-B3, the compound-scaled model of that cost.
"""

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.efficientnet import EfficientNet, _gen_efficientnet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, _cfg

WIDER = 1.5  # the width multiplier of the wider ResNets
RESNET_CHANNELS = tuple(round(WIDER * channels) for channels in (64, 128, 256, 512))
# EfficientNet-B0 scaled in one dimension: name -> (width multiplier, depth multiplier)
EFFICIENTNET_B0_SCALINGS = {
    "efficientnet_b0_w1_4": (1.4, 1.0),
    "efficientnet_b0_w2": (2.0, 1.0),
    "efficientnet_b0_w2_6": (2.6, 1.0),
    "efficientnet_b0_d2": (1.0, 2.0),
    "efficientnet_b0_d4": (1.0, 4.0),
    "efficientnet_b0_d8": (1.0, 8.0),
}

default_cfgs = generate_default_cfgs(
    {
        "resnet18_w1_5.untrained": _cfg(),
        "resnet50_w1_5.untrained": _cfg(),
    }
    | {f"{name}.untrained": _cfg(interpolation="bicubic") for name in EFFICIENTNET_B0_SCALINGS}
)


@register_model
def resnet18_w1_5(pretrained: bool = False, **kwargs) -> ResNet:
    return build_model_with_cfg(
        ResNet, "resnet18_w1_5", pretrained, block=BasicBlock, layers=(2, 2, 2, 2), channels=RESNET_CHANNELS, **kwargs
    )


@register_model
def resnet50_w1_5(pretrained: bool = False, **kwargs) -> ResNet:
    return build_model_with_cfg(
        ResNet, "resnet50_w1_5", pretrained, block=Bottleneck, layers=(3, 4, 6, 3), channels=RESNET_CHANNELS, **kwargs
    )


def _register_scaled_b0(name: str, width: float, depth: float) -> None:
    def build(pretrained: bool = False, **kwargs) -> EfficientNet:
        return _gen_efficientnet(name, channel_multiplier=width, depth_multiplier=depth, pretrained=pretrained, **kwargs)

    build.__name__ = name  # timm registers a model under its function's name
    register_model(build)


for _name, (_width, _depth) in EFFICIENTNET_B0_SCALINGS.items():
    _register_scaled_b0(_name, _width, _depth)
