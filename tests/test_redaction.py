"""No secret in any output: store URLs, messages holding them, log records, the CLI's lines."""

from __future__ import annotations

import logging
import string
import warnings
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import cli
from workbench.infra.redaction import install_redaction, redact_text, redact_url
from workbench.infra.stores import redact_url as stores_redact_url
from workbench.tracking.server import LocalTrackingServer, wait_for_server

from helpers import SAFETY_NET_S
from helpers.experiments import experiment, write_experiment
from helpers.study import start_search

URLS = [
    # url, the secret, what must stay
    ("postgresql://workbench:secret@dbhost/optuna", "secret", ["postgresql://", "dbhost/optuna"]),
    ("postgresql://u:se/cret@host/db", "se/cret", ["host/db"]),
    ("postgresql://u:se@cret@host/db", "se@cret", ["host/db"]),
    ("https://tok3n@host", "tok3n", ["https://", "host"]),
    ("https://tok3n@host:8443/api", "tok3n", ["host:8443/api"]),
    ("http://alice:S3cret@127.0.0.1:5000", "S3cret", ["127.0.0.1:5000"]),
    ("http://alice:S3cret@127.0.0.1:5000/", "alice", ["127.0.0.1:5000/"]),
    ("mysql+pymysql://u:p4ss:word@h:3306/db?charset=utf8", "p4ss:word", ["h:3306/db", "charset=utf8"]),
    ("postgresql://u:p%40ss@[::1]:5432/db", "p%40ss", ["[::1]:5432/db"]),
    ("https://host/path?token=T0KEN&x=1", "T0KEN", ["host/path", "x=1"]),
    ("https://host/path?password=PW123", "PW123", ["host/path", "password="]),
    ("https://host/p?a=1&secret=SEC&key=K3Y", "SEC", ["host/p", "a=1"]),
    ("https://host/p?access_token=AT0K#frag", "AT0K", ["host/p", "#frag"]),
    ("https://host/p?api_key=AK3Y&apikey=AK4Y", "AK3Y", ["host/p"]),
    ("postgresql://u:pw@h/db?sslmode=require&sslpassword=SSLPW", "SSLPW", ["h/db", "sslmode=require"]),
    ("http://user:pass@127.0.0.1:9/api/2.0/mlflow/runs/get", "pass", ["127.0.0.1:9/api/2.0/mlflow/runs/get"]),
    # a ``#`` or ``?`` before the ``@`` belongs to the password (SQLAlchemy accepts these)
    ("postgresql+psycopg://wb:se#cret9@host/db", "se#cret9", ["postgresql+psycopg://", "host/db"]),
    ("postgresql://wb:se?cret9@host:5432/db", "se?cret9", ["host:5432/db"]),
    ("postgresql://wb:a#b?c/d@e@host/db?sslmode=require", "a#b?c/d@e", ["host/db", "sslmode=require"]),
    ("postgresql://wb:#@host/db", "wb:#", ["host/db"]),
    # credentials in a fragment or a ``;`` path parameter
    ("https://h/#token=s3cr3t", "s3cr3t", ["https://h/#token="]),
    ("https://h/#state=1&access_token=AT0K", "AT0K", ["https://h/#state=1&access_token="]),
    ("https://h/;password=s3cr3t", "s3cr3t", ["https://h/;password="]),
    ("https://h/api;jsessionid=S3SS/x?y=1", "S3SS", ["https://h/api;jsessionid=", "/x?y=1"]),
    ("https://h/api?x=1;token=T0K", "T0K", ["https://h/api?x=1;token="]),
]


@pytest.mark.parametrize("url, secret, kept", URLS)
def test_redact_url_hides_the_secret_and_keeps_host_and_path(url, secret, kept):
    out = redact_url(url)
    assert secret not in out, out
    for part in kept:
        assert part in out, (part, out)
    assert stores_redact_url(url) == out  # one implementation, whichever module it is imported from


@pytest.mark.parametrize(
    "spec",
    [
        "sqlite:///mlflow.db",
        "sqlite:////tmp/a@b/optuna.db",
        "optuna.journal",
        "http://127.0.0.1:5000",
        "https://host/p?email=a@b.com&x=1",
        "https://h/api;v=2/x#section",
    ],
)
def test_urls_without_credentials_are_unchanged(spec):
    assert redact_url(spec) == spec


@pytest.mark.parametrize("url, secret, kept", URLS)
def test_redact_text_redacts_urls_inside_messages(url, secret, kept):
    message = f"API request to {url} failed: ConnectionError('{url}') (storage '{url}')"
    out = redact_text(message)
    assert secret not in out, out
    assert out.startswith("API request to ") and kept[-1] in out


