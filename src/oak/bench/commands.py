"""`oak bench MEASUREMENT`: one subcommand per measurement, each with only its own options.

Fixed defaults are declared in argparse, so `--help` shows them. The few that depend on the
device, the model or the params file are worked out in one place, the subcommand's handler, and
its help says how. Handlers import torch and the measurements themselves, so that `oak --help`
stays fast; like every verb, each takes `(config, args)` and trailing `key=value` overrides.
"""

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from oak.config.load import PROFILES
from oak.errors import OakError
from oak.layout import Layout

if TYPE_CHECKING:
    import torch

Handler = Callable[[DictConfig, argparse.Namespace], None]
Subcommands = argparse._SubParsersAction  # what `add_subparsers` returns; argparse exports no public name for it

# The paper's 56x56 feature map: oak.bench.g1.FEATURE_MAP, which is not imported here as it imports
# torch (tests/test_bench_commands.py keeps the two equal).
G1_FEATURE_MAP = 56
DEVICE_HELP = "cpu or cuda[:N] (default: cuda when present)"


def positive(text: str) -> int:
    """A count for argparse: zero images, steps, rounds or workers would measure nothing."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _device(name: str | None) -> "torch.device":
    import torch

    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _write(config: DictConfig, measurement: str, result: dict) -> None:
    from oak.files import write_json

    out = Layout.of(config).bench(measurement)
    write_json(out, result)
    print(f"wrote {out}")


def _planned_models() -> list[str]:
    from oak.config.load import planned_profile
    from oak.studies.plan import plan_runs
    from oak.studies.study import load_studies

    return sorted({run.model for run in plan_runs(load_studies(), planned_profile()).values()})


def _infer(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.infer import bench_infer
    from oak.models.facts import model_facts

    device = _device(args.device)
    results = []
    for name in args.model or _planned_models():
        # Each model at its own test size unless one size is asked for all
        resolution = args.resolution or model_facts(name).data.test_size
        results.append(bench_infer(name, resolution=resolution, batch_size=args.batch_size, device=device))
        print(results[-1])
    _write(config, "infer", {"results": results})


def _train(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.training import bench_train

    result = bench_train(
        args.params,
        model=args.model,
        images=args.images,
        image_size=args.resolution,
        batch_size=args.batch_size,
        steps=args.steps,
        rounds=args.rounds,
    )
    _write(config, "train", result)


def _loader(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.training import bench_loader

    result = bench_loader(
        args.params,
        images=args.images,
        image_size=args.resolution,
        batch_size=args.batch_size,
        num_workers=args.workers,
        rounds=args.rounds,
    )
    _write(config, "loader", result)


def _prepare(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.prepare import bench_prepare

    # Printed only: no stage or report reads these figures
    bench_prepare(images=args.images, workers=args.workers)


def _g1(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.g1 import bench_g1, format_table

    result = bench_g1(
        device=_device(args.device),
        pairs=args.pairs,
        resolution=args.resolution,
        batch_size=args.batch_size,
        # From the params file, so that dvc.yaml's bench-g1 stage reruns when it changes
        rounds=args.rounds or config.bench.g1_rounds,
        passes=args.steps,
    )
    print(format_table(result))
    _write(config, "g1", result)


def _cost(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.cost import bench_cost, device_slug
    from oak.layout import cost_file
    from oak.studies.plan import plan_runs, run_config
    from oak.studies.study import load_studies

    device = _device(args.device)
    # A CPU trains these recipes hundreds of times slower than a GPU: a few steps at a small batch give its rate in minutes
    cpu = device.type == "cpu"
    steps, warmup, batch_size = args.steps or (2 if cpu else 20), 1 if cpu else 5, args.batch_size or (2 if cpu else None)
    runs = plan_runs(load_studies(), args.profile)
    chosen = {name: run for name, run in runs.items() if not args.model or run.model in args.model}
    if not chosen:
        models = ", ".join(sorted({run.model for run in runs.values()}))
        raise OakError(f"--model {' '.join(args.model)}: no run of the {args.profile} profile trains it; its models: {models}")
    # Each run is timed with its planned recipe and settings, as the pipeline's `oak train` runs it
    configs = {name: (run.model, run_config(args.params, run)) for name, run in chosen.items()}
    out = Layout.of(config).devices / device_slug(device) / cost_file(args.profile)
    bench_cost(configs, out, device=device, batch_size=batch_size, steps=steps, warmup=warmup)
    print(f"wrote {out}")


def _throughput(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.cost import device_slug
    from oak.bench.throughput import bench_throughput

    device = _device(args.device)
    cpu = device.type == "cpu"
    out = Layout.of(config).devices / device_slug(device) / "throughput.json"
    bench_throughput(
        args.params,
        out,
        models=args.model or ["resnet50", "resnet18", "efficientnet_b0", "shufflenet_v2_x1_0"],
        device=device,
        batch_size=args.batch_size or (8 if cpu else 256),
        image_size=args.resolution,
        images=args.images or (64 if cpu else 16384),
        epochs=args.epochs,
    )
    print(f"wrote {out}")


def _resolution(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.bench.resolution import bench_resolution

    result = bench_resolution(
        images=args.images,
        caps=args.cap or [384, 256],
        sizes=args.size or [224, 192, 160],
        model=args.model,
        batch_size=args.batch_size,
        steps=args.steps,
        rounds=args.rounds,
        device=_device(args.device),
    )
    _write(config, "resolution", result)


def _measurement(measurements: Subcommands, name: str, handler: Handler, help: str, description: str = "") -> argparse.ArgumentParser:
    sub = measurements.add_parser(name, help=help, description=description or help)
    sub.add_argument("overrides", nargs="*", metavar="key=value", help="override a setting of the params file")
    sub.set_defaults(handler=handler)
    return sub


def _count(sub: argparse.ArgumentParser, flag: str, default: int, help: str) -> None:
    sub.add_argument(flag, type=positive, default=default, help=f"{help} (default: %(default)s)")


def add_bench_commands(verbs: Subcommands) -> None:
    """`oak bench` and its eight measurements, on the `oak` parser's verbs."""
    summary = (
        "measure speed: inference, training and the loader beside plain PyTorch, `oak prepare`, Table 4, cost, throughput, "
        "shard and training resolution"
    )
    bench = verbs.add_parser("bench", help=summary, description=f"{summary}. `oak bench MEASUREMENT --help` lists its options.")
    measurements = bench.add_subparsers(dest="measurement", required=True, title="measurements")

    infer = _measurement(
        measurements, "infer", _infer, "inference throughput at a batch and latency at batch 1, per model -> metrics/bench/infer.json"
    )
    infer.add_argument("--model", action="append", help="a model to measure (repeatable; default: the models of the current plan's runs)")
    infer.add_argument("--resolution", type=positive, help="input size (default: each model's test size, as `oak models` lists)")
    _count(infer, "--batch-size", 8, "batch for the throughput")
    infer.add_argument("--device", help=DEVICE_HELP)

    train = _measurement(
        measurements, "train", _train, "Oak's Lightning training beside a plain PyTorch loop, same images -> metrics/bench/train.json"
    )
    train.add_argument("--model", default="resnet18", help="the network both train (default: %(default)s)")
    _count(train, "--images", 1000, "generated images")
    _count(train, "--resolution", 64, "image size")
    _count(train, "--batch-size", 32, "batch size")
    _count(train, "--steps", 30, "timed steps per round")
    _count(train, "--rounds", 2, "rounds, each contender in turn; the best counts")

    loader = _measurement(
        measurements, "loader", _loader, "Oak's shard loader beside torchvision's ImageFolder, same images -> metrics/bench/loader.json"
    )
    _count(loader, "--images", 4000, "generated images")
    _count(loader, "--resolution", 64, "image size")
    _count(loader, "--batch-size", 32, "batch size")
    _count(loader, "--workers", 2, "loader workers of each")
    _count(loader, "--rounds", 2, "rounds, each contender in turn; the best counts")

    prepare = _measurement(
        measurements, "prepare", _prepare, "how fast `oak prepare` runs beside tar and a naive PIL loop (printed; see the README)"
    )
    _count(prepare, "--images", 5000, "generated photo-like JPEGs")
    _count(prepare, "--workers", 2, "`oak prepare` workers")

    g1 = _measurement(measurements, "g1", _g1, "the paper's Table 4 (ShuffleNet v2 guideline G1) on this device -> metrics/bench/g1.json")
    g1.add_argument("--device", help=DEVICE_HELP)
    g1.add_argument("--pairs", choices=["gpu", "arm", "both"], help="the paper's channel pairs to run (default: gpu on CUDA, arm on a CPU)")
    _count(g1, "--resolution", G1_FEATURE_MAP, "feature map size, the paper's")
    _count(g1, "--batch-size", 1, "batch size")
    g1.add_argument("--rounds", type=positive, help="interleaved rounds, the median counts (default: bench.g1_rounds of the params file)")
    g1.add_argument("--steps", type=positive, help="forward passes per timed sample (default: as many as take about 0.5 s)")

    cost = _measurement(
        measurements,
        "cost",
        _cost,
        "training throughput of each planned run on this device, for the report's cost to reproduce",
        "Training throughput of each planned run on this device, for the report's cost to reproduce: writes "
        "metrics/devices/<device>/cost.json (cost-<profile>.json for another profile than imagenet), keeping the runs it "
        "does not measure again. On a GPU each run is timed for 20 steps after 5 warm-up steps at its "
        "recipe's batch, halved while it does not fit in the GPU's memory; on a CPU for 2 steps after 1, at a batch "
        "of at most 2.",
    )
    cost.add_argument(
        "--profile", choices=PROFILES, default="imagenet", help="the profile whose planned runs to measure (default: %(default)s)"
    )
    cost.add_argument("--model", action="append", help="only this model's runs (repeatable)")
    cost.add_argument("--device", help=DEVICE_HELP)
    cost.add_argument("--steps", type=positive, help="timed steps per run (default: 20 on a GPU, 2 on a CPU)")
    cost.add_argument("--batch-size", type=positive, help="at most this batch (default: the recipe's on a GPU, 2 on a CPU)")

    resolution = _measurement(
        measurements,
        "resolution",
        _resolution,
        "images/s of the loader on full-size and capped shards at each training size, beside the network's -> "
        "metrics/bench/resolution.json",
    )
    _count(resolution, "--images", 256, "generated 500x375 training JPEGs")
    resolution.add_argument("--cap", action="append", type=positive, help="a longer-side cap of the low-resolution shards (repeatable; default: 384 and 256)")
    resolution.add_argument("--size", action="append", type=positive, help="a training image size (repeatable; default: 224, 192 and 160)")
    resolution.add_argument("--model", default="resnet50", help="the network timed at each size (default: %(default)s)")
    _count(resolution, "--batch-size", 8, "batch size")
    _count(resolution, "--steps", 3, "timed training steps per round")
    _count(resolution, "--rounds", 3, "rounds, each contender in turn; the best counts")
    resolution.add_argument("--device", help=DEVICE_HELP)

    throughput = _measurement(
        measurements,
        "throughput",
        _throughput,
        "`oak train` end to end, decoding on the device and in the loader, beside the model alone "
        "-> metrics/devices/<device>/throughput.json",
    )
    throughput.add_argument(
        "--model", action="append", help="a model (repeatable; default: resnet50, resnet18, efficientnet_b0, shufflenet_v2_x1_0)"
    )
    throughput.add_argument("--device", help=DEVICE_HELP)
    throughput.add_argument("--batch-size", type=positive, help="per device (default: 256 on a GPU, 8 on a CPU)")
    _count(throughput, "--resolution", 224, "training image size")
    throughput.add_argument("--images", type=positive, help="generated 500x375 training JPEGs (default: 16384 on a GPU, 64 on a CPU)")
    _count(throughput, "--epochs", 2, "epochs of each training; the last one's rate counts")
