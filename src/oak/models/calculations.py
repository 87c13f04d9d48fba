"""The paper's own calculations, reproduced: Table 3 and EfficientNet's compound scaling.

Each is computed from a general formula and set beside a measurement of real layers or models,
so a wrong formula and a wrong claim both show.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from oak.models.facts import count_macs_and_activations
from oak.models.registry import create_model


@dataclass(frozen=True)
class ConvShape:
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @property
    def output_positions(self) -> int:
        out_h = (self.height + 2 * self.padding - self.kernel) // self.stride + 1
        out_w = (self.width + 2 * self.padding - self.kernel) // self.stride + 1
        return out_h * out_w


# Table 3: a 7x7x3 input to a 5x5x128 output with 3x3 kernels, no padding.
TABLE_3 = ConvShape(height=7, width=7, in_channels=3, out_channels=128, kernel=3)


def regular_calculations(shape: ConvShape) -> int:
    """out_channels filters of kernel x kernel x in_channels, at every output position."""
    return shape.out_channels * shape.kernel * shape.kernel * shape.in_channels * shape.output_positions


def separable_calculations(shape: ConvShape) -> tuple[int, int]:
    """(depthwise, pointwise): in_channels filters of kernel x kernel x 1, then out_channels of 1 x 1 x in_channels."""
    depthwise = shape.in_channels * shape.kernel * shape.kernel * shape.output_positions
    pointwise = shape.out_channels * shape.in_channels * shape.output_positions
    return depthwise, pointwise


def measured_conv_macs(shape: ConvShape) -> tuple[int, int]:
    """(regular, separable) MACs of real bias-free PyTorch layers of this shape, counted by FlopCounterMode."""
    regular = nn.Conv2d(shape.in_channels, shape.out_channels, shape.kernel, shape.stride, shape.padding, bias=False)
    separable = nn.Sequential(
        nn.Conv2d(shape.in_channels, shape.in_channels, shape.kernel, shape.stride, shape.padding, groups=shape.in_channels, bias=False),
        nn.Conv2d(shape.in_channels, shape.out_channels, 1, bias=False),
    )
    image = torch.empty(1, shape.in_channels, shape.height, shape.width, device="meta")
    counts = []
    for layer in (regular, separable):
        counter = FlopCounterMode(display=False)
        with counter:
            layer.to("meta")(image)
        counts.append(counter.get_total_flops() // 2)
    return counts[0], counts[1]


# EfficientNet (Tan & Le 2019, section 3.3): depth alpha^phi, width beta^phi, resolution gamma^phi,
# found by grid search under alpha * beta^2 * gamma^2 ~ 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
# The released B0-B7 (width, depth, resolution), from the official efficientnet_builder.py, which
# timm's efficientnet_b* follow: hand-rounded, not alpha^phi.
RELEASED = {
    0: (1.0, 1.0, 224),
    1: (1.0, 1.1, 240),
    2: (1.1, 1.2, 260),
    3: (1.2, 1.4, 300),
    4: (1.4, 1.8, 380),
    5: (1.6, 2.2, 456),
    6: (1.8, 2.6, 528),
    7: (2.0, 3.1, 600),
}
B0_BLOCKS, B0_FEATURES = 16, 1280


@dataclass(frozen=True)
class ScalingRow:
    phi: int
    formula_depth: float
    formula_width: float
    formula_resolution: float  # gamma^phi x 224
    formula_flops_factor: float  # (alpha beta^2 gamma^2)^phi
    released_width: float
    released_depth: float
    released_resolution: int
    blocks: int  # counted in the built model
    width_measured: float  # head features / 1280, from the built model
    macs: int  # measured at the released resolution
    macs_vs_b0: float
    two_to_phi: int


def compound_scaling() -> list[ScalingRow]:
    rows, b0_macs = [], 0
    for phi, (width, depth, resolution) in RELEASED.items():
        with torch.device("meta"):
            model = create_model(f"efficientnet_b{phi}", num_classes=1000)
        macs, _ = count_macs_and_activations(model, resolution)
        b0_macs = b0_macs or macs
        rows.append(
            ScalingRow(
                phi,
                round(ALPHA**phi, 3),
                round(BETA**phi, 3),
                round(224 * GAMMA**phi, 1),
                round((ALPHA * BETA**2 * GAMMA**2) ** phi, 3),
                width,
                depth,
                resolution,
                sum(len(stage) for stage in model.blocks),
                model.num_features / B0_FEATURES,
                macs,
                round(macs / b0_macs, 2),
                2**phi,
            )
        )
    return rows


def calculations_text() -> str:
    """`oak calc`: Table 3 by formula and by real layers, and EfficientNet's compound scaling."""
    regular = regular_calculations(TABLE_3)
    depthwise, pointwise = separable_calculations(TABLE_3)
    measured_regular, measured_separable = measured_conv_macs(TABLE_3)
    lines = [
        "Table 3: 7x7x3 input, 5x5x128 output, 3x3 kernels",
        f"  depthwise separable: {depthwise} + {pointwise} = {depthwise + pointwise} (PyTorch layers measured: {measured_separable})",
        f"  regular:             {regular} (measured: {measured_regular}); ratio {regular / (depthwise + pointwise):.2f}x",
        "EfficientNet compound scaling (alpha 1.2, beta 1.1, gamma 1.15):",
    ]
    return "\n".join(lines + ["  " + ", ".join(f"{k}={v}" for k, v in asdict(row).items()) for row in compound_scaling()])


# Zhao 2024, Sec. 3.3 (from Tan and Le 2019, Sec. 3.3): doubling the depth doubles the FLOPs, doubling the width
# or the resolution multiplies them by four. B0 doubled in each, as Oak builds it: (model, resolution, stated factor).
DOUBLED = {"depth": ("efficientnet_b0_d2", 224, 2), "width": ("efficientnet_b0_w2", 224, 4), "resolution": ("efficientnet_b0", 448, 4)}


def doubling_macs() -> dict[str, tuple[float, int]]:
    """Each dimension doubled: (MACs against B0's at 224 px, counted; the factor the paper states)."""
    b0 = _macs("efficientnet_b0", 224)
    return {dimension: (_macs(model, resolution) / b0, stated) for dimension, (model, resolution, stated) in DOUBLED.items()}


def _macs(model: str, resolution: int) -> int:
    with torch.device("meta"):
        built = create_model(model, num_classes=1000)
    return count_macs_and_activations(built, resolution)[0]
