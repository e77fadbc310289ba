"""Console logging of a command: one line per event, printed above a running progress bar.

Standard library only (tqdm is loaded by the first line logged), so every command, ``workbench ui``
included, sets its logging up before it checks its input without loading anything heavy.

Example:
    >>> setup_logging(quiet=True)  # doctest: +SKIP
    >>> logging.getLogger("workbench").level == logging.WARNING  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import sys

from workbench.infra.diskfull import quiet_disk_full_reports
from workbench.infra.redaction import install_redaction

__all__ = ["TqdmHandler", "setup_logging"]


class TqdmHandler(logging.Handler):
    """Log lines that do not break a running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm  # start-up: loaded by the first line, not by `workbench ui`

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


def setup_logging(quiet: bool) -> None:
    """Send the ``workbench`` loggers to stderr (warnings only when ``quiet``).

    Every log record and warning of the process is redacted from then on (no URL credentials).
    Optuna's own logging is quieted by the commands that load it
    (:func:`workbench.study.console.quiet_optuna`).
    """
    install_redaction()
    quiet_disk_full_reports()  # the full disk is one line, not a library's traceback
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("workbench")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False
