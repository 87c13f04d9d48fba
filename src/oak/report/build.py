"""`oak report`: this pipeline's results, the paper's tables beside them, the paper's claims checked,
and an index, in `paths.reports`.

Inputs are files DVC tracks: the metrics files and training curves of the runs, the models' facts
(`metrics/facts.json`, written by `oak models --write`), the studies in pipelines/studies/ and,
when measured, `metrics/bench/g1.json`, and the measurements of other devices in metrics/devices/.
"""

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from omegaconf import DictConfig

from oak.config.load import PARAMS_FILE
from oak.data.info import ShardInfo, read_info
from oak.errors import OakError
from oak.files import read_json, replace_folder
from oak.layout import Layout
from oak.report.budget_scale import budget_scale
from oak.report.claims import claims_table, comparison_claims, published_claims, table_claims
from oak.report import speed
from oak.report.cost import cost_runs_table, cost_table, read_devices, study_runs
from oak.report.figures import accuracy_vs_throughput, figure_files, scaling_figure, training_curves
from oak.report.differences import differences_page
from oak.report.index import index
from oak.report.paper import calculation_table, g1_table, seed_mean, study_table
from oak.report.results import result_rows, results_outputs
from oak.report.scaling import PAPER_PANEL, scaling_panels, scaling_reference, scaling_title
from oak.report.steps import paper_steps, run_steps, steps_figure
from oak.report.tables import Table, table_files, to_markdown
from oak.studies.budget import BUDGET, load_budget
from oak.studies.plan import Run, current_runs, plan_rows, plan_runs, run_config
from oak.studies.study import METRICS, Study, load_studies
from oak.tracking.tracker import Tracker
from oak.training.curves import read_curves


@dataclass(frozen=True)
class Inputs:
    """Everything the report is built from, each file read once."""

    info: ShardInfo
    facts: dict[str, dict]  # by model
    studies: list[Study]
    profile: str  # the one the plan was made for
    planned: dict[str, Run | str]  # each study row's run in that profile, or why it has none
    runs: list[Run]  # the distinct planned runs, by name (a run over several seeds once: its first seed's files stand for it)
    g1s: dict[str, dict]  # Table 4's measurements by table name
    measured: dict[str, dict]  # evaluation metrics by run (over several seeds: their mean, `seed_mean`)
    published: dict[str, dict]  # released weights' metrics by study row key, where `oak plan published`'s runs measured them
    trained: dict[str, dict]  # training metrics by run
    timings: dict[str, dict]  # training times by run
    imagenet: dict[str, Run | str]  # the imagenet profile's plan, which the cost tables and speed figures price
    paper_sizes: dict[str, int]  # each row's evaluation size in that plan, the paper's, by row key
    devices: dict[str, dict]  # cost measurements by device slug
    curves: dict[str, list[dict[str, float]]]  # per-epoch metrics by run

    @property
    def data_label(self) -> str:
        return f"{self.info.label}, at demo scale" if self.info.synthetic else self.info.label


def write_report(config: DictConfig) -> list[Path]:
    """Write every file of the report, log them to MLflow as the run "report", and return their paths."""
    layout = Layout.of(config)
    inputs = read_inputs(layout)
    tables = report_tables(inputs)
    rows = result_rows(inputs.runs, inputs.trained, inputs.measured, inputs.timings, studies_of_runs(inputs.planned))
    outputs = results_outputs(layout, config.report.title, inputs.info, rows, {study.name: study.title for study in inputs.studies})
    for name, table in tables.items():
        outputs |= table_files(table, layout.tables, name)
    for name, figure in report_figures(inputs):
        outputs |= figure_files(figure, layout.figures, name)
    claims = table_claims(inputs.studies, inputs.facts, list(inputs.g1s.values()))
    budget = load_budget() if inputs.profile == BUDGET else None  # its verdicts say "at budget scale"
    for study in inputs.studies:
        judged = comparison_claims(study, inputs.planned, inputs.measured, inputs.published, inputs.data_label, inputs.curves)
        claims += budget_scale(judged, study, budget) if budget else judged
    claims += published_claims(inputs.studies, inputs.published)
    claims += [
        speed.speed_claim(points, m["device"], setting, unjudged=speed.why_unjudgeable(m))
        for m, setting, points in speed_comparisons(inputs).values()
    ]
    outputs[layout.reports / "claims.md"] = to_markdown(claims_table(claims))
    outputs[layout.reports / "differences.md"] = differences_page(PARAMS_FILE)
    device_names = {slug: measurement["device"] for slug, measurement in inputs.devices.items()}
    outputs[layout.reports / "README.md"] = index(tables, inputs.studies, device_names, inputs.profile, inputs.data_label)
    replace_folder(layout.reports, outputs)  # a kill leaves the previous report or this one, never a mix of both
    Tracker(config).log_report(inputs.info, list(outputs))
    return list(outputs)


