"""Architecture facts computed from the model itself, on the meta device: no weights, no memory.

Parameters, MACs (multiply-accumulates of the convolutions and linear layers, as torch's FlopCounterMode
counts them, FLOPs / 2: a test checks every model of the zoo) and activations (elements output by every
convolution and linear layer, the count used by Radosavovic et al. 2020) at a resolution, plus the
model's native data configuration.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache

import torch
import torchvision
from torch import nn

from oak.models.cards import model_card
from oak.models.registry import create_model, parameter_count


@dataclass(frozen=True)
class DataFacts:
    weights: str  # whose preprocessing this is: timm's default pretrained tag, or torchvision's weights
    train_size: int
    test_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelFacts:
    name: str
    family: str
    year: int | None
    reference: str
    params: int
    batchnorm_statistics: int  # BatchNorm's moving means and variances: among the parameters as TensorFlow counts them
    published_params: int | None
    params_source: str
    resolution: int  # the MACs and activations below are for one image of this size
    macs: int
    activations: int
    data: DataFacts

    def as_dict(self) -> dict:
        return asdict(self)


def data_facts(name: str, model: nn.Module) -> DataFacts:
    """The input a model was trained and evaluated at: timm's pretrained config, or torchvision's weights' transforms."""
    config = getattr(model, "pretrained_cfg", None)
    if config:
        test_size = config.get("test_input_size", config["input_size"])[-1]
        return DataFacts(
            weights=f"timm {config['architecture']}.{config['tag']}",
            train_size=config["input_size"][-1],
            test_size=test_size,
            crop_pct=config["crop_pct"],
            interpolation=config["interpolation"],
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
        )
    weights = torchvision.models.get_model_weights(name).DEFAULT
    preset = weights.transforms()
    crop, resize = preset.crop_size[0], preset.resize_size[0]
    return DataFacts(
        weights=f"torchvision {weights}",
        train_size=crop,
        test_size=crop,
        crop_pct=round(crop / resize, 4),
        interpolation=preset.interpolation.value,
        mean=tuple(preset.mean),
        std=tuple(preset.std),
    )


def count_macs_and_activations(model: nn.Module, resolution: int) -> tuple[int, int]:
    """One image's multiply-accumulates and activations, from each layer's output shape: every output element of
    a convolution or linear layer costs one multiply-accumulate per weight of its filter (`weight[0]`). A
    hook per layer instead of FlopCounterMode's pass over every operator: 10.0 s against 16.0 s for the 48
    models at two resolutions (this machine), and the report counts 59 (model, resolution) pairs."""
    macs = activations = 0

    def count_output(module: nn.Conv2d | nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs, activations
        activations += output.numel()
        macs += output.numel() * module.weight[0].numel()

    hooks = [m.register_forward_hook(count_output) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad(), _batchnorms_bypassed(model):
        model.eval()(torch.empty(1, 3, resolution, resolution, device="meta"))
    for hook in hooks:
        hook.remove()
    return macs, activations


@contextmanager
def _batchnorms_bypassed(model: nn.Module) -> Iterator[None]:
    """Every BatchNorm (timm's with its activation) replaced by the identity, then put back: they change no
    shape, and their meta kernels took most of the pass (48 models at 224 px: 5.9 s with, 1.6 s without)."""
    children = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()]
    bypassed = [(parent, name, child) for parent, name, child in children if isinstance(child, nn.BatchNorm2d)]
    for parent, name, _ in bypassed:
        setattr(parent, name, nn.Identity())
    try:
        yield
    finally:
        for parent, name, child in bypassed:
            setattr(parent, name, child)


def batchnorm_statistics(model: nn.Module) -> int:
    """The moving mean and variance of every BatchNorm: buffers to PyTorch, weights to TensorFlow, whose
    `count_params` (and the papers that quote it, e.g. EfficientNet's) counts them as parameters."""
    return sum(buffer.numel() for name, buffer in model.named_buffers() if name.endswith(("running_mean", "running_var")))


@cache  # about a second a model on the meta device; a plan asks for each model at each resolution several times
def model_facts(name: str, resolution: int | None = None, num_classes: int = 1000) -> ModelFacts:
    """The facts of `name`; MACs and activations at `resolution`, else at its native test size."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes)
    data = data_facts(name, model)
    resolution = resolution or data.test_size
    macs, activations = count_macs_and_activations(model, resolution)
    card = model_card(name)
    return ModelFacts(
        name,
        card.family,
        card.year,
        card.reference,
        parameter_count(model),
        batchnorm_statistics(model),
        card.published_params,
        card.source,
        resolution,
        macs,
        activations,
        data,
    )


def facts_table(facts: list[ModelFacts]) -> str:
    """`oak models`: one line per model."""
    lines = [
        f"{'model':24} {'family':12} {'year':>4} {'params':>14} {'published':>12} {'res':>4} {'GMACs':>8}"
        f" {'activ. (M)':>10} {'train/test':>9} {'crop':>6} interp."
    ]
    for f in facts:
        published = f"{f.published_params:,}" if f.published_params else "-"
        sizes = f"{f.data.train_size}/{f.data.test_size}"
        lines.append(
            f"{f.name:24} {f.family:12} {f.year or '-':>4} {f.params:>14,} {published:>12} {f.resolution:>4} {f.macs / 1e9:>8.3f}"
            f" {f.activations / 1e6:>10.2f} {sizes:>9} {f.data.crop_pct:>6} {f.data.interpolation}"
        )
    return "\n".join(lines)
