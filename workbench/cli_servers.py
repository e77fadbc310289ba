"""The CLI's long-running servers: ``workbench ui`` (MLflow) and ``workbench dashboard`` (optuna-dashboard).

Every input is checked before a server starts (a bad one: exit 2, one line, nothing started):
the host resolves, the port is free, the store's URL has a known scheme and its folder or
database answers, and ``ui --experiment`` names an experiment of the store (the line lists those
there). The server then runs in its own process group (:mod:`workbench.infra.serve`), the
address to open is printed only once the server answers, and the whole group ends on exit,
Ctrl-C, ``kill`` or, led by its guard, when this process is killed outright. A server that dies
is one line and exit 1. ``workbench ui`` loads neither torch, Optuna nor MLflow (it asks the
server over its REST API, :mod:`workbench.tracking.ui`); ``dashboard`` loads Optuna only after
its port and storage are checked.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from workbench.infra.redaction import redact_text, redact_url
from workbench.infra.serve import PortInUse, check_port_free, run_server
from workbench.infra.store_checks import check_storage, check_tracking_uri, source_of
from workbench.infra.stores import DEFAULT_TRACKING_URI, store_kind, store_scheme
from workbench.tracking.ui import store_experiments, study_landing

__all__ = ["serve_dashboard", "serve_ui"]


def _check_ui_inputs(args: argparse.Namespace, uri: str) -> None:
    """ValueError naming the flag for any ``workbench ui`` input that would make the server fail."""
    check_port_free(args.host, args.port)
    source = source_of(args.tracking_uri, "--tracking-uri", "MLFLOW_TRACKING_URI")
    if store_kind(uri) == "server" or store_scheme(uri) == "databricks":
        raise ValueError(
            f"{source}: {redact_url(uri)} is a tracking server, which serves its own UI; "
            "workbench ui serves a store (sqlite:///mlflow.db, a database URL or an mlruns folder)"
        )
    check_tracking_uri(uri, source=source)
    if args.experiment is not None:
        names = store_experiments(uri)
        if args.experiment not in names:
            allowed = ", ".join(repr(n) for n in sorted(names)) or "none (no study has run on this store)"
            raise ValueError(f"--experiment: {args.experiment!r} is not in {redact_url(uri)}; there: {allowed}")


def serve_ui(args: argparse.Namespace) -> int:
    """``workbench ui``: serve the MLflow UI and print the latest study's landing view once it answers.

    The address opens the study's saved view (:mod:`workbench.tracking.landing_view`): its
    trials, best metric first, with the metric, reached sparsity and knob columns shown even
    in a browser that never opened the UI before.
    """
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    base, found = f"http://{args.host}:{args.port}", {}

    def landing() -> str:
        found["url"], found["study"] = study_landing(base, experiment=args.experiment)
        return found["url"]

    def announce(url: str) -> None:
        what = f"study {found['study']!r}: its trials, best first" if found["study"] else "no study yet"
        print(f"MLflow UI: {url}  ({what}; Ctrl-C to stop)", flush=True)

    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port), "--workers", "1"]
    return _serve(
        args,
        cmd,
        f"{base}/health",
        landing,
        announce,
        what=f"the MLflow UI over {uri}",
        check=lambda: _check_ui_inputs(args, uri),
    )


def serve_dashboard(args: argparse.Namespace) -> int:
    """``workbench dashboard``: serve optuna-dashboard (an optional extra) and print the study's page."""
    try:
        check_port_free(args.host, args.port)
        if args.storage or os.environ.get("WORKBENCH_STORAGE"):
            spec = args.storage or os.environ["WORKBENCH_STORAGE"]
            check_storage(spec, source=source_of(args.storage, "--storage", "WORKBENCH_STORAGE"))
    except ValueError as err:
        print(f"error: {redact_text(err)}", file=sys.stderr)
        return 2
    # start-up cost: Optuna and the pruner (torch) load only now, once the port and the storage are checked
    from workbench.pruner.errors import ConfigError
    from workbench.study.console import quiet_optuna
    from workbench.study.dashboard import dashboard_command, find_storage, installed, latest_study, study_page

    quiet_optuna()
    if not installed():
        raise ConfigError(
            "dashboard: optuna-dashboard is not installed; `make dashboard` installs it "
            "(or: pip install -e '.[dashboard]')"
        )
    spec = find_storage(args.storage)
    name, study_id = latest_study(spec, args.study)
    base = f"http://{args.host}:{args.port}"

    def announce(url: str) -> None:
        print(f"Optuna dashboard: {url}  (study {name!r}; Ctrl-C to stop)", flush=True)

    cmd = dashboard_command(spec, args.host, args.port)
    page = study_page(base, study_id)
    return _serve(
        args,
        cmd,
        f"{base}/api/studies",
        lambda: page,
        announce,
        what=f"optuna-dashboard over {spec}",
        check=lambda: check_port_free(args.host, args.port),
    )


def _serve(
    args: argparse.Namespace,
    cmd: list[str],
    ready: str,
    landing: Callable[[], str],
    announce: Callable[[str], None],
    *,
    what: str,
    check: Callable[[], None],
) -> int:
    """Check the inputs, then run a server command: a bad input -> 2, a failed server -> 1."""
    try:
        check()
        print(f"starting {redact_text(what)} ...", file=sys.stderr, flush=True)
        return run_server(
            cmd, ready_url=ready, timeout=args.timeout, landing=landing, announce=announce, open_browser=args.open
        )
    except (PortInUse, ValueError) as err:
        print(f"error: {redact_text(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the server died or never answered
        print(f"error: {redact_text(err)}", file=sys.stderr)
        return 1
