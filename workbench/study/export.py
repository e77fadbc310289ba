"""``workbench export``: a trial's pruned model written in a format people deploy, checked, with provenance.

:func:`export` takes a trial's run, rebuilds its pruned model from the logged sparse model
(:func:`~workbench.study.models.load_trial_model`; with ``rerun=True``, a run without one is
re-run from its ``trial.yaml``, and the time that took is recorded), writes ``format`` into a new
folder, reloads what it wrote, compares the outputs on the first evaluation batch and the task's
metric on the evaluation batches with the trial's logged value, and only then writes
``export.json`` (provenance: run, study, experiment, commit, benchmark spec, config; sizes on disk against the
dense fp32 checkpoint; the checks). Formats (:data:`FORMATS`):

* ``torch``: ``model.safetensors`` (every tensor of the ``state_dict``, the zeros applied),
  ``masks.safetensors`` (``<tensor>`` -> bool, True = kept, for every tensor with zeros),
  ``pruning_config.yaml`` and ``trial.yaml``; reload: the task's ``build_model()`` +
  ``load_state_dict``;
* ``hf`` (Hugging Face tasks): the model's ``save_pretrained`` folder (safetensors) +
  ``pruning_config.yaml``; reload: ``<ModelClass>.from_pretrained``;
* ``compressed-tensors`` (Hugging Face tasks): the ``save_pretrained`` folder with its sparse
  weights in compressed-tensors' ``sparse-bitmask`` layout (``sparse-24-bitmask`` for 2:4) and the
  ``quantization_config`` naming it (:mod:`workbench.study.export_ct`); reload:
  :func:`~workbench.study.export_ct.load_compressed_tensors` (transformers 5 no longer decompresses
  sparsity itself);
* ``slim`` (``--slim``): the slimmed model (:func:`workbench.pruner.slim.slim_model`: dead
  channels and heads removed) as ``model.pt2`` (``torch.export``: loads with
  ``torch.export.load(path).module()``, no workbench needed; a Hugging Face model behind
  :class:`~workbench.tracking.mlflow_model.LogitsModel`, one stacked integer input). Its
  parameter count and median latency against the unslimmed model (the dense architecture) on
  the evaluation batch go to ``export.json`` (``speed``). Slimming changes the arithmetic, so its
  check is outputs close (``rtol 1e-4``), not equal, and the task's metric recomputed with the
  exported module (a Hugging Face task's through :class:`~workbench.study.export_slim.ExportedHF`)
  close to the logged one (``rel 1e-4``).

Every folder also gets a ``README.md`` that says what it holds, how to load it, and its provenance.

Bad input is a :class:`~workbench.pruner.ConfigError` naming the key, the value and what is
allowed (the CLI: exit 2, one line): an unknown run, a format that does not apply to the task,
a target folder that exists and is not empty, a run without a logged model and no ``rerun``.

Example:
    >>> meta = export("0123abcd", "torch", "out/winner")   # doctest: +SKIP
    >>> meta["verified"]["metric_equal"]                    # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow.exceptions import MlflowException
from safetensors.torch import load_file, save_file

from workbench.infra.stores import sqlite_path
from workbench.pruner.errors import ConfigError
from workbench.study.export_ct import load_compressed_tensors, write_compressed_tensors
from workbench.study.export_slim import Exported, ExportedHF, hf_loss, write_slim
from workbench.study.models import load_trial_model, task_of_run
from workbench.tracking import Tracker, model_store, resolve_tracking_uri
from workbench.tracking.artifacts import metric_name
from workbench.tracking.mlflow_model import model_input, servable
from workbench.trial import TrainingConfig, run_trial, search_params

__all__ = ["FORMATS", "export", "export_command"]

_log = logging.getLogger(__name__)

FORMATS = ("torch", "hf", "compressed-tensors", "slim")
"""The export formats (module docstring)."""
HF_ONLY = ("hf", "compressed-tensors")
"""The formats that apply to Hugging Face models only."""
SLIM_METRIC_REL = 1e-4
"""The slim export's metric must be this close (relative) to the trial's: slimming reorders sums."""


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _dense_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's dense fp32 safetensors checkpoint (the reference size)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.safetensors"
        save_file({k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}, str(path))
        return path.stat().st_size


def _is_hf(model: torch.nn.Module) -> bool:
    return callable(getattr(model, "save_pretrained", None)) and hasattr(model, "config")


def _outputs(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    x, fields = model_input(batch, rows=1 << 30)
    with torch.no_grad():
        return servable(model, fields)(x)


def _pattern(spec: dict[str, Any]) -> str:
    try:
        return str(search_params(spec.get("pruning_config") or {})["pattern"])
    except Exception:  # noqa: BLE001 - an unreadable config: the weights decide (sparse-bitmask holds any)
        return "unknown"


def _write(fmt: str, model: torch.nn.Module, folder: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Write ``fmt`` into ``folder``; returns what the format records in ``export.json`` (or None)."""
    (folder / "pruning_config.yaml").write_text(yaml.safe_dump(spec.get("pruning_config") or {}, sort_keys=False))
    if fmt == "compressed-tensors":
        return write_compressed_tensors(model, folder, _pattern(spec))
    if fmt == "torch":
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        masks = {k: (v != 0) for k, v in state.items() if v.is_floating_point() and bool((v == 0).any())}
        save_file(masks, str(folder / "masks.safetensors"))
        (folder / "trial.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    elif fmt == "hf":
        model.save_pretrained(str(folder))
    return None


def _reload(fmt: str, model: torch.nn.Module, folder: Path, task: Any) -> torch.nn.Module:
    if fmt == "torch":
        fresh = task.build_model()
        fresh.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return fresh.eval()
    if fmt == "slim":
        return Exported(torch.export.load(str(folder / "model.pt2")).module())
    if fmt == "compressed-tensors":
        return load_compressed_tensors(folder, type(model))
    return type(model).from_pretrained(str(folder)).eval()


def _check_target(to: str | os.PathLike) -> Path:
    folder = Path(to)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"to: {str(folder)!r} exists and is not an empty folder; allowed: a new or empty folder")
    return folder


