"""A trial's logged sparse model in MLflow: log it, find it, measure it, drop it, download it.

The file (:mod:`workbench.trial.model_file`) is logged as ``model/sparse_model.safetensors`` in
the trial's run, which is tagged ``workbench.model`` (the artifact path, or ``dropped: <why>``
once deleted) and ``workbench.model_bytes`` (its size).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

__all__ = [
    "MODEL_BYTES_TAG",
    "MODEL_DIR",
    "MODEL_TAG",
    "download_model_file",
    "drop_model",
    "has_model",
    "log_model_file",
    "log_trial_model",
    "model_bytes",
]

_log = logging.getLogger(__name__)

MODEL_DIR, MODEL_TAG, MODEL_BYTES_TAG = "model", "workbench.model", "workbench.model_bytes"
"""Where a trial's sparse model is logged (``model/sparse_model.safetensors``) and the tags saying so."""
MODEL_FILE = "sparse_model.safetensors"
"""The file name a trial's sparse model is logged under, in :data:`MODEL_DIR`."""


def log_model_file(client: Any, run_id: str, path: str) -> None:
    """Log the sparse model file ``path`` under ``model/``, tag the run, delete the file.

    A file already gone was logged by an earlier attempt (a spool replay after a failure half-way).
    """
    file = Path(path)
    if not file.is_file():
        _log.debug("model file %s already logged", file)
        return
    size = file.stat().st_size
    client.log_artifact(run_id, str(file), MODEL_DIR)
    client.log_batch(run_id, tags=[RunTag(MODEL_TAG, f"{MODEL_DIR}/{file.name}"), RunTag(MODEL_BYTES_TAG, str(size))])
    file.unlink()
    with contextlib.suppress(OSError):
        file.parent.rmdir()


def log_trial_model(tracker: Any, run_id: str, model: Any, *, meta: dict[str, Any]) -> None:
    """Write ``model`` sparse and log it with the run ``run_id``.

    A spooling tracker (:class:`~workbench.tracking.spool.SpooledTracker`) gets the file in its
    spool folder and queues it for the log writer; any other tracker logs it now.
    """
    # start-up: the log writer process imports this module and never needs torch
    from workbench.trial.model_file import save_sparse_model

    spooled = callable(getattr(tracker, "log_model_file", None))
    folder = tracker.model_staging(run_id) if spooled else Path(tempfile.mkdtemp(prefix="workbench-model-"))
    path = folder / MODEL_FILE
    save_sparse_model(model, path, meta=meta)
    if spooled:
        tracker.log_model_file(run_id, str(path))
    else:
        log_model_file(tracker.client, run_id, str(path))


def has_model(client: Any, run_id: str) -> bool:
    """Whether the run holds a logged sparse model (its ``workbench.model`` tag names the file)."""
    return client.get_run(run_id).data.tags.get(MODEL_TAG, "").startswith(f"{MODEL_DIR}/")


def model_bytes(client: Any, run_id: str) -> int:
    """The size of the run's logged sparse model file (``workbench.model_bytes``; 0 if unknown)."""
    value = client.get_run(run_id).data.tags.get(MODEL_BYTES_TAG, "0")
    return int(value) if value.isdigit() else 0


def drop_model(client: Any, run_id: str, reason: str) -> bool:
    """Delete the run's logged sparse model; tags ``workbench.model`` with ``dropped: <reason>``.

    Returns False (and keeps the file) where the artifact store cannot delete.
    """
    run = client.get_run(run_id)
    try:
        get_artifact_repository(run.info.artifact_uri).delete_artifacts(MODEL_DIR)
    except (NotImplementedError, MlflowException, OSError) as err:
        _log.warning("could not drop the model of run %s (%s); kept", run_id, err)
        return False
    client.set_tag(run_id, MODEL_TAG, f"dropped: {reason}")
    return True


def download_model_file(client: Any, run_id: str, folder: str | os.PathLike) -> Path:
    """Download the run's sparse model file into ``folder``; returns its path."""
    tag = client.get_run(run_id).data.tags.get(MODEL_TAG, "")
    if not tag.startswith(f"{MODEL_DIR}/"):
        raise FileNotFoundError(f"run {run_id} has no logged model ({MODEL_TAG}: {tag or 'not set'})")
    return Path(client.download_artifacts(run_id, tag, str(folder)))
