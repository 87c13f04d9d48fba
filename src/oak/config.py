"""The typed schema of params.yaml, and loading it with `key=value` overrides.

params.yaml is the single source of settings; the training recipe it names (a file in
pipelines/recipes/) supplies the defaults of its `train` and `trainer` sections. OmegaConf merges
them over the schema below, so an unknown key or a value of the wrong type is an error that names
the key and the file.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.errors import OakError

PARAMS_FILE = Path("params.yaml")
RECIPES_DIR = Path("pipelines/recipes")
PROFILES = ("demo", "imagenet")  # the scales a study declares its runs at (see oak.plan)
RECIPE_SECTIONS = {"train", "trainer"}


@dataclass
class PathsConfig:
    """Where each stage writes; dvc.yaml reads the same values, so they are written once."""

    demo: str = "data/demo"
    shards: str = "data/shards"
    checkpoints: str = "models"  # <checkpoints>/<model>/last.ckpt
    metrics: str = "metrics"  # <metrics>/train/<model>.json, <metrics>/eval/<model>.json
    reports: str = "reports"


@dataclass
class DataConfig:
    source: str = "data/demo"  # an image tree (train/<wnid>/*.JPEG, val/...) or a folder of the official archives


@dataclass
class DemoConfig:
    classes: int = 10
    train_per_class: int = 100
    val_per_class: int = 30
    image_size: int = 72
    seed: int = 0


@dataclass
class PrepareConfig:
    samples_per_shard: int = 256
    seed: int = 0  # shuffles training samples across classes before sharding
    classes: Any = None  # null: all; a count (spread evenly over the sorted WordNet IDs); or a list of WordNet IDs
    workers: int = 1  # processes that check, convert and write; the shards do not depend on it
    mode: str = "passthrough"  # passthrough: the original JPEG bytes; resize: shorter side at most resize_short_side
    resize_short_side: int = 256
    resize_quality: int = 90  # JPEG quality of resized images
    on_bad: str = "fail"  # fail: stop before writing, listing every bad input; skip: leave them out, listed in _rejected.tsv
    strict_md5: bool = False  # an official archive with another MD5: a warning, or (true) an error


@dataclass
class TrainConfig:
    """A training recipe: pipelines/recipes/<recipe>.yaml sets these, params.yaml and overrides refine them."""

    epochs: int = 10  # Lightning's max_epochs
    batch_size: int = 16  # per device
    lr: float = 6e-3
    lr_batch_size: int | None = None  # linear scaling: lr is for this global batch; None: lr as given
    optimizer: str = "adamw"  # a timm optimizer: sgd (Nesterov), momentum, rmsproptf (EfficientNet's), adamw, ...
    momentum: float = 0.9  # for sgd, momentum and rmsprop*
    optimizer_eps: float | None = None  # None: the optimizer's default
    weight_decay: float = 0.05  # never applied to norms and biases
    schedule: str = "cosine"  # a timm scheduler, stepped per update: cosine, step or poly (decay_rate 1: linear to min_lr)
    warmup_epochs: float = 1  # linear warmup from 0, per update
    min_lr: float = 0.0
    decay_epochs: float = 30.0  # step: multiply the lr by decay_rate every decay_epochs
    decay_rate: float = 0.1  # step: the factor; poly: the power
    label_smoothing: float = 0.0
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth
    aux_loss_weight: float = 0.0  # > 0: build the model's auxiliary classifier (Inception-v3) and add its loss with this weight
    bn_momentum: float | None = None  # BatchNorm momentum in PyTorch's convention (1 - TensorFlow's: 0.01 is TF's 0.99); None: the model's
    bn_eps: float | None = None  # BatchNorm epsilon; None: the model's
    ema_decay: float | None = None  # keep an EMA of the weights (decay warmed up as TensorFlow's); validation and evaluation use it
    image_size: int = 64
    eval_image_size: int | None = None  # None: image_size (ResNet-RS tests larger than it trains)
    # Evaluation preprocessing, one per recipe (so one per study row's protocol), never a model's timm default:
    eval_crop_pct: float = 0.875  # resize the shorter side to eval_image_size / eval_crop_pct, then centre-crop
    eval_crops: int = 1  # 1: the centre crop; 10: the 4 corners and centre and their mirror images, softmax averaged
    interpolation: str = "bilinear"  # bilinear or bicubic, for both training crops and evaluation resizes
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    scale_min: float = 0.8  # lower bound of RandomResizedCrop's area fraction
    hflip: float = 0.5
    color_jitter: float = 0.0
    auto_augment: str | None = None  # timm's policy string, e.g. rand-m9-mstd0.5 for RandAugment
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    random_erasing: float = 0.0  # probability
    channels_last: bool = False
    compile: bool = False  # torch.compile the network
    checkpoint_every_n_steps: int | None = None  # besides every epoch: for long epochs on preemptible nodes
    num_workers: int = 1
    shuffle_buffer: int = 1000


@dataclass
class TrainerConfig:
    """Keyword arguments of lightning.Trainer, under Lightning's own names."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"  # 32-true, bf16-mixed, 16-mixed, ...
    sync_batchnorm: bool = False
    deterministic: bool = False
    accumulate_grad_batches: int = 1
    limit_train_batches: Any = 1.0  # an int: that many batches per epoch; a float: that fraction (Lightning's; `oak smoke` uses it)
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True


