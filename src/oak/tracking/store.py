"""The local SQLite store: opened by one process at a time while MLflow creates or migrates it, refused
in one line when it is not an MLflow store, and its artifacts in `mlruns/` beside its file.

MLflow creates a new SQLite store's tables, and migrates an old one's, as its first client opens it:
two processes doing so at once (two `oak train` on a fresh clone) both run the migrations and one
fails half-way ("duplicate column name"). `open_client` holds a lock beside the file meanwhile.

MLflow keeps a SQLite store's artifact locations as absolute `file://` URIs, so a copied or moved
checkout would go on reading and writing the original checkout's `mlruns/`. The experiments Oak
creates in a SQLite store have `<folder of the store>/mlruns` as their location; when the store is
opened from another folder, they and their runs' artifact URIs are moved to the store's folder
(MLflow's client has no call for that: an experiment's artifact location is fixed once created).
"""

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy.exc
from alembic.util import CommandError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from oak.errors import OakError

LOCK_SUFFIX = ".oak-lock"  # as the training's run locks: ignored by git
MOVE_ASIDE = "move it aside (the next `oak` command starts a new store there) or set tracking.uri to the store you meant"


def store_file(tracking_uri: str) -> Path | None:
    """The SQLite file of a `sqlite:///` URI; None for a server or any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve()


def open_client(tracking_uri: str) -> MlflowClient:
    """A client of `tracking_uri`; a SQLite store is first checked, and created, migrated or moved by one
    process at a time (MLflow keeps the opened store for the rest of the process)."""
    store = store_file(tracking_uri)
    if store is None:
        return MlflowClient(tracking_uri)
    with _store_lock(store):
        _check_mlflow_store(store)
        try:
            follow_moved_store(tracking_uri)
            return MlflowClient(tracking_uri)
        except MlflowException as error:  # its own words say what to do (an old schema: `mlflow db upgrade`)
            raise OakError(f"{store}: {error.message.splitlines()[0]}") from None
        except (sqlite3.Error, sqlalchemy.exc.SQLAlchemyError, CommandError) as error:
            reason = str(error).splitlines()[0]
            raise OakError(f"{store}: MLflow cannot open this store ({reason}); restore it from a backup, or {MOVE_ASIDE}") from None


@contextlib.contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    store.parent.mkdir(parents=True, exist_ok=True)  # where MLflow would create the store
    with open(store.with_name(store.name + LOCK_SUFFIX), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        yield


def _check_mlflow_store(store: Path) -> None:
    """A file that is not SQLite, or an SQLite database of something else, is refused: MLflow would raise
    a traceback at the first, and add its tables to the second."""
    if not store.exists() or store.stat().st_size == 0:
        return  # MLflow creates the store
    try:
        with contextlib.closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise OakError(f"{store}: not an MLflow store ({error}); {MOVE_ASIDE}") from None
    if tables and "experiments" not in tables:
        raise OakError(f"{store}: an SQLite database without MLflow's tables, not an MLflow store; {MOVE_ASIDE}")


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
