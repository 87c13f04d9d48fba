"""Credentials stay in the process: what Oak writes or logs carries them redacted.

Three kinds: a value under a secret-looking key (`token`, `password`, `secret`, `key`), the
`user:password@` of a URL (`tracking.uri=http://admin:...@host:5000`), and the value of a secret
environment variable (MLFLOW_TRACKING_PASSWORD, AWS_SECRET_ACCESS_KEY, ...) wherever it shows.
Run params, the `config.yaml` beside a checkpoint (a DVC output that `dvc push` uploads),
`run.json` and log lines pass through here. Clients give MLflow their login in
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or in the URI.
"""

import os
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

REDACTED = "<redacted>"
SECRET_NAME = re.compile(r"token|password|secret|key", re.IGNORECASE)
# RFC 3986 ends a URL's userinfo at the last "@" of its authority, so a raw "@" in a password is
# still the password's. Clients refuse a password holding a raw "/", "?", "#" or quote, and print the
# whole URL in their error: the login here runs to the last "@" (or "%40") before whitespace, so such
# a password is hidden too, at the cost of the host where a path holds an "@". Any scheme, written
# out or percent-encoded (a URL inside another URL's query); `scheme:///path` has no host, hence no login.
URL_LOGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*(?:://(?!/)|%3A%2F%2F(?!%2F)))\S*(?P<at>@|%40)", re.IGNORECASE)
SECRET_VARIABLE = re.compile(r"(?:^|_)(?:TOKEN|PASSWORD|SECRET|KEY|CONNECTION_STRING)$", re.IGNORECASE)
# Shorter values of such variables are flags ("1", "true"), not secrets (MLflow's logins are 12+ characters).
SECRET_MIN_LENGTH = 8


def redact_text(text: str) -> str:
    """`text` with the login of every URL in it and every secret environment variable's value replaced."""
    for secret in _secret_values():
        text = text.replace(secret, REDACTED)
    return URL_LOGIN.sub(rf"\g<scheme>{REDACTED}\g<at>", text)


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


def _secret_values() -> list[str]:
    """The values of this process's secret-looking environment variables, longest first (one may hold another)."""
    values = {value for name, value in os.environ.items() if SECRET_VARIABLE.search(name) and len(value) >= SECRET_MIN_LENGTH}
    return sorted(values, key=len, reverse=True)
