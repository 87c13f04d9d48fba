"""He et al. 2016's plain networks: ResNet-18 and ResNet-34 without shortcut connections.

Registered with timm, so `timm.create_model("plain18")` builds them. Each block is timm's
BasicBlock with the shortcut taken out: no identity sum, and no downsample projection (an unused
layer would break DDP and leave parameters without gradients). The last batch norm of a block
keeps its default init: zero-initialising it, as timm does for residual blocks, would make a
plain net output a constant.
"""

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, ResNet, _cfg

from oak.errors import OakError


class PlainBlock(BasicBlock):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, drop_path=None, **kwargs) -> None:
        if drop_path is not None:
            raise OakError("plain networks have no residual branch to drop; set drop_path_rate=0")
        super().__init__(inplanes, planes, stride, None, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        return self.act2(x)

    def zero_init_last(self) -> None:
        """Nothing to do: without a shortcut, a zeroed last BatchNorm would stop the signal, not pass it on."""


default_cfgs = generate_default_cfgs({"plain18.untrained": _cfg(), "plain34.untrained": _cfg()})


def _create_plain(variant: str, layers: tuple[int, ...], pretrained: bool, **kwargs) -> ResNet:
    return build_model_with_cfg(ResNet, variant, pretrained, block=PlainBlock, layers=layers, zero_init_last=False, **kwargs)


@register_model
def plain18(pretrained: bool = False, **kwargs) -> ResNet:
    return _create_plain("plain18", (2, 2, 2, 2), pretrained, **kwargs)


@register_model
def plain34(pretrained: bool = False, **kwargs) -> ResNet:
    return _create_plain("plain34", (3, 4, 6, 3), pretrained, **kwargs)
