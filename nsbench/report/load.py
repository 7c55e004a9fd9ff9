"""Read saved results (eval folders) and training run folders; never run a model.

Every input is checked before any work: a results.csv whose bytes do not match the hash in meta.json (or, for
older results without one, that is cut short, lacks columns or holds unparseable numbers), a corrupt
per_image.parquet, history.csv, stats.json or summary.json, or a meta.json that is not an object each stop the
report with a one-line NsbenchError naming the file.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..runs import HISTORY, is_finished_run, pseudo_stats_files
from ..schema import FAILED
from ..utils import NsbenchError

REQUIRED = {"model", "task", "condition", "metric", "value"}
PER_IMAGE_REQUIRED = {"task", "condition", "image"}


@dataclass
class EvalResult:
    label: str
    folder: Path
    rows: pd.DataFrame
    meta: dict
    per_image: pd.DataFrame | None


@dataclass
class RunResult:
    folder: Path
    summary: dict
    history: pd.DataFrame
    pseudo: dict[int, dict] = field(default_factory=dict)  # iteration -> stats.json


def _is_eval(p: Path) -> bool:
    return (p / "results.csv").exists() and (p / "meta.json").exists()


def _is_run(p: Path) -> bool:
    return is_finished_run(p)


def load_inputs(paths: list[str | Path]) -> tuple[list[EvalResult], list[RunResult]]:
    """Eval result folders, folders holding several of them, and run folders, in the order given."""
    evals, runs = [], []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise NsbenchError(f"{p}: not found")
        if _is_run(p):
            runs.append(load_run(p))
            continue
        found = [p] if _is_eval(p) else sorted(q for q in p.iterdir() if q.is_dir() and _is_eval(q))
        if not found:
            raise NsbenchError(f"{p}: neither eval results (results.csv + meta.json) nor a training run folder")
        evals += [load_eval(q) for q in found]
    labels = [e.label for e in evals]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise NsbenchError(f"two inputs share the model label {dupes[0]!r}; pass each model once")
    return evals, runs


def read_json_object(path: Path, *, kind: type = dict):
    """A JSON file that must hold an object (or `kind`); anything else is a one-line error naming the file."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NsbenchError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NsbenchError(f"{path}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(obj, kind):
        raise NsbenchError(f"{path}: expected a JSON {'object' if kind is dict else kind.__name__}, "
                           f"found {type(obj).__name__}")
    return obj


def read_results_csv(path: Path, meta: dict) -> pd.DataFrame:
    """results.csv, verified against meta.json's {"results": {"rows", "sha256"}} when the writer recorded it."""
    data = path.read_bytes()
    record = meta.get("results")
    if isinstance(record, dict) and record.get("sha256"):
        if hashlib.sha256(data).hexdigest() != str(record["sha256"]).lower():
            raise NsbenchError(f"{path}: contents do not match the sha256 in meta.json (truncated or modified)")
    elif data and not data.endswith(b"\n"):
        raise NsbenchError(f"{path}: does not end with a newline (truncated?)")
    try:
        rows = pd.read_csv(io.BytesIO(data), dtype={"model": str, "task": str, "condition": str, "metric": str},
                           keep_default_na=True)
    except Exception as e:  # noqa: BLE001 - any parser failure is the same user error
        raise NsbenchError(f"{path}: unreadable ({type(e).__name__})") from None
    missing = REQUIRED - set(rows.columns)
    if missing:
        raise NsbenchError(f"{path}: missing columns {', '.join(sorted(missing))}")
    if rows.empty:
        raise NsbenchError(f"{path}: no result rows")
    if isinstance(record, dict) and record.get("rows") is not None and int(record["rows"]) != len(rows):
        raise NsbenchError(f"{path}: {len(rows)} rows, meta.json records {record['rows']} (truncated or modified)")
    return _check_values(path, rows)


def _check_values(path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    raw = rows["value"]
    value = pd.to_numeric(raw, errors="coerce")
    bad = value.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise NsbenchError(f"{path}: value {raw.iloc[i]!r} on row {i + 2} is not a number")
    rows = rows.assign(value=value.astype(float))
    for col in ("severity", "eps_255", "eps", "n"):
        if col in rows:
            num = pd.to_numeric(rows[col], errors="coerce")
            if (num.isna() & rows[col].notna()).any():
                raise NsbenchError(f"{path}: column {col} holds a value that is not a number")
            rows[col] = num.astype(float)
    note = rows["note"].fillna("").astype(str) if "note" in rows else pd.Series("", index=rows.index)
    rows["note"] = note
    if rows[["model", "task", "metric"]].isna().any(axis=None):
        raise NsbenchError(f"{path}: a row lacks its model, task or metric (truncated?)")
    # older writers leave a value empty without a note where it is undefined (e.g. a normaliser that never flips)
    rows.loc[rows.value.isna() & (note == "") & (rows.metric != FAILED), "note"] = "undefined"
    rows["condition"] = rows["condition"].fillna("")
    return rows


def read_per_image(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        per = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise NsbenchError(f"{path}: unreadable parquet ({type(e).__name__})") from None
    missing = PER_IMAGE_REQUIRED - set(per.columns)
    if missing:
        raise NsbenchError(f"{path}: missing columns {', '.join(sorted(missing))}")
    if not ({"correct", "flip"} & set(per.columns)):
        raise NsbenchError(f"{path}: neither a correct nor a flip column")
    return per


def load_eval(p: Path) -> EvalResult:
    meta = read_json_object(p / "meta.json")
    for key in ("model", "normaliser", "dataset", "sets", "suite"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise NsbenchError(f"{p / 'meta.json'}: {key} must be an object, found {type(meta[key]).__name__}")
    rows = read_results_csv(p / "results.csv", meta)
    per = read_per_image(p / "per_image.parquet")
    label = str(rows.model.iloc[0])
    return EvalResult(label, p, rows, meta, per)


def load_run(p: Path) -> RunResult:
    summary = read_json_object(p / "summary.json")
    its = summary.get("iterations", [])
    if not isinstance(its, list) or not all(isinstance(e, dict) and "iteration" in e for e in its):
        raise NsbenchError(f"{p / 'summary.json'}: iterations must be a list of objects with an iteration")
    history = pd.DataFrame()
    if (p / HISTORY).exists():
        try:
            history = pd.read_csv(p / HISTORY)
        except Exception as e:  # noqa: BLE001
            raise NsbenchError(f"{p / HISTORY}: unreadable ({type(e).__name__})") from None
        if len(history.columns) and not {"iteration", "epoch"} <= set(history.columns):
            raise NsbenchError(f"{p / HISTORY}: no iteration and epoch columns (corrupt?)")
    pseudo = {}
    for k, stats in pseudo_stats_files(p).items():
        obj = read_json_object(stats)
        per = obj.get("per_class")
        if per is not None and not (isinstance(per, list) and all(isinstance(x, dict) for x in per)):
            raise NsbenchError(f"{stats}: per_class must be a list of objects")
        pseudo[k] = obj
    return RunResult(p, summary, history, pseudo)
