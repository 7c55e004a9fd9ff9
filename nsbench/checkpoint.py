"""Self-describing checkpoints, written atomically and loaded without running pickled code.

A checkpoint is a `torch.save`d dict of plain types: a format tag, a JSON metadata string and the state dict.
It is read back with `torch.load(weights_only=True)`, which refuses any pickled object beyond tensors and
containers, so a crafted file cannot execute code.
"""
from __future__ import annotations

import datetime as _dt
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from .models import ModelSpec, NormalizedModel, build_model
from .utils import NsbenchError, atomic_path, file_sha256, library_versions

FORMAT = "nsbench-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: NormalizedModel, spec: ModelSpec, *, classes: list[str],
                    iteration: int, parent_sha256: str | None, config: dict | None, metrics: dict | None,
                    extra: dict | None = None) -> str:
    """Write a checkpoint atomically; return its sha256."""
    meta = {
        "model": spec.to_dict(),
        "classes": list(classes),
        "iteration": iteration,
        "parent_sha256": parent_sha256,
        "config": config or {},
        "metrics": metrics or {},
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": json.dumps(meta, default=str), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return file_sha256(path)


def safe_load(path: str | Path) -> Any:
    """torch.load with weights_only=True; every failure becomes a one-line NsbenchError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise NsbenchError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise NsbenchError(f"{path}: refused to load: it holds objects beyond weights ({_blocked(e)})") from None
    except Exception as e:  # noqa: BLE001 - zip/EOF/format errors of any kind
        raise NsbenchError(f"{path}: not an nsbench checkpoint ({type(e).__name__})") from None


def _blocked(e: Exception) -> str:
    """The part of torch's weights_only refusal that names what was blocked (e.g. `GLOBAL posix.system`), one line.

    torch's message opens with advice to rerun with weights_only=False, which nsbench never does; skip that."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "unsupported" in ln.lower() or "not an allowed global" in ln.lower():
            return ln[:300]
    keep = [ln for ln in lines if "weights_only" not in ln and "torch.load" not in ln]
    return (keep or lines or ["unsafe pickle"])[0][:300]


OPTIONAL_MAPPINGS = ("config", "dataset", "metrics")  # checkpoint metadata fields that are mappings when present


def _check_meta(path: Path, meta: Any, state: Any) -> None:
    """A tagged checkpoint whose metadata or weights are not what nsbench writes -> one line naming the field."""
    if not isinstance(meta, dict):
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt (a {type(meta).__name__}, expected a mapping)")
    model = meta.get("model")
    required = {"arch": str, "num_classes": int, "input_size": int, "mean": list, "std": list}
    if not isinstance(model, dict):
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt (no 'model' mapping)")
    for key, typ in required.items():
        if not isinstance(model.get(key), typ) or isinstance(model.get(key), bool):
            raise NsbenchError(f"{path}: checkpoint metadata is corrupt (model.{key}: expected {typ.__name__}, "
                               f"got {model.get(key)!r:.60})")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt (classes: expected a list of names)")
    if len(classes) != model["num_classes"]:
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt ({len(classes)} class names for "
                           f"model.num_classes={model['num_classes']})")
    for key in OPTIONAL_MAPPINGS:  # read as mappings by eval, export, resume and reports
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise NsbenchError(f"{path}: checkpoint metadata is corrupt ({key}: expected a mapping, got "
                               f"{type(meta[key]).__name__} {meta[key]!r:.60})")
    data = (meta.get("config") or {}).get("data")
    if data is not None and not isinstance(data, dict):
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt (config.data: expected a mapping, got "
                           f"{type(data).__name__} {data!r:.60})")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NsbenchError(f"{path}: checkpoint weights are corrupt (state_dict is not a mapping of tensors)")


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Return (meta, state_dict) of an nsbench checkpoint, or raise a one-line NsbenchError."""
    obj = safe_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise NsbenchError(f"{path}: not an nsbench checkpoint (no '{FORMAT}' tag)")
    if obj.get("format_version") != FORMAT_VERSION:
        raise NsbenchError(f"{path}: checkpoint format version {obj.get('format_version')} is not supported")
    try:
        meta = json.loads(obj["meta"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise NsbenchError(f"{path}: checkpoint metadata is missing or corrupt") from None
    _check_meta(Path(path), meta, obj.get("state_dict"))
    return meta, obj["state_dict"]


def load_checkpoint(path: str | Path) -> tuple[NormalizedModel, dict]:
    """Rebuild the model described by a checkpoint, in eval mode, and return it with its metadata."""
    meta, state = read_checkpoint(path)
    try:
        spec = ModelSpec.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise NsbenchError(f"{path}: checkpoint metadata is corrupt (model: {type(e).__name__}: {e})") from None
    try:
        model = build_model(spec)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - e.g. num_classes=-1 or a mean of the wrong length in damaged metadata
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise NsbenchError(f"{path}: checkpoint metadata describes a model that cannot be built ({first})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise NsbenchError(f"{path}: weights do not match {spec.arch} ({str(e).splitlines()[0]})") from None
    meta["sha256"] = file_sha256(path)
    meta["path"] = str(path)
    return model.eval(), meta


def save_state(path: str | Path, state: dict) -> None:
    """Training state for resume (model, optimizer, EMA, epoch, history); same safety as checkpoints."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path) -> dict:
    return safe_load(path)

