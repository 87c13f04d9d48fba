"""End to end: `dvc repro` in a copy of the repository, on a shrunken demo, with the real DVC and MLflow."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

pytestmark = pytest.mark.slow  # dvc repro of the whole demo pipeline

REPO = Path(__file__).resolve().parents[1]
MODELS = ["resnet18", "shufflenet_v2_x0_5"]
# The paper's studies train a dozen models; the copy declares one study of two instead.
STUDY = """title: "Two small models"
source: "torchvision's model cards"
metric: top1
scaling: "a scaling figure"
profiles: {demo: {recipe: demo}}
rows:
  - {label: ResNet-18, model: resnet18, paper: 69.758, series: [both]}
  - {label: ShuffleNet-v2 0.5x, model: shufflenet_v2_x0_5, paper: 60.552, series: [both]}
"""
SHRINK = {
    "demo": {"classes": 4, "train_per_class": 12, "val_per_class": 6, "image_size": 40},
    "prepare": {"samples_per_shard": 16},
    "train": {"epochs": 1, "batch_size": 8, "image_size": 32, "num_workers": 0},
    "evaluate": {"num_workers": 0},
    "bench": {"g1_rounds": 1},
}


def merge(base: dict, update: dict) -> dict:
    return {**base, **{k: merge(base[k], v) if isinstance(v, dict) else v for k, v in update.items()}}


def run(command: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # exercise the default store
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_params(repo: Path, update: dict) -> None:
    params = repo / "params.yaml"
    params.write_text(yaml.safe_dump(merge(yaml.safe_load(params.read_text()), update), sort_keys=False))


def copy_repository(copy: Path, *, study: str = STUDY, params: dict = SHRINK) -> Path:
    """The repository's files (committed or not, minus ignored ones) at `copy`, as a fresh git repo that
    declares `study` alone, with `params` merged into its params.yaml, and its plan written."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    for tracked_output in ("dvc.lock", "reports"):
        shutil.rmtree(copy / tracked_output, ignore_errors=True) if (copy / tracked_output).is_dir() else (copy / tracked_output).unlink(
            missing_ok=True
        )
    set_params(copy, params)
    studies = copy / "pipelines" / "studies"
    shutil.rmtree(studies)
    studies.mkdir()
    (studies / "small.yaml").write_text(study)
    run(["oak", "plan", "demo"], copy)
    git = ["git", "-c", "user.name=oak", "-c", "user.email=oak@localhost"]
    run(["git", "init", "-q"], copy)
    run(git + ["add", "-A"], copy)
    run(git + ["commit", "-qm", "copy"], copy)
    return copy


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repository(tmp_path_factory.mktemp("e2e") / "oak")


@pytest.fixture(scope="module")
def first_repro(repo: Path) -> str:
    return run(["dvc", "repro"], repo)


def test_repro_runs_every_stage_and_writes_every_output(repo: Path, first_repro: str) -> None:
    expected = {"demo-data", "prepare", "facts", "bench-g1", "report", "sync"} | {
        f"{stage}@{m}" for stage in ("train", "evaluate") for m in MODELS
    }
    assert stages_run(first_repro) == expected
    for model in MODELS:
        assert (repo / "models" / model / "last.ckpt").exists()
        assert set(json.loads((repo / "metrics" / "eval" / f"{model}.json").read_text())) >= {"top1", "top5", "loss", "params"}
    reports = (
        "README.md",
        "results.md",
        "top1_vs_params.svg",
        "claims.md",
        "tables/small.md",
        "tables/small.tex",
        "figures/training_curves.png",
        "figures/small_scaling.svg",
    )
    for name in reports:
        assert (repo / "reports" / name).stat().st_size > 0
    assert "synthetic" in (repo / "reports" / "results.md").read_text()
    assert "synthetic" in (repo / "reports" / "tables" / "small.md").read_text()


def test_dvc_knows_the_metrics_and_the_training_curves(repo: Path, first_repro: str) -> None:
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    files = next(iter(shown.values()))["data"]
    assert {f"metrics/eval/{m}.json" for m in MODELS} <= set(files)
    (chart,) = json.loads(run(["dvc", "plots", "show", "--json"], repo))["data"]["small"]  # one chart for the study
    assert {point["filename"] for point in chart["content"]["data"]["values"]} == {f"{m}.csv" for m in MODELS}


