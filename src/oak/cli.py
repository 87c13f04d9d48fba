"""The `oak` command: one verb per pipeline stage, each taking `key=value` overrides of params.yaml.

Heavy imports (torch, Lightning, MLflow) happen inside the verbs, so `oak --help` and config
errors answer at once.
"""

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig

from oak.config import PARAMS_FILE, load_config
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
    from oak.data.shards import prepare_shards

    source, out = Path(args.source or config.data.source), Path(args.out or config.paths.shards)
    info = prepare_shards(source, out, samples_per_shard=config.prepare.samples_per_shard, seed=config.prepare.seed)
    counts = ", ".join(f"{split} {len(s['filenames'])} shards / {s['num_samples']} samples" for split, s in info["splits"].items())
    print(f"wrote {out}: {info['num_classes']} classes; {counts}")


def _train(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.train import train

    print(f"{args.model}: {train(config, args.model)}")


def _evaluate(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.evaluate import evaluate

    print(f"{args.model}: {evaluate(config, args.model)}")


def _report(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.report import write_report

    for path in write_report(config):
        print(f"wrote {path}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="oak", description=__doc__.split("\n\n")[0])
    root.add_argument("--params", type=Path, default=PARAMS_FILE, help="the params file (default: %(default)s)")
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(name: str, run, help: str, *, takes_model: bool = False) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help)
        if takes_model:
            sub.add_argument("model", help="a model name, e.g. resnet18")
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="override a setting of the params file")
        sub.set_defaults(run=run)
        return sub

    verb("demo-data", _demo_data, "write the synthetic demo image tree")
    prepare = verb("prepare", _prepare, "convert an image tree to WebDataset shards")
    prepare.add_argument("--source", help="image tree with train/ and val/ (default: data.source)")
    prepare.add_argument("--out", help="shard folder (default: paths.shards)")
    verb("train", _train, "train one model", takes_model=True)
    verb("evaluate", _evaluate, "evaluate one trained model", takes_model=True)
    verb("report", _report, "write the results table and figure")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.params, args.overrides)
        args.run(config, args)
    except OakError as error:
        print(f"oak {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oak {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
