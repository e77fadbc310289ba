"""The CLI's long-running servers: ``workbench ui`` (MLflow) and ``workbench dashboard`` (optuna-dashboard).

Both check the port first (taken: exit 2, one line), run the server in its own process group
(:mod:`workbench.infra.serve`), print the address to open only once the server answers, and end the
whole group on exit, Ctrl-C or ``kill``. ``workbench ui`` loads neither torch nor MLflow (it asks
the server over its REST API, :mod:`workbench.tracking.ui`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from workbench.infra.redaction import redact_text
from workbench.infra.serve import PortInUse, check_port_free, run_server
from workbench.infra.stores import DEFAULT_TRACKING_URI
from workbench.tracking.ui import study_landing

__all__ = ["serve_dashboard", "serve_ui"]


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
    return _serve(args, cmd, f"{base}/health", landing, announce, what=f"the MLflow UI over {uri}")


def serve_dashboard(args: argparse.Namespace) -> int:
    """``workbench dashboard``: serve optuna-dashboard (an optional extra) and print the study's page."""
    # start-up cost: Optuna and the pruner (torch) load only for this command, not for `workbench ui`
    from workbench.pruner import ConfigError
    from workbench.study.dashboard import dashboard_command, find_storage, installed, latest_study, study_page

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
    return _serve(args, cmd, f"{base}/api/studies", lambda: page, announce, what=f"optuna-dashboard over {spec}")


def _serve(
    args: argparse.Namespace,
    cmd: list[str],
    ready: str,
    landing: Callable[[], str],
    announce: Callable[[str], None],
    *,
    what: str,
) -> int:
    """Run a server command: a taken port or a bad ``--experiment`` -> 2, a failed server -> 1."""
    try:
        check_port_free(args.host, args.port)
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
