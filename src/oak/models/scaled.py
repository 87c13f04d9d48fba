"""Models scaled in one dimension only, for the paper's scaling figures. Registered with timm.

- Fig. 4 (depth versus width): `resnet18_w1_5` and `resnet50_w1_5` widen every stage 1.5 times
  and keep the depth, which costs about the MACs of doubling the depth (`resnet34`, `resnet101`):
  the two ways of scaling compared at equal cost. `resnet50_w2` widens every stage 2 times (about 4x
  ResNet-50's MACs), the last point of Bello et al. 2021's width lines (multipliers 1, 1.5 and 2).
- Fig. 3/6 (training methods versus architecture): `resnet200_se` is ResNet-200 with ResNet-RS's
  squeeze-and-excitation blocks (ratio 0.25, as timm's resnetrs and Bello et al. 2021, section 4.1) and
  without its ResNet-D stem and downsampling: the chain's "+ squeeze-and-excitation" step (82.9), between
  ResNet-200 with every training method (82.2) and ResNet-RS-200 (+ ResNet-D, 83.4).
- Fig. 9 (one dimension versus compound scaling): `efficientnet_b0_w<m>` and `efficientnet_b0_d<m>`
  are EfficientNet-B0 with only its width, or only its depth, multiplied by m, made by the
  generator timm builds B0 to B7 with (B1 is B0 at depth x1.1): width x1.4, x2 and x2.6, depth x2,
  x4 and x8, three points per line for the saturation Tan and Le show (their Fig. 3 scales each
  dimension further, up to width x5, depth x8 and 560 px). Width x2 and depth x4 cost about 4x B0's
  MACs, as do B0 at twice the resolution (scaling resolution alone: B0 trained at a larger image
  size) and, nearly, EfficientNet-B3, the compound-scaled model of that cost.
"""

from functools import partial

from timm.layers import get_attn
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.efficientnet import EfficientNet, _gen_efficientnet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, _cfg

RESNET_STAGE_CHANNELS = (64, 128, 256, 512)
RESNET_SE_RATIO = 0.25  # ResNet-RS's squeeze-and-excitation reduction (timm's resnetrs: rd_ratio=0.25)
# EfficientNet-B0 scaled in one dimension: name -> (width multiplier, depth multiplier)
EFFICIENTNET_B0_SCALINGS = {
    "efficientnet_b0_w1_4": (1.4, 1.0),
    "efficientnet_b0_w2": (2.0, 1.0),
    "efficientnet_b0_w2_6": (2.6, 1.0),
    "efficientnet_b0_d2": (1.0, 2.0),
    "efficientnet_b0_d4": (1.0, 4.0),
    "efficientnet_b0_d8": (1.0, 8.0),
}

# The wider ResNets: name -> (block, blocks per stage, width multiplier of every stage)
WIDER_RESNETS = {
    "resnet18_w1_5": (BasicBlock, (2, 2, 2, 2), 1.5),
    "resnet50_w1_5": (Bottleneck, (3, 4, 6, 3), 1.5),
    "resnet50_w2": (Bottleneck, (3, 4, 6, 3), 2.0),
}

default_cfgs = generate_default_cfgs(
    {f"{name}.untrained": _cfg() for name in [*WIDER_RESNETS, "resnet200_se"]}
    | {f"{name}.untrained": _cfg(interpolation="bicubic") for name in EFFICIENTNET_B0_SCALINGS}
)


def _register_wider_resnet(name: str, block: type, layers: tuple[int, ...], width: float) -> None:
    channels = tuple(round(width * stage) for stage in RESNET_STAGE_CHANNELS)

    def build(pretrained: bool = False, **kwargs) -> ResNet:
        return build_model_with_cfg(ResNet, name, pretrained, block=block, layers=layers, channels=channels, **kwargs)

    build.__name__ = name  # timm registers a model under its function's name
    register_model(build)


for _name, (_block, _layers, _width) in WIDER_RESNETS.items():
    _register_wider_resnet(_name, _block, _layers, _width)


@register_model
def resnet200_se(pretrained: bool = False, **kwargs) -> ResNet:
    squeeze_excite = partial(get_attn("se"), rd_ratio=RESNET_SE_RATIO)
    return build_model_with_cfg(
        ResNet, "resnet200_se", pretrained, block=Bottleneck, layers=(3, 24, 36, 3), block_args=dict(attn_layer=squeeze_excite), **kwargs
    )


def _register_scaled_b0(name: str, width: float, depth: float) -> None:
    def build(pretrained: bool = False, **kwargs) -> EfficientNet:
        return _gen_efficientnet(name, channel_multiplier=width, depth_multiplier=depth, pretrained=pretrained, **kwargs)

    build.__name__ = name  # timm registers a model under its function's name
    register_model(build)


for _name, (_width, _depth) in EFFICIENTNET_B0_SCALINGS.items():
    _register_scaled_b0(_name, _width, _depth)
