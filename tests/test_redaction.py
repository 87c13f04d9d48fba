"""Credentials in every form a URL or the environment carries them are hidden from what Oak writes or logs."""

import pytest
from omegaconf import OmegaConf

from oak.tracking.redaction import REDACTED, redact_config, redact_text, without_login


def test_a_password_holding_at_signs_is_hidden_up_to_the_last_at_before_the_host() -> None:
    uri = "http://admin:s3cr@tPart@127.0.0.1:5000"
    assert redact_text(uri) == f"http://{REDACTED}@127.0.0.1:5000"
    assert without_login(uri) == "http://127.0.0.1:5000"
    assert redact_config(OmegaConf.create({"tracking": {"uri": uri}})).tracking.uri == f"http://{REDACTED}@127.0.0.1:5000"
    line = "MLflow at {}/api/2.0/mlflow/runs/log-batch failed; see https://example.org/help"
    assert redact_text(line.format(uri)) == line.format(f"http://{REDACTED}@127.0.0.1:5000")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://oak:pa/ss#w?rd@db:5432/mlflow", f"postgresql://{REDACTED}@db:5432/mlflow"),  # raw reserved characters
        ("https://admin:s3cr%40tPart@host/", f"https://{REDACTED}@host/"),  # percent-encoded "@"
        ("('http://admin:it\"s@host', 1)", f"('http://{REDACTED}@host', 1)"),  # a quote, as a repr shows it
        ("next=http%3A%2F%2Fadmin%3As3cr%40t%40host%2Fx", f"next=http%3A%2F%2F{REDACTED}%40host%2Fx"),  # a URL inside a query
        ("sqlite:////home/ann@corp/mlflow.db", "sqlite:////home/ann@corp/mlflow.db"),  # no host, so no login: the path stays
    ],
)
def test_a_login_is_hidden_in_any_scheme_and_any_encoding_of_the_url(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_a_secret_environment_variables_value_is_hidden_wherever_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "env-Passw0rd-1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws/Secret+Key")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a flag whose name holds "TOKEN": not a secret
    config = {"data": {"source": "s3://bucket?sig=aws/Secret+Key"}, "note": "env-Passw0rd-1234", "flag": "false"}
    assert redact_config(OmegaConf.create(config)) == {"data": {"source": f"s3://bucket?sig={REDACTED}"}, "note": REDACTED, "flag": "false"}
    assert redact_text("login refused for env-Passw0rd-1234: false") == f"login refused for {REDACTED}: false"
