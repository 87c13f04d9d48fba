"""`oak smoke PROFILE`: every planned run of a profile for a few steps, the way it will run at scale.

Each run trains with its own model, recipe, resolution, precision and per-device batch (lowered only
where this machine's memory forces it, and said so) under 2-process DDP on the CPU (gloo), both ranks
started at once as torchrun or srun start them, on a small synthetic set of ImageNet-sized JPEGs
(500x375, 1000 classes) that the command makes. The first
training is killed with SIGKILL (its whole process group, as a node failure) once its mid-epoch
checkpoint is written; the second resumes from it; `oak evaluate` then evaluates it. Everything goes
to a temporary folder and its own MLflow store: nothing reaches the profile's experiment or DVC outputs.
The only file kept is `<paths.metrics>/smoke/<PROFILE>.json`, one entry per run with its status.

Every run trains one epoch of STEPS steps at its last training size (progressive resizing off): runs that
differ only in their length (oak.studies.binding.SMOKE_REPLACED: Fig. 4's 350, 100 and 10-epoch runs of a
model) train alike here, so the first of them is tested and its entry stands for the others (`smoked_as`).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from oak.errors import OakError
from oak.files import write_json
from oak.studies.binding import smoke_fingerprint
from oak.studies.plan import Run, run_config
from oak.training.smoke_record import SmokeResult, earlier_results, fingerprint, result_line

PROCESSES = 2  # DDP ranks, gloo on the CPU
STEPS = 2  # per run: the checkpoint after the first, the kill, the resumed second
CLASSES = 1000
VAL_IMAGES = 8
# Training memory per image, in bytes per activation (every conv/linear output element, as
# oak.models.facts counts them): 7-11 measured here for resnet50, efficientnet_b0 and inception_v3
# under bf16 autocast (fwd + bwd, peak RSS growth over the model's), so 12.
BYTES_PER_ACTIVATION = 12
# Each rank holds weights, gradients, optimizer state and an EMA (4 x 4 bytes a parameter); rank 0
# also serialises them into a checkpoint: ResNet-RS-420 (192M) was killed for memory here without this.
BYTES_PER_PARAMETER = 32
MEMORY_SHARE = 0.7  # of the memory available when a run starts, split between the ranks
# An invocation (a training of two steps, or an evaluation) that has not ended by then hangs: the longest here took
# about 5 min (ResNet-50 2x wide at 320 px). A DataLoader worker once stuck in fork (2026-12-06, 1 of some 400
# invocations) and held the whole sweep; now it is that run's failure line, and the sweep goes on.
HANG_SECONDS = 30 * 60


def make_data(folder: Path) -> Path:
    """A shard set of ImageNet-sized JPEGs: one training image per class (1000), and VAL_IMAGES to validate on."""
    from oak.preparing.fullsize import fullsize_shards

    # a validation shard for each rank
    return fullsize_shards(folder, train=dict.fromkeys(range(CLASSES), 1), val=dict.fromkeys(range(VAL_IMAGES), 1), samples_per_shard=4)


def smoke_batch(model: str, image_size: int, recipe_batch: int, even: bool) -> tuple[int, str]:
    """The recipe's per-device batch, or the largest that fits this machine's memory, and why it changed."""
    from oak.models.facts import model_facts

    facts = model_facts(model, image_size)
    per_image = facts.activations * BYTES_PER_ACTIVATION
    budget = _available_memory() * MEMORY_SHARE / PROCESSES - facts.params * BYTES_PER_PARAMETER
    fits = max(2 if even else 1, int(budget // per_image))
    if even:
        fits -= fits % 2
    if fits >= recipe_batch:
        return recipe_batch, ""
    return fits, f"batch {recipe_batch} -> {fits}: {per_image * recipe_batch / 2**30:.1f} GiB per process would not fit"


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OakError("/proc/meminfo has no MemAvailable; oak smoke needs Linux")


def smoke_run(run: Run, params: Path, shards: Path, work: Path) -> SmokeResult:
    config = run_config(params, run)
    recipe = config.train
    mixes = bool(recipe.mixup_alpha or recipe.cutmix_alpha)
    batch, note = smoke_batch(run.model, recipe.image_size, recipe.batch_size, mixes)
    result = SmokeResult(
        run.name,
        run.model,
        run.recipe,
        recipe.image_size,
        config.trainer.precision,
        recipe.batch_size,
        batch,
        0,
        None,
        None,
        "",
        note,
        smoke_fingerprint(config, run.model),
    )
    folder = work / run.name
    overrides = [
        f"recipe={run.recipe}",
        *run.settings,
        f"paths.shards={shards}",
        f"paths.checkpoints={folder / 'models'}",
        f"paths.metrics={folder / 'metrics'}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        "tracking.experiment=oak-smoke",
        "train.epochs=1",
        "train.progressive_min_size=null",  # at the last (largest) training size: what the memory must hold
        f"trainer.limit_train_batches={STEPS}",
        "train.checkpoint_every_n_steps=1",
        f"train.batch_size={batch}",
        f"evaluate.batch_size={min(batch, VAL_IMAGES // PROCESSES)}",
        "train.num_workers=1",
        "evaluate.num_workers=0",
        "trainer.accelerator=cpu",
        f"trainer.devices={PROCESSES}",
        "trainer.strategy=ddp",
        "trainer.enable_progress_bar=false",
    ]
    folder.mkdir(parents=True)
    oak = [sys.executable, "-m", "oak.cli", "--params", str(params.resolve())]
    train = [*oak, "train", "--run", run.name, run.model, *overrides]
    checkpoint = folder / "models" / run.name / "last.ckpt"
    try:
        peaks = [_killed_at_first_checkpoint(train, checkpoint, folder / "first.log")]
        peak, log = _run(train, folder / "resumed.log")
        peaks.append(peak)
        if "Restoring states from the checkpoint path" not in log:
            raise OakError("the second training did not resume from the checkpoint")
        peaks.append(_run([*oak, "evaluate", "--run", run.name, run.model, *overrides], folder / "evaluate.log")[0])
        trained = json.loads((folder / "metrics" / "train" / f"{run.name}.json").read_text())
        timings = json.loads((folder / "metrics" / "timings" / "train" / f"{run.name}.json").read_text())
        evaluated = json.loads((folder / "metrics" / "eval" / f"{run.name}.json").read_text())
        if evaluated["samples"] != VAL_IMAGES:
            raise OakError(f"evaluated {evaluated['samples']} of {VAL_IMAGES} images")
        result.steps = trained["steps"]
        result.seconds_per_step = round(timings["seconds"], 2)  # the resumed process trains the last step
        result.peak_memory_mb = max(peaks) // 1024
        result.status = "ok"
    except OakError as error:
        result.status = str(error)
    finally:
        # its checkpoints (up to 2 GB for ResNet-RS-420 with its EMA and optimizer state): a sweep kept them all
        # until it ended, and filled the disk 80 runs into the budget profile's 110
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _write(out: Path, profile: str, results: list[SmokeResult], *, seconds: float) -> None:
    summary = {"profile": profile, "processes": PROCESSES, "steps": STEPS, "seconds_of_last_invocation": round(seconds)}
    write_json(out, summary | {"runs": [asdict(result) for result in results]})


def _start_ranks(command: list[str], out) -> list[subprocess.Popen]:
    """Every rank of `command` at once, in one new process group, as torchrun or srun would start them.

    Lightning's own launcher starts rank 1 only after rank 0 has imported and built everything: about
    9 s more per invocation here, three invocations per run.
    """
    port = _free_port()
    ranks: list[subprocess.Popen] = []
    for rank in range(PROCESSES):
        environment = _environment() | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(PROCESSES)}
        environment |= {"NODE_RANK": "0", "LOCAL_RANK": str(rank)}  # Lightning's signs of externally started ranks
        group = ranks[0].pid if ranks else 0  # 0: a new group, led by rank 0
        ranks.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment, process_group=group))
    return ranks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(ranks: list[subprocess.Popen], kill_when: Callable[[], bool], log: Path) -> tuple[int, int]:
    """Wait for every rank, killing the group once `kill_when()` holds or a rank fails (the others would wait
    for it for good); the first non-zero exit status (else 0) and the largest peak RSS in KiB. Ranks still
    running after HANG_SECONDS are killed and reported as a hang."""
    pending, codes, peaks, killed = {rank.pid for rank in ranks}, [], [], False
    deadline = time.monotonic() + HANG_SECONDS
    while pending:
        if time.monotonic() > deadline:
            os.killpg(ranks[0].pid, signal.SIGKILL)
            for rank in ranks:
                rank.wait()
            raise OakError(f"{log.stem}: still running after {HANG_SECONDS / 60:g} min, killed (a hang); its last line: {_last_error(log)}")
        for pid in sorted(pending):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                pending.discard(pid)
                codes.append(os.waitstatus_to_exitcode(status))
                peaks.append(usage.ru_maxrss)
        if pending and not killed and (kill_when() or any(codes)):
            os.killpg(ranks[0].pid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    for rank in ranks:
        rank.returncode = codes[0]  # reaped above: subprocess must not wait for them again
    return next((code for code in codes if code), 0), max(peaks)


def _killed_at_first_checkpoint(command: list[str], checkpoint: Path, log: Path) -> int:
    """Start `command`, SIGKILL its ranks once `checkpoint` exists (as a node failure would); the largest peak RSS in KiB."""
    with log.open("w") as out:
        code, peak = _wait(_start_ranks(command, out), checkpoint.exists, log)
    if not checkpoint.exists():
        raise OakError(f"training ended (status {code}) before its mid-epoch checkpoint: {_last_error(log)}")
    return peak


def _run(command: list[str], log: Path) -> tuple[int, str]:
    with log.open("w") as out:
        code, peak = _wait(_start_ranks(command, out), lambda: False, log)
    if code < 0:
        raise OakError(f"{log.stem}: killed by {signal.Signals(-code).name} (out of memory?); its last line: {_last_error(log)}")
    if code != 0:
        raise OakError(f"{log.stem}: exited with status {code}: {_last_error(log)}")
    return peak, log.read_text()


def _environment() -> dict[str, str]:
    """The ranks share the machine's cores instead of each starting a thread per core."""
    return {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // PROCESSES))}


def _last_error(log: Path) -> str:
    """The log's last error line, which names the problem (Python's or Oak's), else its last line."""
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception|error):", line)]
    return (errors or lines or ["no output"])[-1][:300]


