"""dvc.lock kept to the pipeline's stages.

DVC adds a foreach stage's entry to dvc.lock when it runs and never removes one: a run the studies no
longer plan (a renamed variant, a profile's changed rows) keeps its entry for good, and dvc.lock then
records hashes of stages that no longer exist. After a reproduction, those entries go.
"""

from pathlib import Path

from oak.files import write_atomic


def prune_lock(repo_root: Path) -> list[str]:
    """Remove dvc.lock's entries of stages dvc.yaml no longer declares; their names."""
    from dvc.repo import Repo
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    lock = repo_root / "dvc.lock"
    if not lock.exists():
        return []
    with Repo(str(repo_root)) as repo:
        declared = {stage.addressing for stage in repo.index.stages}
    data = parse_yaml_for_update(lock.read_text(), str(lock))  # DVC's own round trip: the rest as DVC wrote it
    stale = sorted(set(data.get("stages", {})) - declared)
    for name in stale:
        del data["stages"][name]
    if stale:
        write_atomic(lock, dumps_yaml(data))
    return stale
