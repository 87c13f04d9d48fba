"""The schema of Oak's settings: every key's type and meaning, and the one table of their values.

Each value is written once. params.yaml holds the value of every key marked MISSING below (the
repository's settings, which dvc.yaml reads and `dvc exp run -S` changes); the schema holds the
defaults of the recipe keys (`train.*` and `trainer.*` below with a value), which a recipe in
pipelines/recipes/ sets where its paper says otherwise. A test keeps the two apart. The range of every
numeric key is in oak.config.checks (RANGES), checked as the settings load; a test keeps it complete.
"""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PathsConfig:
    """Where each stage writes; dvc.yaml reads the same values, so they are written once."""

    demo: str = MISSING
    shards: str = MISSING
    checkpoints: str = MISSING  # <checkpoints>/<run>/: checkpoint, run record, curves (see oak.layout)
    metrics: str = MISSING  # <metrics>/{train,eval,curves}/<run>.*, facts, bench, devices (see oak.layout)
    reports: str = MISSING
    logs: str = MISSING  # <logs>/slurm/: the jobs of `oak submit` (not tracked: local to this checkout)
    weights: str = MISSING  # released weights files for the published profile, looked for before the download caches


@dataclass
class DataConfig:
    source: str = MISSING  # an image tree (train/<wnid>/*.JPEG, val/...) or a folder of the official archives


@dataclass
class DemoConfig:
    classes: int = MISSING
    train_per_class: int = MISSING
    val_per_class: int = MISSING
    image_size: int = MISSING
    seed: int = MISSING


@dataclass
class PrepareConfig:
    samples_per_shard: int = MISSING
    seed: int = MISSING  # shuffles training samples across classes before sharding
    classes: Any = MISSING  # null: all; a count (spread evenly over the sorted WordNet IDs); or a list of WordNet IDs
    workers: int = MISSING  # processes that check, convert and write; the shards do not depend on it
    # passthrough: the original JPEG bytes; resize: shorter side at most resize_short_side; cap: longer side at most
    # cap_long_side (low-resolution shards that decode faster, as FFCV's; see oak.preparing.images)
    mode: str = MISSING
    resize_short_side: int = MISSING
    resize_quality: int = MISSING  # JPEG quality of resized (and capped) images
    cap_long_side: int = MISSING
    on_bad: str = MISSING  # fail: stop before writing, listing every bad input; skip: leave them out, listed in _rejected.tsv
    strict_md5: bool = MISSING  # an official archive with another MD5: a warning, or (true) an error


@dataclass
class TrainConfig:
    """A training recipe: pipelines/recipes/<recipe>.yaml sets these, params.yaml and overrides refine them."""

    epochs: int = 10  # Lightning's max_epochs
    batch_size: int = 16  # per device
    lr: float = 6e-3
    lr_batch_size: int | None = None  # linear scaling: lr is for this global batch; None: lr as given
    # The global batch of the source the recipe follows (its paper's or reference code's). Settings counted in
    # updates are for it: a run at another global batch scales them (ema_decay_per_update) and says so.
    reference_batch_size: int | None = None
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
    # Each residual block starts as the identity (its last BatchNorm's scale 0); timm's own ResNets always do,
    # Oak's option-A ResNets (resnet18a, resnet34a) only with this set
    zero_init_residual: bool = False
    # Keep an EMA of the weights (decay warmed up as TensorFlow's); validation and evaluation use it. The decay per
    # update at reference_batch_size: the run applies ema_decay_per_update, the same average over epochs at its batch.
    ema_decay: float | None = None
    image_size: int = 64
    eval_image_size: int | None = None  # None: image_size (ResNet-RS tests larger than it trains)
    # Progressive resizing (FFCV's, see oak.loading.progressive): the training size rises from progressive_min_size
    # at progressive_start_epoch linearly to image_size at progressive_end_epoch (multiples of 32 px in between); None: off
    progressive_min_size: int | None = None
    progressive_start_epoch: int = 0
    progressive_end_epoch: int = 0
    # Evaluation preprocessing, one per recipe (so one per study row's protocol), never a model's timm default:
    eval_crop_pct: float | None = 0.875  # resize the shorter side to eval_image_size / eval_crop_pct, then centre-crop
    # Or a rule (with eval_crop_pct null): the crop fraction is eval size / (eval size + eval_crop_padding), as
    # tensorflow/tpu's preprocessing cropped when ResNet-RS and EfficientNet were released (CROP_PADDING 32 at
    # tensorflow/tpu@8b3e577 and @80c0773: 0.833 at 160 px, 0.909 at 320); eval_crop_pct is resolved to it
    eval_crop_padding: int | None = None
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
    # PyTorch's intra-op threads in each training and evaluation process; None: its default, one per core.
    # A CPU run's bits depend on it: fixed, they no longer depend on the machine's core count.
    cpu_threads: int | None = None
    compile: bool = False  # torch.compile the network
    checkpoint_every_n_steps: int | None = None  # besides every epoch: for long epochs on preemptible nodes
    # Where JPEGs are decoded and augmented: loader (Pillow, in the loader workers), device (torchvision's
    # decode_jpeg, nvJPEG on a GPU, see oak.loading.on_device), or auto: device on a GPU unless the recipe has auto_augment
    decode: str = "auto"
    # Loader workers per device; None: the node's cores (SLURM's allocation, else this process's) shared by its
    # devices, less one each. The order of the training samples depends on this count (each worker shuffles its own piece of the epoch).
    num_workers: int | None = None
    shuffle_buffer: int = MISSING
    # Resolved as the settings load (oak.config.resolve), never set: what this run's devices make of the recipe,
    # so that MLflow's params and the run's config.yaml show it.
    global_batch_size: int | None = None  # batch_size x trainer.devices x num_nodes x accumulate_grad_batches
    ema_decay_per_update: float | None = None  # ema_decay ** (global_batch_size / reference_batch_size)


