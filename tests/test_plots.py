"""`dvc plots show` draws one chart per study, overlaying its runs' validation curves."""

import json
import subprocess
import sys
from pathlib import Path

from oak.studies.plan import Run, plan_rows
from oak.studies.plots import PLOTS_FILE, render_plots
from oak.studies.study import load_studies

DVC = str(Path(sys.executable).parent / "dvc")


def test_dvc_plots_show_draws_a_chart_per_study_with_a_line_per_run(tmp_path: Path) -> None:
    studies = load_studies()
    planned = plan_rows(studies, "demo")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / PLOTS_FILE).write_text(render_plots(studies, planned, Path("metrics/curves")))
    curves = tmp_path / "metrics" / "curves"
    curves.mkdir(parents=True)
    for run in {run for run in planned.values() if isinstance(run, Run)}:
        (curves / f"{run.repeats()[0].name}.csv").write_text("epoch,val/top1,val/top5\n0,40.0,90.0\n1,50.0,95.0\n")
    shown = json.loads(subprocess.run([DVC, "plots", "show", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout)
    charts = shown["data"]
    assert set(charts) == {study.name for study in studies}  # the demo trains a run for every study
    for study in studies:
        runs = {run.repeats()[0].name for row in study.rows if isinstance(run := planned[f"{study.name}/{row.label}"], Run)}
        (chart,) = charts[study.name]
        points = chart["content"]["data"]["values"]
        only = f"{next(iter(runs))}.csv"  # DVC names the file of a point only when a chart has several
        assert {point.get("filename", only).removesuffix(".csv") for point in points} == runs, study.name  # every run, one line each
        assert len(points) == 2 * len(runs)
        assert chart["content"]["title"]["text"].startswith(study.title.split(":")[0])


def test_a_profile_that_trains_nothing_has_no_charts() -> None:
    studies = load_studies()
    assert render_plots(studies, plan_rows(studies, "published"), Path("metrics/curves")).endswith("plots: []\n")
