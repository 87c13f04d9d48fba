"""`oak server`: one MLflow server for a team, its runs in `sqlite:///mlflow.db`, its artifacts in `mlartifacts/`."""

import os
import secrets

from oak.tracking.store import follow_moved_store
from oak.tracking.tracker import DEFAULT_TRACKING_URI


def server_command(
    *, host: str = "127.0.0.1", port: int = 5000, store: str = DEFAULT_TRACKING_URI, artifacts: str = "mlartifacts"
) -> list[str]:
    """`mlflow server` for a team: runs in `store`, artifacts served from the `artifacts` folder.

    It binds `host`, loopback unless told otherwise; put an authenticating proxy or MLflow's
    basic-auth app in front before binding a public address.
    """
    return ["mlflow", "server", "--host", host, "--port", str(port), "--backend-store-uri", store, "--artifacts-destination", artifacts]


def serve(*, host: str, port: int, basic_auth: bool) -> None:
    """Replace this process with the server."""
    follow_moved_store(DEFAULT_TRACKING_URI)
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
