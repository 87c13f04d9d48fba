"""Which stages of dvc.yaml must run, each after those it needs; on a cluster, each as a job with its size.

DVC decides what is out of date: every stage whose dependencies or outputs differ from dvc.lock,
and every stage downstream of one (its inputs are about to change). Each becomes one job that runs
exactly the stage's command from dvc.yaml, after the jobs of the stages it depends on. A planned
run's job is sized from the run's settings as `oak train` reads them (params.yaml, recipe, study).
"""

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
from omegaconf import DictConfig

from oak.errors import OakError
from oak.studies.plan import Run, run_config

RUN_STAGES = ("train", "evaluate")  # foreach stages, one per planned run: train@<run>, evaluate@<run>


@dataclass(frozen=True)
class Job:
    stage: str  # its name in dvc.yaml, e.g. train@resnet18
    command: str  # exactly the stage's cmd
    nodes: int = 1
    tasks_per_node: int = 1  # one per device: `launch: srun` starts the stage's command once per task
    gpus_per_node: int = 0
    after: tuple[str, ...] = field(default=())  # the stages whose jobs must succeed first
    settings: DictConfig | None = None  # the run's settings, for a planned run's stages


@dataclass(frozen=True)
class StaleStage:
    name: str  # in dvc.yaml, e.g. train@resnet18
    command: str  # exactly the stage's cmd
    after: tuple[str, ...]  # the stale stages it depends on


def out_of_date_stages(repo_root: Path) -> list[StaleStage]:
    """Every out-of-date stage, in an order where each comes after those it depends on."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(repo_root)) as repo:
            graph = repo.index.graph  # an edge from each stage to each stage it depends on
            stages = {stage.addressing: stage for stage in graph.nodes}
            changed = {stages[name] for name in repo.status()}
            places = _places_by_run(repo.index.stages)
    except DvcException as error:  # not a DVC repository, a dvc.yaml it cannot read, ...
        cause = f" ({' '.join(str(error.__cause__).split())})" if error.__cause__ else ""
        raise OakError(f"DVC: {error}{cause}") from None
    stale = changed | {downstream for stage in changed for downstream in nx.ancestors(graph, stage)}
    # dependencies first, else by run, in dvc.yaml's order (the plan lists the long EfficientNet trainings first)
    order = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=places.__getitem__)
    ordered = [stage for stage in order if stage in stale]
    after = {stage: tuple(dependency.addressing for dependency in graph.successors(stage) if dependency in stale) for stage in ordered}
    return [StaleStage(stage.addressing, stage.cmd.strip(), after[stage]) for stage in ordered]


def _places_by_run(declared: list) -> dict[object, tuple[int, int]]:
    """Each stage's place: where its run's first stage is declared, then its own. A run's stages are the
    foreach entries of its key (train@resnet18, evaluate@resnet18); any other stage is a run of its own.
    So a run's evaluation starts as soon as its training is done, not after every training: one stage at
    a time, the imagenet profile's first top-1 would otherwise wait for all its trainings."""
    first_of_run: dict[str, int] = {}
    places = {}
    for place, stage in enumerate(declared):
        run = stage.addressing.partition("@")[2] or stage.addressing
        places[stage] = (first_of_run.setdefault(run, place), place)
    return places


def out_of_date_jobs(repo_root: Path, params: Path, runs: dict[str, Run], config: DictConfig) -> list[Job]:
    """The jobs for every out-of-date stage, in an order where each comes after those it waits for."""
    return [_job(stage.name, stage.command, stage.after, params, runs, config) for stage in out_of_date_stages(repo_root)]


def _job(stage: str, command: str, after: tuple[str, ...], params: Path, runs: dict[str, Run], config: DictConfig) -> Job:
    kind, _, run = stage.partition("@")
    if kind not in RUN_STAGES:
        return Job(stage, command, after=after)
    if run not in runs:
        raise OakError(f"stage {stage}: no planned run {run!r}; run `oak plan` so that pipelines/plan.yaml matches dvc.yaml's stages")
    settings = run_config(params, runs[run])
    devices, nodes = _count(settings.trainer.devices, stage), settings.trainer.num_nodes
    if devices * nodes > 1 and not config.launch.strip().startswith("srun"):
        raise OakError(
            f"stage {stage}: {nodes} node(s) x {devices} device(s) need one SLURM task per device; "
            "set `launch: srun` in params.yaml, so that each task starts the stage's command once"
        )
    gpus = devices if settings.cluster.gpus else 0
    return Job(stage, command, nodes, devices, gpus, after, settings)


def _count(devices: object, stage: str) -> int:
    """A job must ask for its devices: a count or a list of indices, not "auto"."""
    if isinstance(devices, int) and devices > 0:
        return devices
    text = str(devices).strip("[] ")
    if text and all(part.strip().isdigit() for part in text.split(",")):
        return len(text.split(","))
    raise OakError(f"stage {stage}: trainer.devices={devices}: a SLURM job asks for a number of devices; set a count, e.g. 8")