def studies_of_runs(planned: dict[str, Run | str]) -> dict[str, list[str]]:
    """The studies each run serves, by run name, from the plan's `study/row label` keys."""
    studies: dict[str, list[str]] = {}
    for key, run in planned.items():
        study = key.split("/")[0]
        if isinstance(run, Run) and study not in studies.setdefault(run.name, []):
            studies[run.name].append(study)
    return studies


def read_inputs(layout: Layout) -> Inputs:
    """Read every input; a missing facts or metrics file stops the report, naming the command that writes it."""
    info, facts = read_info(layout.shards), read_facts(layout.facts)
    studies = load_studies()
    profile, planned = current_runs()
    # The trained runs' columns: a published plan trains nothing, its measurements have their own column.
    planned = {key: "the published profile trains nothing" if isinstance(run, Run) and run.weights else run for key, run in planned.items()}
    runs = sorted({run for run in planned.values() if isinstance(run, Run)}, key=lambda run: run.name)
    imagenet = plan_rows(studies, "imagenet")
    released = {key: layout.published_metrics(run.name) for key, run in plan_rows(studies, "published").items() if isinstance(run, Run)}
    return Inputs(
        info=info,
        facts=facts,
        studies=studies,
        profile=profile,
        planned=planned,
        runs=runs,
        g1s=read_g1s(layout),
        measured={run.name: seed_mean([read_metrics(layout.eval_metrics(seed.name)) for seed in run.repeats()]) for run in runs},
        published={key: read_metrics(path) for key, path in released.items() if path.exists()},
        trained={run.name: read_metrics(layout.train_metrics(run.repeats()[0].name)) for run in runs},
        timings={run.name: read_metrics(layout.timings("train", run.repeats()[0].name)) for run in runs},
        imagenet=imagenet,
        paper_sizes=evaluation_sizes(imagenet),
        devices=read_devices(layout.devices, plan_runs(studies, "imagenet"), PARAMS_FILE),
        curves={run.name: read_run_curves(layout.curves(run.repeats()[0].name)) for run in runs},
    )


def read_facts(path: Path) -> dict[str, dict]:
    return read_json(path, "run `oak models --write` (or `dvc repro facts`)")


def read_metrics(path: Path) -> dict:
    return read_json(path, "run `dvc repro` (or `oak train` and `oak evaluate`) for this model")


def read_run_curves(path: Path) -> list[dict[str, float]]:
    """A run's curves, as its training wrote them: a missing file or a row cut short is an error naming it."""
    if not path.exists():
        raise OakError(f"{path}: curves not found; run `dvc repro` (or `oak train`) for this model")
    try:
        return read_curves(path)
    except (TypeError, ValueError):  # a cell that is not a number; one missing from a row cut short reads as None
        raise OakError(f"{path}: not a curves file, cut short or damaged; run `dvc repro` (or `oak train`) for this model") from None


def read_g1s(layout: Layout) -> dict[str, dict]:
    """Table 4's measurements by table name: this machine's (the bench-g1 stage), then other devices' (`table4-<device>-<batch>`)."""
    measured = "measured by `oak bench g1`: run it again (here, `dvc repro bench-g1`), or restore the file from git"
    here = {"table4": read_json(layout.bench("g1"), measured)} if layout.bench("g1").exists() else {}
    elsewhere = {f"table4-{path.parent.name}-{path.stem.removeprefix('g1-')}": path for path in sorted(layout.devices.glob("*/g1-*.json"))}
    return here | {name: read_json(path, measured) for name, path in elsewhere.items()}


