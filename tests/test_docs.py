"""What the README and docs/ say about the plan, the demo and the recipes is what the code plans.

Each statement of a count, epochs, resolution, image count or batch is found by a precise pattern and
compared with what the studies' plan, params.yaml and the recipes give; a statement the pattern no longer
finds fails too, so rewording a sentence means updating its pattern here. docs/benchmarks.md is left out:
its numbers are dated measurements, true of their day. The study files' skip reasons, which the report
prints, are checked the same way.
"""

import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from params_files import params_file

from oak.config.load import load_config
from oak.report.claims import IMAGENET_VAL_IMAGES
from oak.report.cost import IMAGENET_TRAIN_IMAGES, cost_runs_table
from oak.report.paper import sampling_interval
from oak.studies.plan import Run, explain_config, plan_rows, plan_runs, run_config
from oak.studies.study import load_studies

PARAMS = Path("params.yaml")
DOCS = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
HISTORY = Path("docs/benchmarks.md")
STUDIES = load_studies()
ROWS = sum(len(study.rows) for study in STUDIES)
DEMO = {name: run_config(PARAMS, run).train for name, run in plan_runs(STUDIES, "demo").items()}
SETTINGS = yaml.safe_load(PARAMS.read_text())


def prose(path: Path) -> str:
    """The file with every run of whitespace one space: sentences wrap anywhere."""
    return " ".join(path.read_text().split())


def stated(pattern: str) -> list[tuple[str, ...]]:
    """Every statement matching `pattern` in the README and docs/ (not the dated measurements), as its groups."""
    texts = [prose(path) for path in DOCS if path != HISTORY]
    found = [tuple(group.replace(",", "") for group in hit.groups()) for text in texts for hit in re.finditer(pattern, text)]
    assert found, f"no statement matches {pattern!r}: the text changed, so change the pattern with it"
    return found


def numbers(*values: object) -> tuple[str, ...]:
    return tuple(str(value) for value in values)


def planned_runs(profile: str) -> int:
    return len(plan_runs(STUDIES, profile))


def rows_with_a_run(profile: str) -> int:
    return sum(isinstance(run, Run) for run in plan_rows(STUDIES, profile).values())


def demo_size(model: str) -> int:
    (size,) = {train.image_size for name, train in DEMO.items() if name.startswith(model)}
    return size


COUNTS = {  # what a statement says (its id): its pattern, and the plan's numbers in the pattern's order
    "demo runs, rows and studies": (
        r"(\d+) runs for (\d+) of the (\d+) rows of the (\d+) studies",
        lambda: numbers(planned_runs("demo"), rows_with_a_run("demo"), ROWS, len(STUDIES)),
    ),
    "studies and rows": (r"\((\d+) studies, (\d+) rows\)", lambda: numbers(len(STUDIES), ROWS)),
    "demo rows kept": (
        r"(\d+) runs for the (\d+) of the (\d+) rows it keeps",
        lambda: numbers(planned_runs("demo"), rows_with_a_run("demo"), ROWS),
    ),
    "imagenet runs and rows": (
        r"at their resolutions: (\d+) runs for the (\d+) rows",
        lambda: numbers(planned_runs("imagenet"), rows_with_a_run("imagenet")),
    ),
    "imagenet runs in the README": (r"with their recipes \((\d+) runs\)", lambda: numbers(planned_runs("imagenet"))),
    "imagenet runs smoke-tested": (r"runs all (\d+) runs of the imagenet profile", lambda: numbers(planned_runs("imagenet"))),
    "published runs in the README": (r"the released weights the rows name \((\d+) runs;", lambda: numbers(planned_runs("published"))),
    "published runs and rows": (
        r"(\d+) runs for the (\d+) rows that name weights",
        lambda: numbers(planned_runs("published"), rows_with_a_run("published")),
    ),
    "published evaluations": (r"How long the (\d+) evaluations take on one GPU", lambda: numbers(planned_runs("published"))),
    "demo evaluations": (r"the (\d+) evaluations run too", lambda: numbers(planned_runs("demo"))),
}


@pytest.mark.parametrize("pattern, plan", COUNTS.values(), ids=COUNTS.keys())
def test_the_runs_and_rows_each_profile_is_said_to_plan_are_the_plans(pattern: str, plan) -> None:
    for statement in stated(pattern):
        assert statement == plan(), pattern


def demo_data() -> tuple[int, int, int]:
    """Classes, training and validation images of the demo set, from params.yaml's `demo`."""
    demo = SETTINGS["demo"]
    return demo["classes"], demo["classes"] * demo["train_per_class"], demo["classes"] * demo["val_per_class"]


def usual(values) -> int:
    return Counter(values).most_common(1)[0][0]