def test_mlflow_holds_one_run_per_model_with_the_dvc_numbers_and_the_report_apart(repo: Path, first_repro: str) -> None:
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id])}
    assert set(runs) == set(MODELS)
    [report] = client.search_runs([client.get_experiment_by_name("oak-demo-reports").experiment_id])
    report_files = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"README.md", "results.md", "results.csv", "top1_vs_params.png", "claims.md", "small.md", "small.tex"} <= report_files
    for model, mlflow_run in runs.items():
        metrics = json.loads((repo / "metrics" / "eval" / f"{model}.json").read_text())
        assert mlflow_run.data.metrics["eval/top1"] == pytest.approx(metrics["top1"])
        assert mlflow_run.data.tags["synthetic"] == "true"


def test_a_second_repro_runs_nothing(repo: Path, first_repro: str) -> None:
    assert stages_run(run(["dvc", "repro"], repo)) == set()


def test_a_retraining_that_gives_the_same_weights_keeps_their_evaluation(repo: Path, first_repro: str) -> None:
    # as on a fresh clone: the checkpoints are gone (neither git nor a DVC remote holds them), the metrics are committed
    evaluations = {model: (repo / "metrics" / "eval" / f"{model}.json").read_text() for model in MODELS}
    for model in MODELS:
        shutil.rmtree(repo / "models" / model)
    assert stages_run(run(["dvc", "repro"], repo)) == {"report", "sync"} | {f"train@{model}" for model in MODELS}
    assert {model: (repo / "metrics" / "eval" / f"{model}.json").read_text() for model in MODELS} == evaluations
    # MLflow still shows every result: the sync stage gives each new training's run the evaluation DVC kept
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    for model in MODELS:
        run_id = json.loads((repo / "models" / model / "run.json").read_text())["run_id"]
        mirrored = client.get_run(run_id).data
        assert mirrored.metrics["eval/top1"] == pytest.approx(json.loads(evaluations[model])["top1"])
        assert mirrored.tags["oak.source.eval"].startswith(f"DVC record: metrics/eval/{model}.json (md5 ")
        assert mirrored.tags["oak.source.train"] == "computed here"


def test_oak_repro_with_two_jobs_reproduces_what_dvc_repro_did(repo: Path, first_repro: str) -> None:
    evaluations = {model: (repo / "metrics" / "eval" / f"{model}.json").read_text() for model in MODELS}
    for model in MODELS:
        shutil.rmtree(repo / "models" / model)
    output = run(["oak", "repro", "--jobs", "2"], repo)
    finished = {line.rsplit(" in ", 1)[0] for line in output.splitlines()}
    assert {f"train@{model}: done" for model in MODELS} | {f"evaluate@{model}: unchanged, skipped" for model in MODELS} <= finished
    assert f"{2 * len(MODELS) + 2} stages: {len(MODELS) + 2} ran, {len(MODELS)} unchanged" in output
    # one compute thread per training (the demo recipe's train.cpu_threads): the same weights as `dvc repro`'s, evaluations kept
    assert {model: (repo / "metrics" / "eval" / f"{model}.json").read_text() for model in MODELS} == evaluations
    assert "Data and pipelines are up to date." in run(["dvc", "status"], repo)


def test_changing_the_epochs_reruns_training_downstream_only(repo: Path, first_repro: str) -> None:
    set_params(repo, {"train": {"epochs": 2}})
    rerun = stages_run(run(["dvc", "repro"], repo))
    assert rerun == {"report", "sync"} | {f"{stage}@{m}" for stage in ("train", "evaluate") for m in MODELS}
    assert json.loads((repo / "metrics" / "train" / f"{MODELS[0]}.json").read_text())["epochs"] == 2


def test_changing_a_report_setting_reruns_the_report_only(repo: Path, first_repro: str) -> None:
    set_params(repo, {"report": {"title": "Another title"}})
    assert stages_run(run(["dvc", "repro"], repo)) == {"report"}
    assert (repo / "reports" / "results.md").read_text().startswith("# Another title")


def test_changing_one_runs_settings_in_its_study_reruns_that_run_and_the_report(repo: Path, first_repro: str) -> None:
    study = repo / "pipelines" / "studies" / "small.yaml"
    study.write_text(
        study.read_text().replace("60.552, series: [both]}", "60.552, series: [both], profiles: {demo: {settings: {train: {hflip: 0.0}}}}}")
    )
    run(["oak", "plan"], repo)
    assert stages_run(run(["dvc", "repro"], repo)) == {"train@shufflenet_v2_x0_5", "evaluate@shufflenet_v2_x0_5", "report", "sync"}
    assert "hflip: 0.0" in (repo / "models" / "shufflenet_v2_x0_5" / "config.yaml").read_text()