def report_tables(inputs: Inputs) -> dict[str, Table]:
    """Every table by file name, sorted so that the index lists them in that order."""
    tables = {
        study.name: study_table(
            study, inputs.planned, inputs.facts, inputs.measured, inputs.data_label, inputs.published, inputs.paper_sizes
        )
        for study in inputs.studies
    }
    tables["table3"] = calculation_table()
    tables["cost"] = cost_table(inputs.studies, inputs.imagenet, inputs.devices, budget=plan_rows(inputs.studies, BUDGET))
    tables["cost_runs"] = cost_runs_table(inputs.imagenet, inputs.devices)
    tables |= {name: g1_table(g1) for name, g1 in inputs.g1s.items()}
    return dict(sorted(tables.items()))


def evaluation_sizes(imagenet: dict[str, Run | str]) -> dict[str, int]:
    """Each row's evaluation size in the imagenet profile, the paper's protocol, by row key."""
    runs = {run for run in imagenet.values() if isinstance(run, Run)}
    sizes = {run: run_config(PARAMS_FILE, run).train for run in runs}
    return {key: sizes[run].eval_image_size or sizes[run].image_size for key, run in imagenet.items() if isinstance(run, Run)}


def report_figures(inputs: Inputs) -> Iterator[tuple[str, Figure]]:
    """Every figure with its file name, one at a time, so that only the one being rendered is held."""
    title = f"Training curves: {inputs.data_label}"
    yield "training_curves", training_curves(inputs.curves, "val/top1", "validation top-1 (%)", title=title)
    for study in inputs.studies:
        yield f"{study.name}_curves", study_curves(study, inputs)
        if study.scaling:
            yield f"{study.name}_scaling", study_scaling(study, inputs)
        if study.steps:
            yield f"{study.name}_steps", study_steps(study, inputs)
    yield "top1_vs_throughput", throughput_figure(inputs)
    for slug, (measurement, setting, points) in speed_comparisons(inputs).items():
        yield f"fig5_speed_{slug}", speed.speed_figure(points, measurement["device"], setting, unjudged=speed.why_unjudgeable(measurement))


def study_curves(study: Study, inputs: Inputs) -> Figure:
    """The study's metric per epoch for each of its runs."""
    curves = {run.name: inputs.curves[run.name] for run in study_runs(study, inputs.planned)}
    key = "val/top5" if study.metric == "top5_error" else "val/top1"
    label = f"validation {METRICS[study.metric]}"
    title = f"{study.title.split(':')[0]}: {label} per epoch\n{inputs.data_label}"
    return training_curves(curves, key, label, title=title, error=study.metric.endswith("_error"))


def study_scaling(study: Study, inputs: Inputs) -> Figure:
    """The paper's scaling figure for the study, drawn from Oak's runs of its rows."""
    title = f"{scaling_title(study)}: top-1 against MACs\n{inputs.data_label}"
    panels = scaling_panels(study, inputs.planned, inputs.trained, inputs.measured, inputs.paper_sizes)
    return scaling_figure(panels, title=title, reference=scaling_reference(study) if PAPER_PANEL in panels else None)


def throughput_figure(inputs: Inputs) -> Figure:
    """Each run's top-1 against its training throughput on this machine, the median over its epochs."""
    points = {
        name: (statistics.median(row["train/images_per_second"] for row in rows), inputs.measured[name]["top1"])
        for name, rows in inputs.curves.items()
    }
    xlabel = "training throughput (images/s, median over epochs, measured)"
    setting = speed.training_setting([run_config(PARAMS_FILE, run) for run in inputs.runs])
    title = f"Top-1 against throughput: {inputs.data_label}\n(timed in training: {setting})"
    return accuracy_vs_throughput(points, xlabel=xlabel, title=title)


def study_steps(study: Study, inputs: Inputs) -> Figure:
    """The paper's chain of steps (Fig. 6), its values beside Oak's runs of them."""
    panels = {
        "the paper's values (ImageNet)": paper_steps(study),
        f"Oak's runs: {inputs.data_label}": run_steps(study, inputs.planned, inputs.measured),
    }
    return steps_figure(panels, title=f"{study.steps}: {study.title.split(': ', 1)[1]}")


def speed_comparisons(inputs: Inputs) -> dict[str, tuple[dict, tuple[int, str], list[speed.SpeedPoint]]]:
    """Fig. 5 on each device with a measurement the plan still asks for, by slug: (its measurement, the batch and
    precision compared at, every planned point)."""
    return {slug: (m, *speed.speed_points(inputs.studies, inputs.imagenet, m)) for slug, m in inputs.devices.items() if m["runs"]}