def _applies(fmt: str, model: torch.nn.Module, run_id: str) -> None:
    """A ConfigError unless ``fmt`` applies to ``model`` (the Hugging Face formats need a Hugging Face model)."""
    if fmt in HF_ONLY and not _is_hf(model):
        allowed = ", ".join(f for f in FORMATS if f not in HF_ONLY)
        raise ConfigError(
            f"format: {fmt!r} does not apply to run {run_id} ({type(model).__name__} is not a Hugging Face model); "
            f"allowed: {allowed}"
        )


def _model_of(
    tracker: Any, run_id: str, rerun: bool, fmt: str
) -> tuple[torch.nn.Module, Any, dict[str, Any], float | None]:
    """The run's pruned model, task and trial spec, and the seconds a re-run took (None: loaded).

    ``fmt`` is checked against the task's model before a re-run, so a format that does not apply
    is refused before the trial runs."""
    if model_store.has_model(tracker.client, run_id):
        model, task, spec = load_trial_model(tracker, run_id)
        _applies(fmt, model, run_id)
        return model, task, spec, None
    tag = tracker.client.get_run(run_id).data.tags.get("workbench.model", "not logged")
    if not rerun:
        raise ConfigError(
            f"run_id: run {run_id} has no logged model (workbench.model: {tag}); "
            "allowed: a run with a logged model, or add --rerun to re-run the trial (same seed, CPU: same model)"
        )
    task, spec, _ = task_of_run(tracker, run_id)
    _applies(fmt, task.build_model(), run_id)
    models: list[torch.nn.Module] = []
    started = time.perf_counter()
    run_trial(
        task, spec["pruning_config"], TrainingConfig(**spec["training"]), int(spec["seed"]), on_model=models.append
    )
    seconds = time.perf_counter() - started
    _log.info("run %s had no logged model (%s): re-ran the trial in %.1f s", run_id, tag, seconds)
    return models[-1].to("cpu").eval(), task, spec, seconds


_LOAD = {
    "torch": "the task's `build_model()` + `load_state_dict(safetensors.torch.load_file('model.safetensors'))`",
    "hf": "`transformers.{cls}.from_pretrained(folder)`",
    "compressed-tensors": "`workbench.study.export_ct.load_compressed_tensors(folder)` (decompresses the "
    "`{layout}` weights into `transformers.{cls}`; transformers 5's own compressed-tensors loader "
    "decompresses quantization only and would leave these weights missing)",
    "slim": "`torch.export.load('model.pt2').module()` (no workbench needed)",
}


