"""A real one-node SLURM cluster on this machine, for tests: munged with a key made on the spot, then
slurmctld and slurmd, all with their state, sockets and logs in one temporary folder."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch")


def missing_daemons() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _conf(folder: Path) -> str:
    host, cpus = socket.gethostname(), os.cpu_count()
    return f"""ClusterName=oaktest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
MinJobAge=3600
KillWait=5
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=oak Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@contextlib.contextmanager
def one_node_cluster(folder: Path) -> Iterator[dict[str, str]]:
    """Start the cluster; yield the environment its commands need (SLURM_CONF); stop it all afterwards."""
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True)
    key = folder / "munge.key"
    subprocess.run([_sbin("mungekey"), "--create", f"--keyfile={key}", "--force"], check=True, capture_output=True)
    key.chmod(0o600)
    munge = [_sbin("munged"), f"--key-file={key}", f"--socket={folder}/munge.socket", f"--pid-file={folder}/munged.pid"]
    munge += [f"--log-file={folder}/munged.log", f"--seed-file={folder}/munge.seed", "--force"]
    subprocess.run(munge, check=True, capture_output=True)
    (folder / "slurm.conf").write_text(_conf(folder))
    env = {"SLURM_CONF": str(folder / "slurm.conf")}
    daemons = [
        subprocess.Popen([_sbin(name), "-D", *extra], env={**os.environ, **env}) for name, extra in (("slurmctld", ["-c"]), ("slurmd", []))
    ]
    try:
        _wait_until_idle(env, folder)
        yield env
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=30)
        subprocess.run(["pkill", "-F", str(folder / "munged.pid")], capture_output=True)


def _wait_until_idle(env: dict[str, str], folder: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = subprocess.run(["sinfo", "--noheader", "--format=%t"], env={**os.environ, **env}, capture_output=True, text=True)
        if listed.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(f"the SLURM node did not come up: see {folder}/slurmctld.log and slurmd.log")