# any printable character but line breaks and tabs (a URL given alone may even hold a space)
PASSWORD = st.text(st.sampled_from(string.printable.strip() + " "), min_size=1, max_size=24)
WORD = st.text(st.sampled_from(string.ascii_lowercase + string.digits), min_size=1, max_size=12)
SCHEMES = st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "http", "https"])


@settings(max_examples=300, deadline=None)
@given(scheme=SCHEMES, user=WORD, password=PASSWORD, host=WORD, port=st.integers(1, 65535), path=WORD)
def test_property_any_printable_password_is_hidden_and_host_kept(scheme, user, password, host, port, path):
    """However a parser splits it, the password never appears: the output is exactly the masked URL."""
    url = f"{scheme}://{user}:{password}@{host}:{port}/{path}"
    assert redact_url(url) == f"{scheme}://***@{host}:{port}/{path}"


@settings(max_examples=300, deadline=None)
@given(
    user=WORD,
    password=PASSWORD.filter(lambda p: " " not in p),
    host=WORD,
    key=st.sampled_from(["token", "password", "access_token", "api_key", "secret", "sig"]),
)
def test_property_password_never_appears_in_a_message(user, password, host, key):
    """In running text too: the userinfo, and a credential in a query, fragment or path parameter
    (there a value is percent-encoded, as it must be to be one value)."""
    value = quote(password, safe="")
    message = (
        f"cannot reach 'postgresql://{user}:{password}@{host}/db' "
        f"(https://{host}/x?{key}={value}, https://{host}/x#{key}={value}, https://{host}/x;{key}={value})"
    )
    assert redact_text(message) == (
        f"cannot reach 'postgresql://***@{host}/db' (https://{host}/x?{key}=*** https://{host}/x#{key}=*** "
        f"https://{host}/x;{key}=***"
    )


@pytest.fixture()
def redacting():
    """install_redaction for one test, then the process's logging and warnings as they were."""
    factory, formatwarning = logging.getLogRecordFactory(), warnings.formatwarning
    install_redaction()
    yield
    logging.setLogRecordFactory(factory)
    warnings.formatwarning = formatwarning


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(message)s").format(record))


@pytest.mark.parametrize("logger_name", ["workbench.study.workers", "mlflow.tracking", "sqlalchemy.pool", "optuna"])
def test_every_log_record_and_its_exception_are_redacted(redacting, logger_name):
    logger, collect = logging.getLogger(logger_name), _Collect()
    level = logger.level  # the CLI quiets Optuna's logger; records must be redacted whatever the level
    logger.setLevel(logging.INFO)
    logger.addHandler(collect)
    try:
        logger.warning("tracking %s", "http://alice:S3cret@127.0.0.1:5000")
        try:
            raise ConnectionError("refused: postgresql://u:se/cret@db/x")
        except ConnectionError:
            logger.exception("storage failed")
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    text = "\n".join(collect.lines)
    assert "tracking http://***@127.0.0.1:5000" in text and "refused: postgresql://***@db/x" in text
    assert "S3cret" not in text and "se/cret" not in text


def test_warnings_are_redacted(redacting):
    line = warnings.formatwarning("cannot reach https://tok3n@host/api", UserWarning, "f.py", 1)
    assert "tok3n" not in line and "https://***@host/api" in line


def test_the_cli_redacts_its_error_line_and_a_bug_traceback(tmp_path, monkeypatch, capsys, redacting):
    monkeypatch.chdir(tmp_path)
    write_experiment(tmp_path, experiment("leak", "mlp-digits", n_trials=1))
    import workbench.study

    def broken(*args, **kwargs):
        raise RuntimeError("could not reach http://alice:S3cret@127.0.0.1:9/api")

    monkeypatch.setattr(workbench.study, "run_study", broken)
    code = cli.main(["search", "exp.yaml", "--storage", "sqlite:///optuna.db"])
    out, err = capsys.readouterr()
    assert code == 1  # a bug keeps its traceback (redacted)
    assert "Traceback" in err and "RuntimeError: could not reach http://***@127.0.0.1:9/api" in err
    assert "S3cret" not in out + err


@pytest.mark.e2e
def test_two_workers_on_a_tracking_server_with_credentials_print_no_password(tmp_path):
    """The issue's case: ``--workers 2`` logged ``tracking http://alice:S3cret@...`` in clear."""
    with LocalTrackingServer(f"sqlite:///{tmp_path}/mlflow.db") as uri:
        wait_for_server(uri)  # the search checks that its tracking server answers
        tracking = uri.replace("http://", "http://alice:S3cret@")
        write_experiment(tmp_path, experiment("creds", "plugin_bench:blobs", n_trials=2))
        proc = start_search(tmp_path, "--workers", "2", "--tracking-uri", tracking)
        out, err = proc.communicate(timeout=SAFETY_NET_S)
    assert proc.returncode == 0, err
    assert "2 workers" in err and "tracking http://***@127.0.0.1" in err
    assert "S3cret" not in err + out