def _readme(meta: dict[str, Any], model: torch.nn.Module) -> str:
    """The export folder's ``README.md``: what it holds, how to load it, where it came from."""
    fmt, sizes, check = meta["format"], meta["sizes"], meta["verified"]
    layout = (meta.get("compression") or {}).get("format", "")
    source = meta["source"] + (f" ({meta['rerun_seconds']} s)" if "rerun_seconds" in meta else "")
    lines = [
        f"# Run {meta['run_id']}: `{fmt}` export (workbench)",
        "",
        f"Load: {_LOAD[fmt].format(cls=type(model).__name__, layout=layout)}.",
        "",
        "## Provenance",
        "",
        f"- run: `{meta['run_id']}` ({meta['run_name']}), experiment `{meta['experiment_id']}`",
        f"- study: `{meta['study']}`",
        f"- commit: `{meta['commit']}`",
        f"- benchmark: `{meta['benchmark']}` (task `{meta['task']}`), "
        f"benchmark_params {meta['config'].get('benchmark_params') or {}}",
        f"- model from: {source}",
        "- config: the trial's `trial.yaml`, in `export.json` (`config`)",
        "",
        "## Checks and sizes",
        "",
        f"- {check['check']}: outputs {'equal' if fmt != 'slim' else 'close'} {check['outputs_equal']}, "
        f"{check['metric']} {check['value']!r} (logged {check['logged_value']!r})",
        f"- {sizes['export_bytes']} bytes on disk, {sizes['ratio_to_dense']} of the dense fp32 checkpoint "
        f"({sizes['dense_fp32_bytes']} bytes)",
    ]
    if layout:
        lines.append(f"- compressed-tensors layout `{layout}`: {meta['compression']['reason']}")
    if "speed" in meta:
        speed = meta["speed"]
        lines.append(
            f"- slim: {speed['slim_params']} parameters of {speed['dense_params']}, "
            f"{speed['slim_ms']:.3f} ms vs {speed['dense_ms']:.3f} ms dense (speed-up {speed['speedup']:.2f})"
        )
    return "\n".join(lines) + "\n"


def _check_slim(
    model: torch.nn.Module, folder: Path, task: Any, batch: Any, expected: torch.Tensor, run_id: str
) -> tuple[bool, Any]:
    """The slim export's checks: outputs close, and the task's metric recomputed with the exported module."""
    reloaded = _reload("slim", model, folder, task)
    x, fields = model_input(batch, rows=1 << 30)
    outputs_equal = bool(torch.allclose(reloaded(x), expected, rtol=1e-4, atol=1e-5))
    module = ExportedHF(reloaded.module, fields, hf_loss(model)) if fields else reloaded
    try:
        value = task.evaluate(module, task.eval_batches)[task.metric]
    except Exception as err:  # noqa: BLE001 - the task's evaluation needs more than the logits
        raise ConfigError(
            f"format: 'slim' cannot be checked on run {run_id}: the task's {task.metric} cannot be computed "
            f"from the slimmed model ({type(err).__name__}: {err}); allowed: torch"
            + (", hf, compressed-tensors" if fields else "")
        ) from None
    return outputs_equal, value