@dataclass
class EvaluateConfig:
    batch_size: int = 64
    num_workers: int = 1


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str | None = None  # None: oak-<the profile of pipelines/plan.yaml>, e.g. oak-demo, oak-imagenet
    log_checkpoints: bool = False  # upload the final checkpoint as a run artifact
    patience_seconds: float = 600.0  # how long a finishing stage waits for an unreachable tracking server


@dataclass
class BenchConfig:
    """Device measurements the reports use (`oak bench g1` for Table 4)."""

    g1_rounds: int = 9  # interleaved timing rounds; the median counts


@dataclass
class ReportConfig:
    title: str = "Oak results"


@dataclass
class OakConfig:
    seed: int = 0
    recipe: str | None = None  # pipelines/recipes/<recipe>.yaml: the train and trainer settings it starts from
    launch: str = ""  # prefix of the training command, e.g. srun or `torchrun --nproc-per-node 8 --no-python`
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def load_config(path: Path = PARAMS_FILE, overrides: list[str] = ()) -> DictConfig:
    """The schema, merged with the recipe, then `path` (when it exists), then `key=value` overrides.

    The recipe named by `path` or the overrides is read from `pipelines/recipes/` beside `path`.
    """
    layers = [(read_yaml(path), str(path))] if path.exists() else []
    if overrides:
        layers.append((_parse_overrides(overrides), "override"))
    config = _merged(OmegaConf.structured(OakConfig), layers)
    if config.recipe:
        recipe = path.parent / RECIPES_DIR / f"{config.recipe}.yaml"
        config = _merged(OmegaConf.structured(OakConfig), [(_read_recipe(recipe), str(recipe)), *layers])
    check_values(config)
    OmegaConf.set_readonly(config, True)
    return config


SCHEDULES = ("cosine", "step", "poly")
# Lightning's precision names (its aliases "16", "bf16", "32" and "64" too)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "transformer-engine", "16", "bf16", "32", "64")
INTERPOLATIONS = ("bilinear", "bicubic")
EVAL_CROPS = (1, 10)