def test_the_demo_is_described_as_the_plan_trains_it() -> None:
    classes, train, val = demo_data()
    epochs, size = usual(t.epochs for t in DEMO.values()), usual(t.image_size for t in DEMO.values())
    assert stated(r"(\d+) runs, (\d+) epochs at (\d+) px") == [numbers(len(DEMO), epochs, size)]
    readme = r"(\d+) epochs at (\d+) px on a synthetic set of (\d+) classes \(([\d,]+) training and ([\d,]+) validation images\)"
    assert stated(readme) == [numbers(epochs, size, classes, train, val)]
    for statement in stated(r"\(([\d,]+) training and ([\d,]+) validation images, (\d+) classes, (\d+) px pictures\)"):
        assert statement == numbers(train, val, classes, SETTINGS["demo"]["image_size"])
    assert stated(r"after (\d+) and (\d+) epochs") == [numbers(*sorted({t.epochs for t in DEMO.values()}))]
    assert stated(r"Inception-ResNet-v1 at (\d+) px") == [numbers(demo_size("inception_resnet_v1"))]
    assert stated(r"against B3 at (\d+) px") == [numbers(demo_size("efficientnet_b3"))]
    others = sorted({t.image_size for t in DEMO.values()} - {size, demo_size("inception_v3")})
    assert stated(r"\((\d+) for the Inceptions, their smallest input; (\d+) and (\d+) px where a study scales") == [
        numbers(demo_size("inception_v3"), *others)
    ]


def test_the_demo_steps_are_its_epochs_of_full_batches() -> None:
    _, train, _ = demo_data()
    recipe = load_config(PARAMS, ["recipe=demo"]).train
    batches = train // recipe.batch_size  # an epoch drops the images that make no full batch
    assert stated(r"in its (\d+) steps \((\d+) epochs of (\d+) batches of (\d+)") == [
        numbers(recipe.epochs * batches, recipe.epochs, batches, recipe.batch_size)
    ]


def test_the_demo_chance_and_interval_follow_from_its_classes_and_validation_images() -> None:
    classes, _, val = demo_data()
    assert stated(r"4x chance \((\d+)%\)") == [numbers(round(4 * 100 / classes))]
    ((images, interval),) = stated(r"On ([\d,]+) validation images a top-1 of 50% carries a 95% sampling interval of about ±([\d.]+)")
    assert int(images) == val
    assert float(interval) == round(sampling_interval(50, val), 1)


def test_the_recipe_table_gives_each_recipes_epochs_batch_and_resolution() -> None:
    row = r"^\| `(\w+)` \| [^|]+ \|\s*(\d*)\s*\|\s*(\d*)\s*\|\s*(\d*)\s*\|$"
    table = re.findall(row, Path("docs/recipes.md").read_text(), re.MULTILINE)
    assert {row[0] for row in table} == {path.stem for path in Path("pipelines/recipes").glob("*.yaml")}
    for name, *stated_values in table:
        train = load_config(PARAMS, [f"recipe={name}"]).train
        if any(stated_values):  # a recipe that trains nothing (published) leaves them blank
            assert stated_values == list(numbers(train.epochs, train.batch_size, train.image_size)), name


def test_the_oak_config_example_is_what_oak_config_prints() -> None:
    block = re.search(r"\$ oak config (\S+) (\S+)\n(.*?)```", Path("docs/recipes.md").read_text(), re.DOTALL)
    assert block, "docs/recipes.md shows no `oak config` example"
    printed = {" ".join(line.split()) for line in explain_config(PARAMS, block[1], [block[2]]).splitlines()}
    shown = [" ".join(line.split()) for line in block[3].splitlines() if line.strip() != "..."]
    assert shown and all(line in printed for line in shown), [line for line in shown if line not in printed]


def test_the_recipe_batches_named_for_the_largest_smoke_runs_are_the_plans() -> None:
    runs = plan_runs(STUDIES, "imagenet")
    resnet200, b7 = (run_config(PARAMS, runs[name]).train for name in ("resnet200", "efficientnet_b7"))
    assert resnet200.batch_size == b7.batch_size
    assert stated(r"a recipe's batch of (\d+) at ResNet-200's (\d+) px or EfficientNet-B7's (\d+) px") == [
        numbers(resnet200.batch_size, resnet200.image_size, b7.image_size)
    ]


def test_imagenets_shard_count_follows_from_the_shard_size() -> None:
    size = SETTINGS["prepare"]["samples_per_shard"]
    train, val = math.ceil(IMAGENET_TRAIN_IMAGES / size), math.ceil(IMAGENET_VAL_IMAGES / size)
    statement = r"about ([\d,]+) tar files \(([\d,]+) training and ([\d,]+) validation shards at `prepare.samples_per_shard: (\d+)`"
    assert stated(statement) == [numbers(round(train + val, -2), train, val, size)]