def export(
    run_id: str,
    format: str,  # noqa: A002 - the CLI's --format
    to: str | os.PathLike,
    *,
    tracking_uri: str | None = None,
    rerun: bool = False,
) -> dict[str, Any]:
    """Export ``run_id``'s pruned model as ``format`` into the new folder ``to``; returns ``export.json``'s data.

    See the module docstring for the formats, the checks and the errors. The export is written
    to a temporary folder next to ``to`` and renamed once verified, so a failed check leaves no
    folder behind.
    """
    if format not in FORMATS:
        raise ConfigError(f"format: {format!r} is not allowed; allowed: {', '.join(FORMATS)}")
    folder = _check_target(to)
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not Path(db).is_file():
        raise ConfigError(f"run_id: no run {run_id!r}: the tracking store {db!r} does not exist")
    tracker = Tracker(uri)
    try:
        run = tracker.client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"run_id: no run {run_id!r} in {uri}; allowed: a trial's run id") from None
    model, task, spec, rerun_s = _model_of(tracker, run_id, rerun, format)
    metric = task.metric
    logged = run.data.metrics.get(metric_name(metric))
    batch = next(iter(task.eval_batches))
    expected = _outputs(model, batch)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        speed = write_slim(model, work, batch) if format == "slim" else None
        if format != "slim":
            compression = _write(format, model, work, spec)
        else:
            compression = None
            (work / "pruning_config.yaml").write_text(yaml.safe_dump(spec.get("pruning_config") or {}, sort_keys=False))
        written = _folder_bytes(work)
        exact = format != "slim"
        if exact:
            reloaded = _reload(format, model, work, task)
            outputs_equal = torch.equal(_outputs(reloaded, batch), expected)
            value = task.evaluate(reloaded, task.eval_batches)[metric]
            metric_ok = logged is None or value == logged
        else:
            outputs_equal, value = _check_slim(model, work, task, batch, expected, run_id)
            metric_ok = logged is None or math.isclose(value, logged, rel_tol=SLIM_METRIC_REL, abs_tol=1e-9)
        if not outputs_equal or not metric_ok:
            raise RuntimeError(
                f"export check failed for run {run_id} ({format}): outputs equal {outputs_equal}, "
                f"{metric} {value!r} vs logged {logged!r}"
            )
        dense = _dense_bytes(model)
        tags = run.data.tags
        meta = {
            "format": format,
            "run_id": run_id,
            "study": tags.get("optuna.study_name"),
            "experiment_id": run.info.experiment_id,
            "run_name": run.info.run_name,
            "commit": tags.get("workbench.git_commit"),
            "benchmark": run.data.params.get("benchmark", spec.get("benchmark")),  # the spec the study ran
            "task": spec.get("benchmark"),  # the built task's name (trial.yaml)
            "config": spec,
            "source": "re-run" if rerun_s is not None else "logged model",
            **({"rerun_seconds": round(rerun_s, 3)} if rerun_s is not None else {}),
            "sizes": {"export_bytes": written, "dense_fp32_bytes": dense, "ratio_to_dense": round(written / dense, 4)},
            **({"compression": compression} if compression is not None else {}),
            **({"speed": speed} if speed is not None else {}),
            "verified": {
                "outputs_equal": outputs_equal,
                "metric": metric,
                "value": value,
                "logged_value": logged,
                "metric_equal": logged is not None and value == logged,
                "check": "outputs equal, metric equal"
                if exact
                else f"outputs close (rtol 1e-4), metric close (rel {SLIM_METRIC_REL})",
            },
        }
        (work / "export.json").write_text(json.dumps(meta, indent=2, default=str))
        (work / "README.md").write_text(_readme(meta, model))
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _log.info(
        "exported run %s as %s to %s: %d bytes (%.2f of dense fp32), %s %r reloaded (logged %r)",
        run_id,
        format,
        folder,
        written,
        written / dense,
        metric,
        value,
        logged,
    )
    return meta


def export_command(run_id: str, fmt: str | None, to: str, *, slim: bool, rerun: bool, uri: str | None) -> str:
    """``workbench export``: run :func:`export` (``--slim`` = ``--format slim``); returns the line to print."""
    chosen = "slim" if slim else fmt
    if chosen is None or (slim and fmt not in (None, "slim")):
        raise ConfigError(f"format: give one of --format {'|'.join(FORMATS)} or --slim (got --format {fmt!r})")
    meta = export(run_id, chosen, to, tracking_uri=uri, rerun=rerun)
    layout = f" ({meta['compression']['format']})" if "compression" in meta else ""
    sizes, check = meta["sizes"], meta["verified"]
    again = f", re-run in {meta['rerun_seconds']:.1f} s" if "rerun_seconds" in meta else ""
    return (
        f"exported {run_id} as {chosen}{layout} to {to}: {sizes['export_bytes']} bytes "
        f"({sizes['ratio_to_dense']:.2f} of dense fp32){again}; reloaded {check['metric']} {check['value']!r} "
        f"(logged {check['logged_value']!r})"
    )
