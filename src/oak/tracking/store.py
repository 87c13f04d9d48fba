"""The local SQLite store's artifacts: in `mlruns/` beside its file, wherever the checkout is.

MLflow keeps a SQLite store's artifact locations as absolute `file://` URIs, so a copied or moved
checkout would go on reading and writing the original checkout's `mlruns/`. The experiments Oak
creates in a SQLite store have `<folder of the store>/mlruns` as their location; when the store is
opened from another folder, they and their runs' artifact URIs are moved to the store's folder
(MLflow's client has no call for that: an experiment's artifact location is fixed once created).
"""

import contextlib
import sqlite3
from pathlib import Path


def store_file(tracking_uri: str) -> Path | None:
    """The SQLite file of a `sqlite:///` URI; None for a server or any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve()


def local_artifact_location(tracking_uri: str) -> str | None:
    """`mlruns/` beside a SQLite store's file; None (the server decides) for any other store.

    MLflow's own default for a SQLite store is `./mlruns` in whatever folder the process runs in,
    which scatters one store's artifacts over every folder `oak` was started from.
    """
    store = store_file(tracking_uri)
    return (store.parent / "mlruns").as_uri() if store else None


def follow_moved_store(tracking_uri: str) -> int:
    """Point the artifact locations Oak gave a SQLite store at `mlruns/` beside it; how many experiments moved.

    Run before the store is used; a store that never moved, a new one or a server is left as it is.
    """
    store = store_file(tracking_uri)
    if store is None or not store.exists():
        return 0
    here = local_artifact_location(tracking_uri)
    with contextlib.closing(sqlite3.connect(store)) as db, db:  # closed, and committed as one
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'").fetchone():
            return 0
        moved = [
            (experiment_id, location)
            for experiment_id, location in db.execute("SELECT experiment_id, artifact_location FROM experiments")
            if location.startswith("file://") and location.endswith("/mlruns") and location != here
        ]
        for experiment_id, location in moved:
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (here, experiment_id))
            db.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                (here, len(location) + 1, experiment_id, len(location) + 1, location + "/"),
            )
    return len(moved)
