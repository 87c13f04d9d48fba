"""`oak weights pull`: registered on the `oak` parser; the handler imports the libraries, so `oak --help` stays fast."""

import argparse

from omegaconf import DictConfig

from oak.config.load import PROFILES
from oak.layout import Layout

DEFAULT_PROFILE = "published"  # the only profile whose runs evaluate released weights


class TargetsAndOverrides(argparse.Action):
    """Profiles and specs, with `key=value` overrides among them: two `*` positionals in a row would give the first all."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values, option_string=None) -> None:
        namespace.targets = [value for value in values if "=" not in value]
        namespace.overrides = [value for value in values if "=" in value]


def _pull(config: DictConfig, args: argparse.Namespace) -> None:
    from oak.fetching.weights import pull_all, wanted_weights

    print(pull_all(wanted_weights(args.targets or [DEFAULT_PROFILE]), Layout.of(config).weights))


def add_weights_commands(verbs: argparse._SubParsersAction) -> None:
    """`oak weights pull`, on the `oak` parser's verbs."""
    summary = "fetch released weights into paths.weights, where `oak evaluate --published` finds them"
    weights = verbs.add_parser("weights", help=summary, description=f"{summary}.")
    actions = weights.add_subparsers(dest="action", required=True, title="actions")
    pull = actions.add_parser(
        "pull",
        help="download the weights a profile or the specs name, each checked against its published hash",
        description=(
            "Download the released weights a profile's study rows name (default: published), or those given as "
            "timm:<pretrained tag> or torchvision:<builder>.<weights>, into paths.weights under the names Oak loads. "
            "A file already there that matches its published hash is kept. timm's come from the Hugging Face Hub "
            "(HF_ENDPOINT for a mirror), torchvision's from download.pytorch.org (OAK_TORCHVISION_ENDPOINT for a "
            "mirror serving the same /models/<file> paths)."
        ),
    )
    pull.add_argument(
        "targets",
        nargs="*",
        action=TargetsAndOverrides,
        metavar="PROFILE | SPEC | key=value",
        help=f"a profile ({', '.join(PROFILES)}; default: {DEFAULT_PROFILE}), a weights spec, or an override of the params file",
    )
    pull.set_defaults(handler=_pull, targets=[], overrides=[])