def check_values(config: DictConfig) -> None:
    """Values the schema's types admit but no training can use: one error naming the key and the fix."""
    train = config.train
    problems = {
        "train.epochs": (train.epochs >= 1, "train at least 1 epoch"),
        "train.batch_size": (train.batch_size >= 1, "use a batch of at least 1 image per device"),
        "train.lr_batch_size": (
            train.lr_batch_size is None or train.lr_batch_size >= 1,
            "the batch the lr is for must be at least 1 image (null: the lr as given)",
        ),
        "train.schedule": (train.schedule in SCHEDULES, f"use one of {', '.join(SCHEDULES)}"),
        "train.interpolation": (train.interpolation in INTERPOLATIONS, f"use one of {', '.join(INTERPOLATIONS)}"),
        "train.eval_crops": (train.eval_crops in EVAL_CROPS, "use 1 (centre crop) or 10 (corners, centre and mirrors)"),
        "train.eval_crop_pct": (0 < train.eval_crop_pct <= 1, "use a fraction in (0, 1]"),
        "train.mean": (len(train.mean) == 3 and len(train.std) == 3, "give 3 values (R, G, B) for mean and std"),
        "train.aux_loss_weight": (train.aux_loss_weight >= 0, "use 0 (no auxiliary classifier) or a positive weight"),
        "trainer.precision": (config.trainer.precision in PRECISIONS, f"use one of {', '.join(PRECISIONS[:6])}"),
        "trainer.devices": (
            _valid_devices(config.trainer.devices),
            "use a count (2), -1 or auto for all, or device indices (0,1 or [0, 1])",
        ),
        "train.optimizer": (_known_optimizer(train.optimizer), "use a timm optimizer name, e.g. sgd, momentum, rmsproptf, adamw"),
        "train.auto_augment": (
            _known_policy(train.auto_augment),
            "use a timm policy, e.g. rand-m9-mstd0.5, v0r or augmix-m5-w4-d2, or null",
        ),
        "train.bn_momentum": (
            train.bn_momentum is None or 0 <= train.bn_momentum <= 1,
            "use PyTorch's convention, in [0, 1] (TensorFlow's 0.99 is 0.01)",
        ),
    }
    for key, (valid, fix) in problems.items():
        if not valid:
            raise OakError(f"{key}={OmegaConf.select(config, key)}: {fix}")
    if train.bn_momentum == 1 and not train.ema_decay:
        raise OakError(
            "train.bn_momentum=1 keeps only the last batch's BatchNorm statistics; "
            "set train.ema_decay to average them (as ResNet-RS does) or use a momentum below 1"
        )


def _valid_devices(devices: Any) -> bool:
    if isinstance(devices, int) or OmegaConf.is_list(devices):
        return all(isinstance(index, int) for index in (devices if OmegaConf.is_list(devices) else [devices]))
    text = str(devices).strip()
    return text == "auto" or text == "-1" or all(part.strip().isdigit() for part in text.split(","))


def _known_optimizer(name: str) -> bool:
    from timm.optim import list_optimizers

    return name.lower() in list_optimizers()


def _known_policy(policy: str | None) -> bool:
    """Whether timm builds `policy` (create_transform's dispatch: rand-*, augmix-*, else an AutoAugment policy)."""
    if not policy:
        return True
    from timm.data import auto_augment

    build = {"rand": auto_augment.rand_augment_transform, "augmix": auto_augment.augment_and_mix_transform}
    try:
        build.get(policy.split("-")[0], auto_augment.auto_augment_transform)(policy, {})
    except Exception:  # timm says "Unknown ..." by AssertionError, KeyError or ValueError, depending on the part
        return False
    return True


def flatten(config: DictConfig) -> dict[str, Any]:
    """`{"train.lr": 0.002, ...}`: the resolved config as dotted keys, for run params."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(config, resolve=True), "")
    return flat


def _merged(config: DictConfig, layers: list[tuple[DictConfig, str]]) -> DictConfig:
    for layer, source in layers:
        config = _merge(config, layer, source)
    return config


def _read_recipe(path: Path) -> DictConfig:
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise OakError(f"recipe {path.stem!r}: {path} not found; known recipes: {', '.join(known) or 'none'}")
    recipe = read_yaml(path)
    stray = sorted(set(recipe) - RECIPE_SECTIONS)
    if stray:
        raise OakError(f"{path}: a recipe sets only {' and '.join(sorted(RECIPE_SECTIONS))}; move {', '.join(stray)} to params.yaml")
    return recipe


def read_yaml(path: Path) -> DictConfig:
    """A YAML mapping (safe_load: no tags that build objects), or one error naming the file and line."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = f" ({error.problem})" if getattr(error, "problem", None) else ""
        raise OakError(f"{path}: not valid YAML{where}{problem}; fix the syntax") from None
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise OakError(f"{path}: expected a mapping of settings at the top level")
    return OmegaConf.create(content)


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item:
            raise OakError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as error:
        raise OakError(f"override: {_first_line(error)}") from None


def _merge(config: DictConfig, update: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(config, update)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        if "not in" in str(error):
            raise OakError(f"{source}: unknown key '{key}'; check its spelling against the schema in src/oak/config.py") from None
        raise OakError(f"{source}: key '{key}': {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
