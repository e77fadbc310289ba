"""The ``workbench`` command: ``search | run | rerun | ui``.

Bad input (a wrong flag, an invalid experiment file, an unknown run id: a
:class:`~workbench.pruner.ConfigError`) exits 2 with one line on stderr naming the problem (a
failing plug-in's line is followed by its own frames, none of ours); any other exception is a bug
and keeps its traceback (exit 1). Ctrl-C (or SIGTERM) during ``search`` fails the running trials,
closes their runs and exits 130 with the command that resumes the study; a dead worker exits 1
the same way. Progress: a bar of trials and one line per finished trial.

Example:
    $ workbench search experiments/quick.yaml --n-trials 3
    $ workbench search experiments/default.yaml --n-trials 40 --workers 2
    $ workbench run experiments/quick.yaml --set pattern=2:4 --set target_sparsity=0.5
    $ workbench rerun 0123456789abcdef
    $ workbench ui --port 5000 --open

Each command imports the layers it needs inside its own function: that is start-up cost, not
structure. ``workbench ui`` and ``--help`` never load torch, Optuna or MLflow; ``dashboard`` checks
its port and storage before it loads Optuna (``tests/test_command_imports.py`` checks both).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import traceback
from collections.abc import Sequence

from workbench.infra.redaction import redact_text

__all__ = ["main"]

_log = logging.getLogger("workbench.cli")


class _UsageError(Exception):
    """Raised by the parser instead of printing usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


MAX_WORKERS = 256
"""Most ``--workers``: each is a process with its own torch and stores' connections."""


def _workers(text: str) -> int:
    value = _positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_WORKERS} worker processes, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {text!r}")
    return value