def test_the_prepare_settings_table_gives_params_yamls_values() -> None:
    table = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| ([^|]+?) \|", Path("docs/imagenet.md").read_text(), re.MULTILINE)
    prepare = SETTINGS["prepare"]
    assert {key for row in table for key in row[:2] if key} >= {"classes", "samples_per_shard", "seed", "workers", "mode", "on_bad"}
    for first, second, values in table:
        keys = [key for key in (first, second) if key]
        shown = [yaml.safe_load(value.strip().strip("`")) for value in values.split(",")]
        assert shown == [prepare[key] for key in keys], keys


def test_the_defaults_quoted_beside_their_keys_are_params_yamls() -> None:
    assert stated(r"`tracking.patience_seconds` \((\d+)\)") == [numbers(SETTINGS["tracking"]["patience_seconds"])]
    assert stated(r"for (\d+) rounds \(`--rounds`\)") == [numbers(SETTINGS["bench"]["g1_rounds"])]


def test_the_cost_quoted_for_a_study_is_the_reports() -> None:
    ((table, hours, on_eight),) = stated(r"Table (\d) needs about ([\d,]+) H200-hours, about (\d+) hours on 8 of them")
    lines = Path("reports/tables/cost.md").read_text().splitlines()
    headings = [cell.strip() for cell in lines[2].strip("|").split("|")]
    (row,) = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith(f"| Table {table} |")]
    reported = float(row[headings.index("NVIDIA H200 (hours)")].replace(",", ""))  # a study with a run not measured has a "≥"
    assert (hours, on_eight) == numbers(int(round(reported, -2)), int(round(reported / 8, -1)))


def test_every_skip_reason_states_the_epochs_and_resolutions_its_study_trains() -> None:
    """A row left out of a profile says what the study trains instead: those numbers are the study's runs'."""
    checked = 0
    for profile in ("demo", "imagenet"):
        planned = plan_rows(STUDIES, profile)
        for study in STUDIES:
            rows = [planned[f"{study.name}/{row.label}"] for row in study.rows]
            reasons = {row for row in rows if isinstance(row, str) and re.search(r"\d+,? (and \d+ )?(epochs|px)", row)}
            runs = dict.fromkeys(run for run in rows if isinstance(run, Run)) if reasons else {}
            trains = [run_config(PARAMS, run).train for run in runs]
            for reason in reasons:
                for match in re.finditer(r"(\d+)(?:,? and (\d+))? epochs", reason):
                    assert {int(n) for n in match.groups() if n} <= {t.epochs for t in trains}, (study.name, reason)
                    checked += 1
                for match in re.finditer(r"(\d+) px", reason):
                    assert int(match[1]) in {t.image_size for t in trains}, (study.name, reason)
                    checked += 1
    assert checked


def test_the_cost_report_names_the_batch_bound_each_measurement_was_taken_with() -> None:
    planned = {"resnet18": Run("resnet18", "resnet18", "resnet_he2016", ())}
    entry = {"epochs": 90, "images_per_second": 10.0, "image_size": 224, "batch_size": 4, "precision": "32-true"}
    devices = {"cpu": {"device": "a CPU", "torch": "2", "batch_size_cap": 4, "runs": {"resnet18": entry}}}
    (note,) = [note for note in cost_runs_table(planned, devices).notes if note.startswith("The batch in brackets")]
    assert "a CPU at most 4" in note and "32-true" in note


# Every shell command the README and docs/ show is run below, or marked on its line with what it needs that a
# test machine lacks: `# [GPU]`, `# [SLURM]`, `# [ImageNet]`, `# [network]` (another host, or every address of
# this one), or `# [slow]` (minutes to hours on a CPU: `make repro` and `make test`, whose parts the pipeline tests
# run on a shrunken copy; `dvc exp run`, whose pipeline tests/test_pipeline.py runs and whose -S values are checked
# here; `oak bench prepare`, timing 5,000 generated JPEGs). A console example (`$ command` and its output) is run by
# the test that compares its output.
MARKS = {"GPU", "SLURM", "ImageNet", "network", "slow"}
SHELL_BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
CHECKED_ELSEWHERE = {  # the command, and the test that runs it
    "oak config resnet18-rs-training train.epochs=5": "test_the_oak_config_example_is_what_oak_config_prints",
    "oak server": "test_the_readmes_venv_oak_server_serves_with_no_environment_activated",
}
RUN_HERE = [  # in a copy of the repository with its demo shards, in this order (the last changes the plan)
    "oak train resnet18 train.lr=0.001",
    "oak verify data/shards",
    "oak models",
    "oak models --resolution 224",
    "oak models --model resnet50 --json",
    "oak calc",
    "oak bench infer --model resnet18 --batch-size 32",
    "dvc exp show --only-changed",
    "dvc metrics diff",
    "oak plan budget",
    "oak plan imagenet",
]


