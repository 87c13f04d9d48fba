"""The `oak` command: one verb per pipeline stage, each taking `key=value` overrides of params.yaml.

Heavy imports (torch, Lightning, MLflow) happen inside the verbs, so `oak --help` and config
errors answer at once.
"""

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig

from oak.config import PARAMS_FILE, PROFILES, load_config
from oak.errors import OakError


def _demo_data(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.data.demo import write_demo

    demo = config.demo
    description = write_demo(
        Path(config.paths.demo),
        classes=demo.classes,
        train_per_class=demo.train_per_class,
        val_per_class=demo.val_per_class,
        image_size=demo.image_size,
        seed=demo.seed,
    )
    print(f"wrote {config.paths.demo}: {len(description['classes'])} synthetic classes")


def _prepare(config: DictConfig, args: argparse.Namespace) -> None:
    from omegaconf import OmegaConf

    from oak.data.images import Conversion
    from oak.data.shards import prepare_shards

    source, out = Path(args.source or config.data.source), Path(args.out or config.paths.shards)
    settings = config.prepare
    info = prepare_shards(
        source,
        out,
        samples_per_shard=settings.samples_per_shard,
        seed=settings.seed,
        classes=OmegaConf.to_container(settings.classes) if OmegaConf.is_list(settings.classes) else settings.classes,
        workers=settings.workers,
        conversion=Conversion(settings.mode, settings.resize_short_side, settings.resize_quality),
        on_bad=settings.on_bad,
        strict_md5=settings.strict_md5,
    )
    counts = ", ".join(f"{split} {len(s['filenames'])} shards / {s['num_samples']} samples" for split, s in info["splits"].items())
    rejected = sum(c["rejected"] + c["other_problems"] for c in info["counts"].values())
    litter = sum(c["left_by_os"] for c in info["counts"].values())
    print(
        f"wrote {out}: {info['num_classes']} classes; {counts}"
        + (f"; {rejected} rejected, listed in _rejected.tsv" if rejected else "")
        + (f"; skipped {litter} file(s) operating systems leave behind (.DS_Store, Thumbs.db, desktop.ini, ._*)" if litter else "")
    )


def _verify(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.data.verify import verify_shards

    checked = verify_shards(args.folder, workers=config.prepare.workers)
    print(f"{args.folder}: {checked['shards']} shards and {checked['samples']} samples verified")


def _train(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.train import train

    print(f"{args.run or args.model}: {train(config, args.model, run=args.run, resume=args.resume)}")


def _evaluate(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.evaluate import evaluate

    print(f"{args.run or args.model}: {evaluate(config, args.model, args.weights, run=args.run)}")


def _plan(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.files import write_atomic
    from oak.plan import PLAN_FILE, Run, check_settings, plan_rows, planned_profile, render_plan
    from oak.studies import load_studies

    studies, profile = load_studies(), args.profile or planned_profile()
    planned = plan_rows(studies, profile)
    check_settings(planned, args.params)
    write_atomic(PLAN_FILE, render_plan(studies, profile))
    runs = {run.name for run in planned.values() if isinstance(run, Run)}
    without = [key for key, run in planned.items() if not isinstance(run, Run)]
    skipped = f"; no run for {', '.join(without)}" if without else ""
    print(f"wrote {PLAN_FILE}: profile {profile}, {len(runs)} runs for {len(planned)} study rows{skipped}")


def _smoke(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.plan import PLAN_FILE, plan_runs, planned_profile
    from oak.smoke import lightest_per_recipe, smoke
    from oak.studies import load_studies

    profile = args.profile or planned_profile()
    runs = plan_runs(load_studies(), profile)
    unknown = sorted(set(args.run or ()) - set(runs))
    if unknown:
        raise OakError(f"no planned run {', '.join(unknown)} in the {profile} profile; `oak plan {profile}` writes them to {PLAN_FILE}")
    chosen = [runs[name] for name in args.run] if args.run else list(runs.values())
    if args.per_recipe:
        chosen = lightest_per_recipe(chosen, args.params)
    out = Path(config.paths.metrics) / "smoke" / f"{profile}.json"
    smoke(profile, args.params, out, runs=chosen, update=bool(args.run))  # --run replaces those runs' entries


def _report(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.report import write_report

    for path in write_report(config):
        print(f"wrote {path}")


def _models(config: DictConfig, args: argparse.Namespace) -> None:
    import json

    from oak.models.cards import ZOO
    from oak.models.facts import model_facts

    names = args.model or list(ZOO)
    facts = [model_facts(name, args.resolution) for name in names]
    if args.write:
        from oak.files import write_json
        from oak.report import facts_path

        write_json(facts_path(config), {f.name: f.as_dict() for f in facts})
        print(f"wrote {facts_path(config)}: {len(facts)} models")
        return
    if args.json:
        print(json.dumps([f.as_dict() for f in facts], indent=2))
        return
    print(
        f"{'model':24} {'family':12} {'year':>4} {'params':>14} {'published':>12} {'res':>4} {'GMACs':>8}"
        f" {'activ. (M)':>10} {'train/test':>9} {'crop':>6} interp."
    )
    for f in facts:
        published = f"{f.published_params:,}" if f.published_params else "-"
        sizes = f"{f.data.train_size}/{f.data.test_size}"
        print(
            f"{f.name:24} {f.family:12} {f.year:>4} {f.params:>14,} {published:>12} {f.resolution:>4} {f.macs / 1e9:>8.3f}"
            f" {f.activations / 1e6:>10.2f} {sizes:>9} {f.data.crop_pct:>6} {f.data.interpolation}"
        )


def _calc(config: DictConfig, args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from oak.models.calculations import TABLE_3, compound_scaling, measured_conv_macs, regular_calculations, separable_calculations

    regular = regular_calculations(TABLE_3)
    depthwise, pointwise = separable_calculations(TABLE_3)
    measured_regular, measured_separable = measured_conv_macs(TABLE_3)
    print("Table 3: 7x7x3 input, 5x5x128 output, 3x3 kernels")
    print(f"  depthwise separable: {depthwise} + {pointwise} = {depthwise + pointwise} (PyTorch layers measured: {measured_separable})")
    print(f"  regular:             {regular} (measured: {measured_regular}); ratio {regular / (depthwise + pointwise):.2f}x")
    print("EfficientNet compound scaling (alpha 1.2, beta 1.1, gamma 1.15):")
    for row in compound_scaling():
        print("  " + ", ".join(f"{k}={v}" for k, v in asdict(row).items()))


def _bench(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.files import write_json

    if args.what == "prepare":
        from oak.bench.prepare import bench_prepare

        bench_prepare(images=args.images or 5000, workers=args.workers or 2)
        return
    if args.what == "train":
        from oak.bench.training import bench_train

        result = bench_train(
            model=(args.model or ["resnet18"])[0],
            images=args.images or 1000,
            image_size=args.resolution or 64,
            batch_size=args.batch_size or 32,
            steps=args.steps or 30,
            rounds=args.rounds or 2,
        )
    elif args.what == "loader":
        from oak.bench.training import bench_loader

        result = bench_loader(
            images=args.images or 4000,
            image_size=args.resolution or 64,
            batch_size=args.batch_size or 32,
            num_workers=args.workers or 2,
            rounds=args.rounds or 2,
        )
    elif args.what == "g1":
        result = _bench_g1(config, args)
    elif args.what == "cost":
        _bench_cost(args)
        return
    else:
        result = {"results": _bench_infer(config, args)}
    out = Path(config.paths.metrics) / "bench" / f"{args.what}.json"
    write_json(out, result)
    print(f"wrote {out}")


def _planned_models() -> list[str]:
    from oak.plan import plan_runs, planned_profile
    from oak.studies import load_studies

    return sorted({run.model for run in plan_runs(load_studies(), planned_profile()).values()})


def _bench_infer(config: DictConfig, args: argparse.Namespace) -> list[dict]:
    import torch

    from oak.bench.infer import bench_infer
    from oak.models.facts import model_facts

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for name in args.model or _planned_models():
        resolution = args.resolution or model_facts(name).data.test_size
        results.append(bench_infer(name, resolution=resolution, batch_size=args.batch_size or 8, device=device))
        print(results[-1])
    return results


def _bench_cost(args: argparse.Namespace) -> None:
    import torch

    from oak.bench.cost import DEVICES_DIR, bench_cost, device_slug
    from oak.plan import plan_runs
    from oak.studies import load_studies

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    runs = plan_runs(load_studies(), args.profile or "imagenet")
    chosen = {name: run for name, run in runs.items() if not args.model or run.model in args.model}
    configs = {name: (run.model, load_config(args.params, [f"recipe={run.recipe}", *run.settings])) for name, run in chosen.items()}
    out = DEVICES_DIR / device_slug(device) / "cost.json"
    cpu = device.type == "cpu"
    steps, warmup = args.steps or (2 if cpu else 20), 1 if cpu else 5
    batch_size = args.batch_size or (2 if cpu else None)
    bench_cost(configs, out, device=device, batch_size=batch_size, steps=steps, warmup=warmup, update=bool(args.model))
    print(f"wrote {out}")


def _bench_g1(config: DictConfig, args: argparse.Namespace) -> dict:
    import torch

    from oak.bench.g1 import FEATURE_MAP, bench_g1, format_table

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = bench_g1(
        device=device,
        pairs=args.pairs,
        resolution=args.resolution or FEATURE_MAP,
        batch_size=args.batch_size or 1,
        rounds=args.rounds or config.bench.g1_rounds,
        passes=args.steps,
    )
    print(format_table(result))
    return result


def _server(config: DictConfig, args: argparse.Namespace) -> None:
    import os
    import secrets

    from oak.tracking import server_command

    command = server_command(host=args.host, port=args.port)
    if args.basic_auth:
        command += ["--app-name", "basic-auth"]
        if not os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
            # MLflow's login forms need a key to sign their CSRF tokens; one per server start is enough
            # for one server (its workers inherit it). Several servers behind one address must share one.
            os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(32)
            print("oak server: a new MLFLOW_FLASK_SERVER_SECRET_KEY for this start (set one to keep browser logins across restarts)")
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="oak", description=__doc__.split("\n\n")[0])
    root.add_argument("--params", type=Path, default=PARAMS_FILE, help="the params file (default: %(default)s)")
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(
        name: str, run, help: str, *, takes_model: bool = False, takes_folder: bool = False, takes_profile: bool = False
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help)
        if takes_profile:
            sub.add_argument("profile", nargs="?", choices=PROFILES, help="default: the current plan's, else demo")
        if takes_model:
            sub.add_argument("model", help="a model name, e.g. resnet18")
            sub.add_argument(
                "--run", help="the run's name, for its files and MLflow run (default: the model; `oak plan` names the studies')"
            )
        if takes_folder:
            sub.add_argument("folder", type=Path, help="a shard folder written by `oak prepare`")
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="override a setting of the params file")
        sub.set_defaults(handler=run)
        return sub

    verb("demo-data", _demo_data, "write the synthetic demo image tree")
    prepare = verb("prepare", _prepare, "convert an image tree or the official ImageNet archives to WebDataset shards")
    prepare.add_argument("--source", help="a folder with train/ and val/, or with the official archives (default: data.source)")
    prepare.add_argument("--out", help="shard folder (default: paths.shards)")
    verb("verify", _verify, "re-read every shard against its info file: hash, count, every image decodes", takes_folder=True)
    train = verb("train", _train, "train one model with the recipe in params.yaml", takes_model=True)
    train.add_argument("--resume", action="store_true", help="fail unless an interrupted training of this config can be resumed")
    evaluate = verb("evaluate", _evaluate, "evaluate one trained model", takes_model=True)
    evaluate.add_argument("--weights", type=Path, help="evaluate this checkpoint, state_dict or .safetensors file instead")
    verb("plan", _plan, "expand the studies in pipelines/studies/ into the runs dvc.yaml trains, in one profile", takes_profile=True)
    smoke = verb("smoke", _smoke, "run every planned run of a profile for a few steps under 2-process DDP on the CPU", takes_profile=True)
    smoke.add_argument("--run", action="append", help="only this planned run (repeatable); the file keeps the others' entries")
    smoke.add_argument("--per-recipe", action="store_true", help="only the lightest run of each recipe")
    verb("report", _report, "write the results table and figure")
    models = verb("models", _models, "the model zoo and each model's architecture facts")
    models.add_argument("--model", action="append", help="only this model (repeatable); default: the whole zoo")
    models.add_argument("--resolution", type=int, help="count MACs and activations at this size (default: each model's test size)")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument("--write", action="store_true", help="write them to metrics/facts.json, which `oak report` reads")
    verb("calc", _calc, "the paper's calculations: Table 3 and EfficientNet's compound scaling")
    server = verb("server", _server, "serve the MLflow store (sqlite:///mlflow.db) and UI to a team")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--basic-auth", action="store_true", help="require MLflow's basic-auth logins")
    bench = verb("bench", _bench, "measure speed: inference, training and the loader beside plain PyTorch, `oak prepare`, or Table 4 (g1)")
    bench.add_argument(
        "what",
        choices=["infer", "train", "loader", "prepare", "g1", "cost"],
        help="infer: throughput and batch-1 latency; train: Oak's training beside a plain PyTorch loop; "
        "loader: Oak's shard loader beside ImageFolder; prepare: see the README; "
        "g1: the paper's Table 4 (ShuffleNet v2 guideline G1) on this device; "
        "cost: training throughput of each planned run on this device, for the report's cost to reproduce",
    )
    bench.add_argument(
        "--model",
        action="append",
        help="a model to measure (repeatable); default: the planned runs' (train: resnet18); cost: adds its runs to the device's file",
    )
    bench.add_argument(
        "--resolution", type=int, help="input size (default: infer each model's test size; train and loader 64; g1 56, the paper's)"
    )
    bench.add_argument("--batch-size", type=int, help="default: infer 8, train and loader 32, g1 1, cost the recipe's (at most 2 on a CPU)")
    bench.add_argument("--images", type=int, help="generated images (default: prepare 5000, train 1000, loader 4000)")
    bench.add_argument("--workers", type=int, help="loader or prepare workers (default: 2)")
    bench.add_argument(
        "--steps",
        type=int,
        help="train: timed steps per round (default: 30); g1: forward passes per sample (default: about 0.5 s worth); "
        "cost: timed steps per run (default: 20, 2 on a CPU)",
    )
    bench.add_argument(
        "--rounds", type=int, help="train and loader: rounds, best counts (default: 2); g1: rounds, median counts (default: 9)"
    )
    bench.add_argument("--device", help="infer, g1 and cost: cpu or cuda[:N] (default: cuda when present)")
    bench.add_argument("--profile", choices=PROFILES, help="cost: the profile whose planned runs to measure (default: imagenet)")
    bench.add_argument(
        "--pairs", choices=["gpu", "arm", "both"], help="g1: the paper's channel pairs to run (default: gpu on CUDA, arm on CPU)"
    )
    return root


WORKER_ERROR = "oak.errors.OakError: "


def error_line(error: OakError) -> str:
    """The error's own line: PyTorch re-raises a loader worker's error with the worker's traceback as its message."""
    raised_in_worker = [line.removeprefix(WORKER_ERROR) for line in str(error).splitlines() if line.startswith(WORKER_ERROR)]
    return raised_in_worker[-1] if raised_in_worker else str(error)


def main(argv: list[str] | None = None) -> int:
    # key=value overrides may come before or after a verb's options: argparse leaves those after an
    # option for parse_known_args to return, and they join the others.
    args, extra = parser().parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray:
        parser().error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extra]
    try:
        config = load_config(args.params, args.overrides)
        args.handler(config, args)
    except OakError as error:
        print(f"oak {args.verb}: error: {error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oak {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        _kill_leftover_workers()
    return 0


def _kill_leftover_workers() -> None:
    """Loader workers ignore SIGTERM (see oak.data.loader): any an error left running are killed here, or
    Python's exit, which stops them with SIGTERM and waits, would wait for good."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join()


if __name__ == "__main__":
    sys.exit(main())