def _build_parser() -> _Parser:
    parser = _Parser(prog="workbench", description="Sparsity research workbench: Optuna studies tracked in MLflow.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    uri_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"

    search = sub.add_parser("search", help="run (or resume) the experiment's Optuna study")
    search.add_argument("experiment", help="experiment YAML file")
    search.add_argument("--n-trials", type=_positive, help="total finished trials wanted (default: study.n_trials)")
    search.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help=f"worker processes on the study, each with cores/N torch threads (default: 1, at most {MAX_WORKERS})",
    )
    search.add_argument("--tracking-uri", help=uri_help)
    search.add_argument(
        "--storage",
        help="Optuna storage URL or journal file (default: $WORKBENCH_STORAGE, else optuna.db / optuna.journal)",
    )
    search.set_defaults(func=_cmd_search)

    run = sub.add_parser("run", help="run one tracked trial of an experiment")
    run.add_argument("experiment", help="experiment YAML file")
    run.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a search-space value, seed, benchmark, training.<field> or pruning.<key>",
    )
    run.add_argument("--tracking-uri", help=uri_help)
    run.set_defaults(func=_cmd_run)

    rerun = sub.add_parser("rerun", help="re-run a tracked trial from its logged config")
    rerun.add_argument("run_id", help="MLflow run id of a trial")
    rerun.add_argument("--tracking-uri", help=uri_help)
    rerun.add_argument("--force", action="store_true", help="rerun a run even if it was deleted")
    rerun.set_defaults(func=_cmd_rerun)

    exp = sub.add_parser("export", help="write a trial's pruned model in a deployable format (docs/export.md)")
    exp.add_argument("run_id", help="MLflow run id of a trial")
    exp.add_argument("--format", help="torch, hf or compressed-tensors (Hugging Face tasks), or slim (= --slim)")
    exp.add_argument("--to", required=True, help="a new (or empty) folder")
    for flag, text in (("--slim", "slimmed, torch.export (model.pt2)"), ("--rerun", "re-run a trial without a model")):
        exp.add_argument(flag, action="store_true", help=text)
    exp.add_argument("--tracking-uri", help=uri_help)
    exp.set_defaults(func=_cmd_export)

    ui = sub.add_parser("ui", help="serve the MLflow UI over the tracking store")
    ui.add_argument("--port", type=_port, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--tracking-uri", help=uri_help)
    ui.add_argument("--experiment", help="land on this experiment's latest study (default: the latest study)")
    ui.add_argument("--open", action="store_true", help="open the landing page in a web browser")
    ui.add_argument("--timeout", type=_positive, default=300, help="seconds to wait for the server (default 300)")
    ui.set_defaults(func=_cmd_ui)

    dash = sub.add_parser("dashboard", help="serve optuna-dashboard over a study's Optuna storage")
    dash.add_argument("--storage", help="Optuna storage URL or journal file (default: optuna.journal / optuna.db here)")
    dash.add_argument("--study", help="the study to open (default: the most recently started)")
    dash.add_argument("--port", type=_port, default=8080)
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--open", action="store_true", help="open the study's page in a web browser")
    dash.add_argument("--timeout", type=_positive, default=300, help="seconds to wait for the server (default 300)")
    dash.set_defaults(func=_cmd_dashboard)
    return parser


def _resume_command(args: argparse.Namespace) -> str:
    """The command that resumes this search: the same one, flags as given (passwords hidden)."""
    from workbench.infra.stores import redact_url

    words = ["workbench"] + (["-q"] if args.quiet else []) + ["search", args.experiment]
    for flag, value in (
        ("--n-trials", args.n_trials),
        ("--workers", args.workers if args.workers > 1 else None),
        ("--storage", args.storage),
        ("--tracking-uri", args.tracking_uri),
    ):
        if value is not None:
            words += [flag, redact_url(str(value))]
    return shlex.join(words)


def _cmd_search(args: argparse.Namespace) -> int:
    from workbench.experiment import load_experiment

    experiment = load_experiment(args.experiment)  # start-up: a bad file is rejected before MLflow and Optuna load
    from workbench.tracking.provenance import prefetch_run_tags

    prefetch_run_tags()  # the runs' git tags, asked in the background while the libraries load
    if args.workers > 1:
        from workbench.infra.forkserver import start_worker_server

        start_worker_server()  # the workers' libraries load in the server the workers are forked from, meanwhile

    from workbench.infra.interrupts import interrupt_guard
    from workbench.infra.outage import as_stop
    from workbench.study import WorkerError, run_study
    from workbench.study.console import quiet_optuna
    from workbench.study.preflight import check_point_builds
    from workbench.study.workers import warm_up_torch

    quiet_optuna()
    if args.workers == 1:  # trials run in this process: torch's lazy imports happen now, before Ctrl-C is armed
        warm_up_torch()  # (each worker warms up itself; this process then trains nothing)

    try:
        with interrupt_guard():  # Ctrl-C and `kill PID`: close the trials and runs, never lose the interrupt
            experiment = check_point_builds(experiment, experiment.default_point())  # the task's metric known
            study = run_study(
                experiment,
                n_trials=args.n_trials,
                workers=args.workers,
                storage=args.storage,
                tracking_uri=args.tracking_uri,
                show_progress_bar=sys.stderr.isatty() and not args.quiet,
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: running trials marked failed, runs closed; resume with: {_resume_command(args)}",
            file=sys.stderr,
        )
        return 130
    except WorkerError as err:
        print(f"error: {redact_text(err)}; resume with: {_resume_command(args)}", file=sys.stderr)
        return 1
    except Exception as err:
        if (stop := as_stop(err, args.tracking_uri or "")) is None:
            raise
        print(f"error: {stop}; logging kept: {stop.hint}, then resume with: {_resume_command(args)}", file=sys.stderr)
        return 1
    print(_search_summary(study, experiment, args.tracking_uri))
    return 0


def _search_summary(study, experiment, tracking_uri: str | None) -> str:
    """The end-of-search text: front or best trials, best per pattern at matched sparsity, next steps."""
    from workbench.study.summary import summary_text
    from workbench.tracking import resolve_tracking_uri
    from workbench.tracking.ui import run_url, ui_base

    attrs = study.user_attrs
    base = ui_base(resolve_tracking_uri(tracking_uri))
    parent = run_url(base, attrs.get("mlflow_experiment_id", "?"), attrs.get("mlflow_parent_run_id", "?"))
    return summary_text(
        study, multi_objective=experiment.multi_objective, parent_url=parent, experiment=experiment.name
    )


def _again(words: list[str], args: argparse.Namespace) -> str:
    """The command line that runs ``words`` again, with the tracking URI (redacted) when given."""
    from workbench.infra.redaction import redact_url

    return shlex.join(words + (["--tracking-uri", redact_url(args.tracking_uri)] if args.tracking_uri else []))


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.experiment import effective_params
    from workbench.infra.interrupts import interrupt_guard, interrupt_reason
    from workbench.study.console import quiet_optuna
    from workbench.study.single import run_single
    from workbench.study.workers import warm_up_torch

    quiet_optuna()
    warm_up_torch()  # torch's lazy imports happen now, before Ctrl-C and SIGTERM are armed
    runs: list[str] = []
    try:
        with interrupt_guard():  # Ctrl-C and `kill PID`: the run ends KILLED with the reason
            run_id, result, point = run_single(args.experiment, args.sets, args.tracking_uri, on_run=runs.append)
    except KeyboardInterrupt as err:
        what = f"run {runs[0]} ended KILLED ({interrupt_reason(err)})" if runs else "no run was started"
        again = _again(["workbench", "run", args.experiment, *(w for s in args.sets for w in ("--set", s))], args)
        print(f"interrupted: {what}; run it again with: {again}", file=sys.stderr)
        return 130
    sparsity = result.final_sparsity.get("elementwise_over_matmul_gemm_conv", 0.0)
    print(
        f"run {run_id}: {result.metric} {result.value:.4f} (dense {result.dense_value:.4f}), "
        f"sparsity {sparsity:.3f}, {effective_params(point)}"
    )
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    from workbench.infra.interrupts import interrupt_guard, interrupt_reason
    from workbench.study.console import quiet_optuna
    from workbench.study.rerun import rerun_trial
    from workbench.study.workers import warm_up_torch

    quiet_optuna()
    warm_up_torch()  # torch's lazy imports happen now, before Ctrl-C and SIGTERM are armed
    runs: list[str] = []
    try:
        with interrupt_guard():  # Ctrl-C and `kill PID`: the rerun's run ends KILLED with the reason
            new_id, before, after, metric = rerun_trial(
                args.run_id, args.tracking_uri, force=args.force, on_run=runs.append
            )
    except KeyboardInterrupt as err:
        what = f"run {runs[0]} ended KILLED ({interrupt_reason(err)})" if runs else "no run was started"
        again = _again(["workbench", "rerun", args.run_id, *(["--force"] if args.force else [])], args)
        print(f"interrupted: {what}; run it again with: {again}", file=sys.stderr)
        return 130
    same = before is not None and after == before
    print(
        f"rerun {new_id} of {args.run_id}: {metric} {after!r} (source {before!r}): "
        f"{'reproduced exactly' if same else 'DIFFERENT'}"
    )
    return 0 if same else 1


def _cmd_export(args: argparse.Namespace) -> int:
    from workbench.study.export import export_command

    print(export_command(args.run_id, args.format, args.to, slim=args.slim, rerun=args.rerun, uri=args.tracking_uri))
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from workbench.cli_servers import serve_ui

    return serve_ui(args)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from workbench.cli_servers import serve_dashboard

    return serve_dashboard(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script; returns the exit status."""
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as err:
        print(f"error: {redact_text(err)}".replace("\n", " "), file=sys.stderr)
        return 2
    from workbench.infra.console import setup_logging

    setup_logging(args.quiet)
    try:
        return args.func(args)
    except ValueError as err:
        if not _is_user_error(err):
            return _report_bug()
        print(f"error: {redact_text(err)}".replace("\n", " "), file=sys.stderr)
        own = getattr(err, "plugin_traceback", "")  # a user's plug-in failed: its own frames follow the line
        if own:
            print(redact_text(own), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - reported below, with its traceback
        return _report_bug()


def _is_user_error(err: ValueError) -> bool:
    """Whether ``err`` is bad input (a ConfigError or a store setting), not a bug.

    Start-up: a ConfigError can only come from a command that loaded the pruner (torch), so the
    pruner is not imported here to find out; a command that rejects its input before loading
    torch keeps it unloaded.
    """
    from workbench.infra.store_checks import StoreError

    errors = sys.modules.get("workbench.pruner.errors")
    return isinstance(err, StoreError) or (errors is not None and isinstance(err, errors.ConfigError))


def _report_bug() -> int:
    """Our bug, torch's or a plug-in's: the traceback is the report (exit 1), with URLs redacted."""
    print(redact_text(traceback.format_exc()), end="", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
