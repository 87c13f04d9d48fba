"""Credentials stay in the process: what Oak writes or logs carries them redacted.

Two kinds: a value under a secret-looking key (`token`, `password`, `secret`, `key`), and the
`user:password@` of a URL (`tracking.uri=http://admin:...@host:5000`). Run params, the
`config.yaml` beside a checkpoint (a DVC output that `dvc push` uploads), `run.json` and log lines
pass through here. Clients give MLflow their login in MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD, which Oak never reads.
"""

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"token|password|secret|key", re.IGNORECASE)
URL_LOGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """`text` with the login of every URL in it replaced."""
    return URL_LOGIN.sub(rf"\g<scheme>{REDACTED}@", text)


def without_login(url: str) -> str:
    """`url` with no `user:password@`, for a link to print."""
    return URL_LOGIN.sub(r"\g<scheme>", url)


def redact_config(config: DictConfig) -> DictConfig:
    """The resolved config, with secret-looking keys' values and URL logins redacted."""
    return OmegaConf.create(_redacted(OmegaConf.to_container(config, resolve=True), name=""))


def _redacted(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        return {key: _redacted(value, str(key)) for key, value in node.items()}
    if SECRET_NAME.search(name):
        return REDACTED
    if isinstance(node, list):
        return [_redacted(value, name) for value in node]
    return redact_text(node) if isinstance(node, str) else node