@dataclass(frozen=True)
class Shown:
    path: Path
    command: str
    mark: str | None  # what it needs, from `# [mark]` on its line


def shown_commands() -> list[Shown]:
    """Each command of a ```sh or ```bash block: every line but comments and, in a console example, the output."""
    shown = []
    for path in DOCS:
        for block in SHELL_BLOCK.findall(path.read_text()):
            lines = block.splitlines()
            console = lines[0].startswith("$ ")
            for line in lines:
                if not line.strip() or line.lstrip().startswith("#") or (console and not line.startswith("$ ")):
                    continue
                command, _, comment = line.removeprefix("$ ").partition(" #")
                mark = re.match(r"\s*\[(\w+)\]", comment)
                shown.append(Shown(path, command.strip(), mark[1] if mark else None))
    return shown


def test_every_command_shown_is_run_by_a_test_or_marked_with_what_it_needs() -> None:
    shown = shown_commands()
    assert {s.mark for s in shown} - {None} <= MARKS, [s for s in shown if s.mark and s.mark not in MARKS]
    unmarked = {s.command for s in shown if s.mark is None}
    assert unmarked - set(RUN_HERE) - set(CHECKED_ELSEWHERE) == set(), "run these commands in RUN_HERE, or mark them with what they need"
    assert set(RUN_HERE) | set(CHECKED_ELSEWHERE) <= unmarked, "a command run here that the docs no longer show (or now mark)"
    assert all(name in globals() for name in CHECKED_ELSEWHERE.values())


def set_values(command: str) -> list[str]:
    """The `-S key=value` values of a `dvc exp run`, as the shell passes them."""
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words) if word in ("-S", "--set-param")]


def test_every_dvc_exp_run_shown_sets_params_dvc_accepts_and_oak_loads(tmp_path: Path) -> None:
    """DVC's own parsing (it refuses a key params.yaml lacks unless written `+key`), on a copy of params.yaml."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    experiments = {s.command for s in shown_commands() if s.command.startswith("dvc exp run")}
    assert experiments
    for command in experiments:
        params = params_file(tmp_path)
        apply_overrides(params, to_path_overrides(set_values(command))[str(PARAMS)])
        config = load_config(params)
        for value in set_values(command):
            key, _, wanted = value.removeprefix("+").partition("=")
            assert str(OmegaConf.select(config, key)) == wanted, command


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository (a git repo planning the shrunken demo of two models) with its demo shards."""
    from test_pipeline import copy_repository

    repo = copy_repository(tmp_path_factory.mktemp("docs") / "oak")
    for command in ("oak demo-data", "oak prepare"):
        shell(command, repo)
    return repo


def shell(command: str, cwd: Path, **popen) -> subprocess.CompletedProcess:
    """`command` as a user runs it in the activated environment (the venv's scripts first on PATH), the store local."""
    env = {name: value for name, value in os.environ.items() if name != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow  # a copy of the repository, its demo shards, and about a dozen oak and dvc commands
@pytest.mark.parametrize("command", RUN_HERE)
def test_each_command_shown_runs(command: str, copy: Path) -> None:
    shell(command, copy)
    if command == "oak plan imagenet":
        shell("oak plan", copy)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving(folder: Path, command: list[str], path: str) -> None:
    """Start `command`, an `oak server` on 127.0.0.1 (its last argument the port), wait until it answers, stop it."""
    env = {name: value for name, value in os.environ.items() if name not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI")} | {"PATH": path}
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # MLflow starts 4 workers: 90 s while other tests share 2 cores
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{command[-1]}/health", timeout=2)
                return
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
                    pytest.fail(f"{' '.join(command)} did not serve:\n{process.stdout.read().decode()}")
                time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the server and the workers it started, in its own session
            process.wait(timeout=30)


@pytest.mark.slow  # an MLflow server's start
def test_the_readmes_venv_oak_server_serves_with_no_environment_activated(tmp_path: Path) -> None:
    """`.venv/bin/oak server` as the README shows it (docs/tracking.md's `oak server`, the same command), with a PATH
    that holds no MLflow (nor any of the venv's scripts); on a free port of 127.0.0.1, until it answers."""
    assert "`.venv/bin/oak server`" in Path("README.md").read_text()
    params_file(tmp_path)
    serving(tmp_path, [str(Path(sys.executable).parent / "oak"), "server", "--port", str(free_port())], "/usr/bin:/bin")
