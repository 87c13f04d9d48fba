"""Inception-ResNet-v1 for ImageNet (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", Figures 7 and 10-14), which timm lacks.

Written in the style of timm's `inception_resnet_v2.py` and registered with timm, so
`timm.create_model("inception_resnet_v1")` builds it. Channel counts are the paper's: stem to
256 channels at 35x35, 5 Inception-ResNet-A blocks, Reduction-A with (k, l, m, n) =
(192, 192, 256, 384), 10 Inception-ResNet-B blocks at 896 channels, Reduction-B, 5
Inception-ResNet-C blocks at 1792 channels. Residuals are scaled before the sum (section 3.3
suggests 0.1 to 0.3; the values are those of timm's v2). Batch norm sits on the plain
convolutions only, not on the residual projections, as in the paper.
"""

from functools import partial

import torch
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.layers import ConvNormAct, create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

conv_block = partial(ConvNormAct, padding=0, norm_kwargs=dict(eps=1e-3), act_kwargs=dict(inplace=True))


def _branch(*layers: tuple[int, int, int | tuple[int, int], int, int | tuple[int, int]]) -> nn.Sequential:
    """Convolutions in sequence, each given as (in, out, kernel, stride, padding)."""
    return nn.Sequential(*[conv_block(c_in, c_out, kernel_size=k, stride=s, padding=p) for c_in, c_out, k, s, p in layers])


class ResidualInception(nn.Module):
    """An Inception-ResNet block: parallel branches, concatenated, projected by a linear 1x1
    convolution back to the input width, scaled, added to the input, then ReLU (Figures 10, 11, 13)."""

    def __init__(self, channels: int, branches: list[nn.Sequential], concat_channels: int, scale: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.project = nn.Conv2d(concat_channels, channels, kernel_size=1)
        self.scale = scale
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.project(torch.cat([branch(x) for branch in self.branches], 1))
        return self.act(x + self.scale * residual)


def block_a(scale: float = 0.17) -> ResidualInception:  # Figure 10, 35x35x256
    return ResidualInception(
        256,
        [
            _branch((256, 32, 1, 1, 0)),
            _branch((256, 32, 1, 1, 0), (32, 32, 3, 1, 1)),
            _branch((256, 32, 1, 1, 0), (32, 32, 3, 1, 1), (32, 32, 3, 1, 1)),
        ],
        96,
        scale,
    )


def block_b(scale: float = 0.10) -> ResidualInception:  # Figure 11, 17x17x896
    return ResidualInception(
        896,
        [_branch((896, 128, 1, 1, 0)), _branch((896, 128, 1, 1, 0), (128, 128, (1, 7), 1, (0, 3)), (128, 128, (7, 1), 1, (3, 0)))],
        256,
        scale,
    )


def block_c(scale: float = 0.20) -> ResidualInception:  # Figure 13, 8x8x1792
    return ResidualInception(
        1792,
        [_branch((1792, 192, 1, 1, 0)), _branch((1792, 192, 1, 1, 0), (192, 192, (1, 3), 1, (0, 1)), (192, 192, (3, 1), 1, (1, 0)))],
        384,
        scale,
    )


class Reduction(nn.Module):
    """Parallel stride-2 branches and a max pool, concatenated (Figures 7 and 12)."""

    def __init__(self, branches: list[nn.Sequential]) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2)
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x)] + [branch(x) for branch in self.branches], 1)


def reduction_a() -> Reduction:  # Figure 7 with k=192, l=192, m=256, n=384: 35x35x256 -> 17x17x896
    return Reduction([_branch((256, 384, 3, 2, 0)), _branch((256, 192, 1, 1, 0), (192, 192, 3, 1, 1), (192, 256, 3, 2, 0))])


def reduction_b() -> Reduction:  # Figure 12: 17x17x896 -> 8x8x1792
    return Reduction(
        [
            _branch((896, 256, 1, 1, 0), (256, 384, 3, 2, 0)),
            _branch((896, 256, 1, 1, 0), (256, 256, 3, 2, 0)),
            _branch((896, 256, 1, 1, 0), (256, 256, 3, 1, 1), (256, 256, 3, 2, 0)),
        ]
    )


class InceptionResnetV1(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, global_pool: str = "avg") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = 1792
        self.stem = nn.Sequential(  # Figure 14: 299x299x3 -> 35x35x256
            conv_block(in_chans, 32, kernel_size=3, stride=2),
            conv_block(32, 32, kernel_size=3),
            conv_block(32, 64, kernel_size=3, padding=1),
            nn.MaxPool2d(3, stride=2),
            conv_block(64, 80, kernel_size=1),
            conv_block(80, 192, kernel_size=3),
            conv_block(192, 256, kernel_size=3, stride=2),
        )
        self.blocks = nn.Sequential(
            *[block_a() for _ in range(5)], reduction_a(), *[block_b() for _ in range(10)], reduction_b(), *[block_c() for _ in range(5)]
        )
        self.global_pool, self.head_drop, self.classif = create_classifier(
            self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.classif(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classif


default_cfgs = generate_default_cfgs(
    {
        "inception_resnet_v1.untrained": {
            "num_classes": 1000,
            "input_size": (3, 299, 299),
            "pool_size": (8, 8),
            "crop_pct": 0.8975,
            "interpolation": "bicubic",
            "mean": IMAGENET_INCEPTION_MEAN,
            "std": IMAGENET_INCEPTION_STD,
            "first_conv": "stem.0.conv",
            "classifier": "classif",
        }
    }
)


@register_model
def inception_resnet_v1(pretrained: bool = False, **kwargs) -> InceptionResnetV1:
    return build_model_with_cfg(InceptionResnetV1, "inception_resnet_v1", pretrained, **kwargs)
