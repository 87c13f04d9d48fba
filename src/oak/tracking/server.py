"""`oak server`: one MLflow server for a team, its runs in `sqlite:///mlflow.db`, its artifacts in `mlartifacts/`."""

import os
import secrets
import sys
import warnings

from mlflow.exceptions import MlflowException

from oak.errors import OakError
from oak.tracking.store import open_client
from oak.tracking.tracker import DEFAULT_TRACKING_URI


def server_command(
    *, host: str = "127.0.0.1", port: int = 5000, store: str = DEFAULT_TRACKING_URI, artifacts: str = "mlartifacts"
) -> list[str]:
    """`mlflow server` for a team: runs in `store`, artifacts served from the `artifacts` folder.

    It binds `host`, loopback unless told otherwise; put an authenticating proxy or MLflow's
    basic-auth app in front before binding a public address.
    """
    # MLflow as this interpreter has it: `.venv/bin/oak server` works without the environment on PATH
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        store,
        "--artifacts-destination",
        artifacts,
    ]


def serve(*, host: str, port: int, basic_auth: bool) -> None:
    """Replace this process with the server, once its stores open: a store or login that cannot be set up
    is one line here, not MLflow's traceback from the server."""
    if basic_auth:
        _bootstrap_admin()  # first: a refused start creates no runs store
    open_client(DEFAULT_TRACKING_URI)  # created or migrated by one process at a time, moved with the checkout
    command = server_command(host=host, port=port)
    if basic_auth:
        command += ["--app-name", "basic-auth"]
        if not os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
            # MLflow's login forms need a key to sign their CSRF tokens; one per server start is enough
            # for one server (its workers inherit it). Several servers behind one address must share one.
            os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(32)
            print("oak server: a new MLFLOW_FLASK_SERVER_SECRET_KEY for this start (set one to keep browser logins across restarts)")
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)


def _bootstrap_admin() -> None:
    """The users' store and its admin, made as MLflow's basic-auth app makes them at its start (it refuses
    to start without an admin password the first time, a too short one, or the password it once shipped)."""
    with warnings.catch_warnings():  # its web stack's deprecation notices: not the user's to act on
        warnings.simplefilter("ignore")
        from mlflow.server.auth import bootstrap_admin_user  # reads MLflow's auth settings as it imports

    try:
        bootstrap_admin_user()
    except MlflowException as error:
        raise OakError(f"--basic-auth: {error.message}") from None