@dataclass
class Difference:
    """One way a recipe differs from the source it follows, as the recipe declares it (`differences:`)."""

    setting: str  # what differs: an Oak key (train.color_jitter) or a part of the method (the schedule's shape)
    source_value: str  # what the source does
    oak_value: str  # what Oak does
    why: str  # why Oak differs, and what it may cost
    cited: str  # where the source says so: the paper's section or the reference code's file


@dataclass
class RecipeNotes:
    """What a recipe file says of itself beside its settings: the source it follows and how it differs from it."""

    source: str | None = None  # the paper and reference code, as the report cites them (every shipped recipe names one)
    differences: list[Difference] = field(default_factory=list)


# What can change a run's result, besides the model, its data and the whole `train` section: MLflow's
# run comparison then shows what differs, not paths, tracking, cluster or report settings.
DECISIVE_TRAINER_KEYS = (
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "precision",
    "sync_batchnorm",
    "deterministic",
    "accumulate_grad_batches",
    "limit_train_batches",
    "gradient_clip_val",
)


@dataclass
class TrainerConfig:
    """Keyword arguments of lightning.Trainer, under Lightning's own names."""

    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    strategy: str = MISSING
    precision: str = "32-true"  # 32-true, bf16-mixed, 16-mixed, ...
    sync_batchnorm: bool = False
    deterministic: bool = False
    accumulate_grad_batches: int = 1
    limit_train_batches: Any = 1.0  # an int: that many batches per epoch; a float: that fraction (Lightning's; `oak smoke` uses it)
    gradient_clip_val: float | None = None
    log_every_n_steps: int = MISSING
    enable_progress_bar: bool | None = MISSING  # None: a bar on a terminal, else lines (oak.training.progress)


@dataclass
class EvaluateConfig:
    batch_size: int = MISSING
    num_workers: int | None = MISSING  # None: as train.num_workers


@dataclass
class TrackingConfig:
    uri: str | None = MISSING  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str | None = MISSING  # None: oak-<the profile of pipelines/plan.yaml>, e.g. oak-demo, oak-imagenet
    log_checkpoints: bool = MISSING  # upload the final checkpoint as a run artifact
    patience_seconds: float = MISSING  # how long a finishing stage waits for an unreachable tracking server


@dataclass
class ClusterConfig:
    """`oak submit`: how each SLURM job is sized beside its run's devices and nodes (a study may set these per row)."""

    partition: str | None = MISSING  # None: the cluster's default partition
    account: str | None = MISSING
    time: str = MISSING  # each job's time limit, as sbatch reads it; a requeued training resumes from its checkpoint
    cpus_per_task: int = MISSING  # per device: its loader workers and its main process
    gpus: bool = MISSING  # ask for a GPU per device (--gpus-per-node); false on a CPU cluster
    sbatch: list[str] = MISSING  # more options for every job, e.g. ["--qos=high", "--constraint=h200"]


@dataclass
class BenchConfig:
    """Device measurements the reports use (`oak bench g1` for Table 4)."""

    g1_rounds: int = MISSING  # interleaved timing rounds; the median counts


@dataclass
class ReportConfig:
    title: str = MISSING


@dataclass
class OakConfig:
    seed: int = MISSING
    recipe: str | None = MISSING  # pipelines/recipes/<recipe>.yaml: the train and trainer settings it starts from
    launch: str = MISSING  # prefix of the training command, e.g. srun or `torchrun --nproc-per-node 8 --no-python`
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
