"""He et al. 2016's ResNets as Table 2 of the paper compares them with plain nets: option A shortcuts.

Registered with timm as `resnet18a` and `resnet34a`. Every shortcut is the identity; where a stage
halves the resolution and widens the channels, the identity is subsampled by the stride and padded
with zero channels ("option A", section 3.3), so the ResNet has exactly its plain twin's parameters.
timm's `resnet18`/`resnet34` use 1x1 projection shortcuts there (option B).

Every block's last BatchNorm starts at scale 1, as He et al. initialised them and as Oak's plain twins
(`plain.py`) are: timm's `zero_init_last`, on by default, would start each residual block as the identity,
an advantage Table 1's plain rows do not get. A recipe's `zero_init_residual` still zeroes them.
"""

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, ResNet, _cfg
from torch import nn
from torch.nn import functional as F


class ZeroPadShortcut(nn.Module):
    """The identity, subsampled by `stride`, with `extra_channels` zero channels appended."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra_channels))


default_cfgs = generate_default_cfgs({"resnet18a.untrained": _cfg(), "resnet34a.untrained": _cfg()})


def _create_option_a(variant: str, layers: tuple[int, ...], pretrained: bool, **kwargs) -> ResNet:
    model = build_model_with_cfg(ResNet, variant, pretrained, block=BasicBlock, layers=layers, zero_init_last=False, **kwargs)
    for block in model.modules():
        if isinstance(block, BasicBlock) and block.downsample is not None:
            block.downsample = ZeroPadShortcut(block.conv1.stride[0], block.conv2.out_channels - block.conv1.in_channels)
    return model


@register_model
def resnet18a(pretrained: bool = False, **kwargs) -> ResNet:
    return _create_option_a("resnet18a", (2, 2, 2, 2), pretrained, **kwargs)


@register_model
def resnet34a(pretrained: bool = False, **kwargs) -> ResNet:
    return _create_option_a("resnet34a", (3, 4, 6, 3), pretrained, **kwargs)
