"""The `oak` command: one verb per pipeline stage, each taking `key=value` overrides of params.yaml.

Heavy imports (torch, Lightning, MLflow) happen inside the verbs, so `oak --help` and config
errors answer at once.
"""

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

from omegaconf import DictConfig

from oak.bench.commands import add_bench_commands
from oak.config.load import PROFILES, load_config
from oak.errors import OakError
from oak.fetching.commands import add_weights_commands
from oak.layout import PARAMS_FILE
from oak.process import exit_without_collecting, imports_kept_from_the_collector, kill_leftover_workers, release_imports


def _demo_data(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.preparing.demo import write_demo

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

    from oak.preparing.images import Conversion
    from oak.preparing.shards import prepare_shards

    source, out = Path(args.source or config.data.source), Path(args.out or config.paths.shards)
    settings = config.prepare
    info = prepare_shards(
        source,
        out,
        samples_per_shard=settings.samples_per_shard,
        seed=settings.seed,
        classes=OmegaConf.to_container(settings.classes) if OmegaConf.is_list(settings.classes) else settings.classes,
        workers=settings.workers,
        conversion=Conversion(settings.mode, settings.resize_short_side, settings.resize_quality, settings.cap_long_side),
        on_bad=settings.on_bad,
        strict_md5=settings.strict_md5,
    )
    counts = ", ".join(f"{split} {len(s.filenames)} shards / {s.num_samples} samples" for split, s in info.splits.items())
    rejected = sum(c["rejected"] + c["other_problems"] for c in info.counts.values())
    litter = sum(c["left_by_os"] for c in info.counts.values())
    print(
        f"wrote {out}: {info.num_classes} classes; {counts}"
        + (f"; {rejected} rejected, listed in _rejected.tsv" if rejected else "")
        + (f"; skipped {litter} file(s) operating systems leave behind (.DS_Store, Thumbs.db, desktop.ini, ._*)" if litter else "")
    )


def _verify(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.preparing.verify import verify_shards

    checked = verify_shards(args.folder, workers=config.prepare.workers)
    print(f"{args.folder}: {checked['shards']} shards and {checked['samples']} samples verified")


def _train(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.training.train import train

    print(f"{args.run or args.model}: {train(config, args.model, run=args.run, resume=args.resume)}")


def _evaluate(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.layout import check_run_name
    from oak.training.evaluate import evaluate, preprocessing_layer

    check_run_name(args.run or args.model)  # before the weights load and the tracking store opens
    if args.published:  # the weights' own preprocessing, under what the command line sets
        config = load_config(args.params, args.overrides, study=preprocessing_layer(args.published))
    print(f"{args.run or args.model}: {evaluate(config, args.model, args.weights, run=args.run, published=args.published)}")


def _plan(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.cluster.slurm import pipeline_changes
    from oak.files import write_atomic
    from oak.layout import Layout
    from oak.studies.plan import PLAN_FILE, Run, check_settings, plan_rows, render_plan
    from oak.studies.plots import PLOTS_FILE, render_plots
    from oak.studies.study import load_studies

    profile = args.profile or "demo"  # not the current plan's: `make repro` runs the demo unless told otherwise
    with pipeline_changes("oak plan", config):  # not while stages that read the plan run
        studies = load_studies()
        planned = plan_rows(studies, profile, args.params)
        check_settings(planned, args.params)
        write_atomic(PLAN_FILE, render_plan(studies, profile))
        write_atomic(PLOTS_FILE, render_plots(studies, planned, Layout.of(config).curves_folder))
    runs = {run.name for run in planned.values() if isinstance(run, Run)}
    skipped = {key: reason for key, reason in planned.items() if not isinstance(reason, Run)}
    print(f"wrote {PLAN_FILE}: profile {profile}, {len(runs)} runs for {len(planned) - len(skipped)} of the {len(planned)} study rows")
    if skipped and args.verbose:
        print("\n".join(f"skipped {key}: {reason}" for key, reason in skipped.items()))
    elif skipped:
        print(f"{len(skipped)} rows skipped in this profile; `oak plan {profile} -v` lists them, each with why")


def _smoke(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.config.load import planned_profile
    from oak.studies.plan import PLAN_FILE, plan_runs
    from oak.studies.study import load_studies
    from oak.training.smoke import lightest_per_recipe, smoke

    profile = args.profile or planned_profile()
    runs = {name: run for name, run in plan_runs(load_studies(), profile).items() if not run.weights}
    if not runs:
        raise OakError(f"the {profile} profile trains nothing (its runs evaluate released weights): nothing to smoke-test")
    unknown = sorted(set(args.run or ()) - set(runs))
    if unknown:
        raise OakError(f"no planned run {', '.join(unknown)} in the {profile} profile; `oak plan {profile}` writes them to {PLAN_FILE}")
    chosen = [runs[name] for name in args.run] if args.run else list(runs.values())
    if args.per_recipe:
        chosen = lightest_per_recipe(chosen, args.params)
    from oak.layout import Layout

    smoke(profile, args.params, Layout.of(config).smoke(profile), runs=chosen, update=bool(args.run))  # --run replaces those runs' entries


def _config(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.studies.plan import explain_config

    if args.run and "=" in args.run:  # `oak config key=value`: an override, not a run
        args.overrides, args.run = [args.run, *args.overrides], None
    print(explain_config(args.params, args.run, args.overrides))


def _submit(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.cluster.commands import submit

    submit(config, args.params, args.profile, args.overrides, dry_run=args.dry_run, verbose=args.verbose)


def _repro(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.cluster.commands import repro

    repro(config, args.overrides, jobs=args.jobs)


def _status(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.cluster.commands import status

    status(config)


def _report(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.report.build import write_report

    for path in write_report(config):
        print(f"wrote {path}")


def _models(config: DictConfig, args: argparse.Namespace) -> None:
    import json

    from oak.models.cards import ZOO
    from oak.models.facts import facts_table, model_facts

    names = args.model or list(ZOO)
    facts = [model_facts(name, args.resolution) for name in names]
    if args.write:
        from oak.files import write_json
        from oak.layout import Layout

        write_json(Layout.of(config).facts, {f.name: f.as_dict() for f in facts})
        print(f"wrote {Layout.of(config).facts}: {len(facts)} models")
        return
    if args.json:
        print(json.dumps([f.as_dict() for f in facts], indent=2))
        return
    print(facts_table(facts))


def _calc(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.models.calculations import calculations_text

    print(calculations_text())


def _compare(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.report.compare import compare

    compare(config, args)


def _sync(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.data.info import read_info
    from oak.files import write_json
    from oak.layout import Layout
    from oak.studies.plan import current_runs, plan_runs, run_config
    from oak.studies.study import load_studies
    from oak.tracking.mirror import results_view, sync_record
    from oak.tracking.tracker import experiment_name

    profile, _ = current_runs()  # the plan must say what the studies say
    runs = {name: run for name, run in plan_runs(load_studies(), profile).items() if not run.weights}
    info = read_info(Layout.of(config).shards)  # the runs' dataset, as their stages tag it
    configs = {name: run_config(args.params, run, args.overrides) for name, run in runs.items()}
    summary = sync_record(config, {name: run.model for name, run in runs.items()}, info, configs)
    write_json(Layout.of(config).mirror_stamp, summary.stamp())
    print(summary.line(experiment_name(config)))
    print(results_view(config))


def _server(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.tracking.server import serve

    serve(host=args.host, port=args.port, basic_auth=args.basic_auth)


PLANS_PROFILE = "default: the current plan's (pipelines/plan.yaml), else demo"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="oak", description=__doc__.split("\n\n")[0])
    root.add_argument("--version", action="version", version=f"oak {version('oak')}")
    root.add_argument("--params", type=Path, default=PARAMS_FILE, help="the params file (default: %(default)s)")
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(
        name: str,
        run,
        help: str,
        *,
        takes_model: bool = False,
        takes_folder: bool = False,
        takes_profile: str = "",
        takes_planned_run: bool = False,
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help)
        if takes_planned_run:
            sub.add_argument("run", nargs="?", help="a planned run (pipelines/plan.yaml); default: params.yaml and the overrides alone")
        if takes_profile:  # its help: what a command without a profile takes
            sub.add_argument("profile", nargs="?", choices=PROFILES, help=takes_profile)
        if takes_model:
            sub.add_argument("model", help="a model name, e.g. resnet18")
            sub.add_argument(
                "--run",
                help="the run's name, for its files and MLflow run: lower-case letters, digits, '-' and '_' "
                "(default: the model; `oak plan` names the studies')",
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
    evaluate.add_argument("--published", help="evaluate released weights instead: timm:<tag> or torchvision:<builder>.<weights>")
    plan = verb(
        "plan", _plan, "expand the studies in pipelines/studies/ into the runs dvc.yaml trains, in one profile", takes_profile="default: demo"
    )
    plan.add_argument("-v", "--verbose", action="store_true", help="list each row the profile skips, with why")
    smoke = verb(
        "smoke", _smoke, "run every planned run of a profile for a few steps under 2-process DDP on the CPU", takes_profile=PLANS_PROFILE
    )
    smoke.add_argument("--run", action="append", help="only this planned run (repeatable); the file keeps the others' entries")
    smoke.add_argument("--per-recipe", action="store_true", help="only the lightest run of each recipe")
    verb("config", _config, "print a run's resolved settings, each with where its value comes from", takes_planned_run=True)
    submit = verb(
        "submit", _submit, "submit every out-of-date stage of dvc.yaml as a SLURM job, each after those it needs", takes_profile="the current plan's (pipelines/plan.yaml); naming another is an error until `oak plan PROFILE`",
    )
    submit.add_argument("--dry-run", action="store_true", help="check and summarise the jobs; submit nothing (no SLURM needed)")
    submit.add_argument("-v", "--verbose", action="store_true", help="list each job with its sbatch options and command")
    repro = verb("repro", _repro, "dvc repro with several stages at once, each after those it needs (logs in logs/repro/)")
    repro.add_argument("--jobs", type=int, default=1, help="stages running at once (default: %(default)s, as dvc repro)")
    verb("status", _status, "the jobs of the last `oak submit`: queued, running, done or failed, with logs and MLflow runs")
    verb("report", _report, "write the results table and figure")
    comparing = verb("compare", _compare, "DVC experiments side by side: the params that differ and each run's top-1")
    comparing.add_argument("--metric", choices=["top1", "top5", "loss"], default="top1", help="(default: %(default)s)")
    models = verb("models", _models, "the model zoo and each model's architecture facts")
    models.add_argument("--model", action="append", help="only this model (repeatable); default: the whole zoo")
    models.add_argument("--resolution", type=int, help="count MACs and activations at this size (default: each model's test size)")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument("--write", action="store_true", help="write them to metrics/facts.json, which `oak report` reads")
    verb("calc", _calc, "the paper's calculations: Table 3 and EfficientNet's compound scaling")
    verb(
        "sync",
        _sync,
        "make MLflow hold DVC's record: every planned run's metrics, curves and evaluation, whether its stage ran here or not",
    )
    server = verb("server", _server, "serve the MLflow store (sqlite:///mlflow.db) and UI to a team")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--basic-auth", action="store_true", help="require MLflow's basic-auth logins")
    add_bench_commands(verbs)
    add_weights_commands(verbs)
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
        with imports_kept_from_the_collector():  # the config check imports timm and torch
            config = load_config(args.params, args.overrides)
        args.handler(config, args)
    except OakError as error:
        print(f"oak {args.verb}: error: {error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oak {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        kill_leftover_workers()
        release_imports()
    return 0


def command() -> None:
    """The `oak` executable."""
    exit_without_collecting(main())


if __name__ == "__main__":
    command()