def test_adding_a_study_is_adding_one_file(repo: Path, first_repro: str) -> None:
    (repo / "pipelines" / "studies" / "smoothing.yaml").write_text(
        """title: "ResNet-18 with label smoothing"
source: "a test"
metric: top1
profiles: {demo: {recipe: demo, settings: {train: {label_smoothing: 0.1}}}}
rows:
  - {label: ResNet-18 + LS, model: resnet18, variant: ls, paper: 70}
"""
    )
    run(["oak", "plan"], repo)
    assert stages_run(run(["dvc", "repro"], repo)) == {"train@resnet18-ls", "evaluate@resnet18-ls", "report", "sync"}
    assert "`resnet18-ls`" in (repo / "reports" / "tables" / "smoothing.md").read_text()
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    [ls_run] = client.search_runs([client.get_experiment_by_name("oak-demo").experiment_id], "tags.run = 'resnet18-ls'")
    assert ls_run.info.run_name == "resnet18-ls" and ls_run.data.tags["model"] == "resnet18"


def test_a_study_with_seeds_trains_each_seed_and_its_table_shows_their_mean(repo: Path, first_repro: str) -> None:
    (repo / "pipelines" / "studies" / "seeded.yaml").write_text(
        """title: "ResNet-18 over two seeds"
source: "a test"
metric: top1
profiles: {demo: {recipe: demo, seeds: 2}}
rows:
  - {label: ResNet-18, model: resnet18, variant: seeded, paper: 70}
"""
    )
    run(["oak", "plan"], repo)
    seeds = {"resnet18-seeded-seed0", "resnet18-seeded-seed1"}
    assert stages_run(run(["dvc", "repro"], repo)) == {f"{stage}@{name}" for stage in ("train", "evaluate") for name in seeds} | {
        "report",
        "sync",
    }
    top1 = [json.loads((repo / "metrics" / "eval" / f"{name}.json").read_text())["top1"] for name in sorted(seeds)]
    row = (repo / "reports" / "tables" / "seeded.md").read_text().split("| ResNet-18 |")[1].split("\n")[0]
    assert f"{sum(top1) / 2:.2f} ± " in row and "(mean of 2 seeds, sd " in row
    trained = [yaml.safe_load((repo / "models" / name / "config.yaml").read_text())["seed"] for name in sorted(seeds)]
    assert trained == [0, 1]
    (repo / "pipelines" / "studies" / "seeded.yaml").unlink()  # the later tests need not retrain both seeds
    run(["oak", "plan"], repo)


def test_an_experiment_shows_its_change_in_dvc_exp_show_and_metrics_diff(repo: Path, first_repro: str) -> None:
    git = ["git", "-c", "user.name=oak", "-c", "user.email=oak@localhost"]
    run(git + ["add", "-A"], repo)
    run(git + ["commit", "-qm", "baseline results"], repo)
    run(["dvc", "exp", "run", "-n", "longer", "-S", "train.epochs=3"], repo)
    [workspace, baseline] = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    [experiment] = baseline["experiments"]
    [result] = experiment["revs"]
    assert result["name"] == "longer" and result["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 3
    assert baseline["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 2
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo))
    assert diff["metrics/train/resnet18.json"]["epochs"] == {"old": 2, "new": 3, "diff": 1}
    # Only the changed param and results: timings (metrics/timings, metrics/bench) are not DVC metrics
    header = run(["dvc", "exp", "show", "--only-changed", "--csv"], repo).splitlines()[0].split(",")
    results = {"top1", "top5", "loss", "epochs", "steps", "train_loss", "val_top1", "val_loss"}
    assert "train.epochs" in header, header
    assert "metrics/train/resnet18.json:steps" in header, header  # 3 epochs of steps, not 2
    assert all(column.rpartition(":")[2] in results for column in header if ".json:" in column), header
    assert not [column for column in header if "second" in column or "g1" in column], header
    compared = run(["oak", "compare"], repo).splitlines()
    assert re.fullmatch(r"train.epochs: workspace 3 \| \S+ 2 \| longer 3", compared[0]), compared
    assert compared[2].split()[0] == "top1" and {line.split()[0] for line in compared[3:]} >= set(MODELS), compared
