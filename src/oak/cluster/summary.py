"""What `oak submit` is about to ask of a cluster, in a few lines: its jobs by size, the GPUs they request,
and the device-hours their trainings take where `oak bench cost` measured them (metrics/devices/)."""

from collections import Counter
from pathlib import Path

from oak.cluster.jobs import Job
from oak.layout import cost_file
from oak.report.cost import read_devices, run_hours
from oak.studies.plan import Run


def summary(jobs: list[Job], profile: str, runs: dict[str, Run], *, devices: Path, params: Path) -> str:
    sizes = Counter((job.stage.partition("@")[0] if "@" in job.stage else "other", _size(job)) for job in jobs)
    by_size = ", ".join(f"{count} {kind} on {size}" for (kind, size), count in sizes.items())
    lines = [f"{len(jobs)} jobs for the {profile} profile: {by_size}"]
    gpus = [job.nodes * job.gpus_per_node for job in jobs]
    if any(gpus):
        lines.append(f"GPUs: {sum(gpus)} requested in all, at most {max(gpus)} by one job")
    trainings = [runs[job.stage.partition("@")[2]] for job in jobs if job.stage.startswith("train@")]
    if trainings:
        lines += _estimates({run.name: run for run in trainings}, profile, devices, params)
    return "\n".join(lines)


def _size(job: Job) -> str:
    nodes = f"{job.nodes} node{'s' if job.nodes > 1 else ''}"
    if job.gpus_per_node:
        return f"{nodes} x {job.gpus_per_node} GPU{'s' if job.gpus_per_node > 1 else ''}"
    return f"{nodes} x {job.tasks_per_node} task{'s' if job.tasks_per_node > 1 else ''}, no GPU"


def _estimates(trainings: dict[str, Run], profile: str, devices: Path, params: Path) -> list[str]:
    """One line per measured device: the trainings' device-hours at its measured images/s, and how many it did not measure."""
    lines = []
    for slug, measurement in read_devices(devices, trainings, params, profile).items():
        measured = [measurement["runs"][name] for name in trainings if name in measurement["runs"]]
        if measured:
            hours = sum(run_hours(entry) for entry in measured)
            unestimated = len(trainings) - len(measured)
            lines.append(
                f"estimated: {hours:,.0f} device-hours on {measurement['device']} for {len(measured)} of the {len(trainings)} trainings "
                f"(metrics/devices/{slug}/{cost_file(profile)})" + (f"; {unestimated} unestimated, not measured with their settings" if unestimated else "")
            )
    return lines or [f"estimated: none of the {len(trainings)} trainings was measured with its settings (`oak bench cost` on a device)"]