def _alike(runs: list[Run], params: Path) -> list[list[Run]]:
    """`runs` grouped by what their smoke tests train (oak.studies.binding.smoke_fingerprint), in the order first met."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(smoke_fingerprint(run_config(params, run), run.model), []).append(run)
    return list(groups.values())


def lightest_per_recipe(runs: list[Run], params: Path) -> list[Run]:
    """Of each recipe's runs, the one with the fewest MACs per step (its model at its resolution, times its batch)."""
    from oak.models.facts import model_facts

    def cost(run: Run) -> float:
        train = run_config(params, run).train
        return model_facts(run.model, train.image_size).macs * train.batch_size

    lightest: dict[str, Run] = {}
    for run in runs:
        if run.recipe not in lightest or cost(run) < cost(lightest[run.recipe]):
            lightest[run.recipe] = run
    return sorted(lightest.values(), key=lambda run: run.recipe)


def smoke(profile: str, params: Path, out: Path, *, runs: list[Run], update: bool = False) -> list[SmokeResult]:
    """Run the smoke test of each of `runs`, print a line per run, and write them to `out`.

    With `update`, `out` keeps its other runs' entries (from an earlier sweep of the same profile).
    """
    start = time.perf_counter()
    earlier = earlier_results(out, profile, {run.name for run in runs}) if update else []
    results = list(earlier)
    with tempfile.TemporaryDirectory(prefix="oak-smoke-") as folder:
        print(f"oak smoke {profile}: making {CLASSES} classes of 500x375 JPEGs", flush=True)
        shards = make_data(Path(folder))
        print(f"{'run':42} {'recipe':22} {'px':>4} {'precision':10} {'batch':>5} {'steps':>5} {'s/step':>7} {'peak MB':>8}  status")
        for alike in _alike(runs, params):
            result = smoke_run(alike[0], params, shards, Path(folder) / "runs")
            for run in alike:
                same = result if run is alike[0] else replace(result, run=run.name, fingerprint=fingerprint(run, params))
                same.smoked_as = "" if run is alike[0] else result.run
                results.append(same)
                print(result_line(same), flush=True)
            # after each test, so that a stopped sweep keeps the lines it has
            _write(out, profile, results, seconds=time.perf_counter() - start)
    seconds = time.perf_counter() - start
    results = results[len(earlier) :]
    failed = [r.run for r in results if r.status != "ok"]
    print(f"wrote {out}: {len(results) - len(failed)} of {len(results)} runs ok in {seconds / 60:.1f} min")
    if failed:
        raise OakError(f"{len(failed)} run(s) failed: {', '.join(failed)}; each run's line above names its error")
    return results
