"""Models scaled in one dimension only, for the paper's scaling figures. Registered with timm.

- Fig. 4 (depth versus width): `resnet18_w1_5` and `resnet50_w1_5` widen every stage 1.5 times
  and keep the depth, which costs about the MACs of doubling the depth (`resnet34`, `resnet101`):
  the two ways of scaling compared at equal cost.
- Fig. 9 (one dimension versus compound scaling): `efficientnet_b0_w2` and `efficientnet_b0_d4`
  are EfficientNet-B0 with only its width multiplied by 2, or only its depth by 4, made by the
  generator timm builds B0 to B7 with (B1 is B0 at depth x1.1). Each costs about 4x B0's MACs,
  as does B0 at twice the resolution (scaling resolution alone: B0 trained at a larger image
  size) and, nearly, EfficientNet-B3, the compound-scaled model of that cost.
"""

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.efficientnet import EfficientNet, _gen_efficientnet
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, _cfg

WIDER = 1.5  # the width multiplier of the wider ResNets
RESNET_CHANNELS = tuple(round(WIDER * channels) for channels in (64, 128, 256, 512))

default_cfgs = generate_default_cfgs(
    {
        "resnet18_w1_5.untrained": _cfg(),
        "resnet50_w1_5.untrained": _cfg(),
        "efficientnet_b0_w2.untrained": _cfg(interpolation="bicubic"),
        "efficientnet_b0_d4.untrained": _cfg(interpolation="bicubic"),
    }
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


@register_model
def efficientnet_b0_w2(pretrained: bool = False, **kwargs) -> EfficientNet:
    return _gen_efficientnet("efficientnet_b0_w2", channel_multiplier=2.0, depth_multiplier=1.0, pretrained=pretrained, **kwargs)


@register_model
def efficientnet_b0_d4(pretrained: bool = False, **kwargs) -> EfficientNet:
    return _gen_efficientnet("efficientnet_b0_d4", channel_multiplier=1.0, depth_multiplier=4.0, pretrained=pretrained, **kwargs)
