"""Read saved results (eval folders) and training run folders; never run a model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..utils import NsbenchError, read_json


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
    return (p / "summary.json").exists() and (p / "config.yaml").exists()


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


def load_eval(p: Path) -> EvalResult:
    try:
        rows = pd.read_csv(p / "results.csv")
    except Exception as e:  # noqa: BLE001
        raise NsbenchError(f"{p / 'results.csv'}: unreadable ({type(e).__name__})") from None
    missing = {"model", "task", "condition", "metric", "value"} - set(rows.columns)
    if missing:
        raise NsbenchError(f"{p / 'results.csv'}: missing columns {', '.join(sorted(missing))}")
    meta = read_json(p / "meta.json")
    per = pd.read_parquet(p / "per_image.parquet") if (p / "per_image.parquet").exists() else None
    label = str(rows.model.iloc[0]) if len(rows) else p.name
    return EvalResult(label, p, rows, meta, per)


def load_run(p: Path) -> RunResult:
    summary = read_json(p / "summary.json")
    history = pd.read_csv(p / "history.csv") if (p / "history.csv").exists() else pd.DataFrame()
    pseudo = {}
    for stats in sorted(p.glob("iter*/pseudo/stats.json")):
        k = int(stats.parent.parent.name[4:])
        pseudo[k] = read_json(stats)
    return RunResult(p, summary, history, pseudo)
