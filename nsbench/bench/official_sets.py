"""Official shifted ImageNet sets read from their released layouts: the shared parts of the tasks imagenet_v2,
imagenet_sketch, imagenet_c_bar and imagenet_3dcc (bench/tasks/).

Two layouts:
- class folders (ImageNet-V2: `0`..`999`, the ImageNet class index; ImageNet-Sketch: wnids), photos prepared as the
  clean split is (resize the shorter side, centre crop);
- corruption trees `<corruption>/<severity>/<wnid>/<image>` (ImageNet-C's layout, used by ImageNet-C-bar and
  ImageNet-3DCC), files scored as shipped (224 x 224, no resizing), as ImageNet-C is.

A root that is not set (None, or a `${VAR}` left unexpanded) makes the task skip with a note; a root that is set
but missing is an error.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.sources import FileSource, scan_folder
from ..utils import NsbenchError
from . import calibration_rows
from .metrics import accuracy, error, mean_error
from .registry import TaskResult

log = logging.getLogger(__name__)
_UNSET = re.compile(r"\$\{(\w+)\}")


def unset_reason(task: str, root: str | None, env: str) -> str | None:
    """Why the set is absent (then the task is skipped with this note), or None when a root is given."""
    if root is None or not str(root).strip():
        return f"no {task}.root set (set ${env} or {task}.root=PATH)"
    m = _UNSET.search(str(root))
    if m:
        return f"${m.group(1)} is not set (set it or {task}.root=PATH)"
    return None


def skipped(ctx, task: str, note: str) -> TaskResult:
    log.info("%s: %s skipped: %s", ctx.em.label, task, note)
    return TaskResult([ctx.row(task, "all", "skipped", None, 0, note=note)], [], {task: {"skipped": note}})


def existing(task: str, root: str) -> Path:
    p = Path(root).expanduser()
    if not p.is_dir():
        raise NsbenchError(f"{p}: {task} folder not found")
    return p


def need_imagenet_1k(ctx, task: str) -> None:
    if len(ctx.em.classes) != 1000:
        raise NsbenchError(f"{task} is labelled with the 1,000 ImageNet classes; {ctx.em.label} has "
                           f"{len(ctx.em.classes)} classes")


def score(ctx, task: str, src: FileSource, key: str) -> dict[str, np.ndarray]:
    """Per-image outcomes on `src` (index, correct and the calibration columns), cached per model; unreadable
    images are skipped and the indices kept say which were scored."""
    idx = ctx.pick(len(src))

    return ctx.cell(task, f"{key}|{src.fingerprint()}|{len(idx)}|calibration",
                    lambda: calibration_rows.outcomes(ctx, src, idx))


def unreadable(z: dict, folder: Path) -> int:
    """How many of the images `score` asked for in `folder` could not be read (skipped, as -C and -A/-R skip them),
    with a warning when any; a folder none of whose images reads is an error, not a cell of n = 0."""
    skipped = int(z["n_asked"]) - len(z["correct"])
    if skipped and not len(z["correct"]):
        raise NsbenchError(f"{folder}: none of its {skipped} image(s) could be read")
    if skipped:
        log.warning("%s: %d unreadable image(s) skipped and counted", folder, skipped)
    return skipped


def accuracy_rows(ctx, task: str, condition: str, z: dict, **kw) -> tuple[list[dict], pd.DataFrame]:
    """top1_acc / top1_err and the calibration rows of one cell, and its per-image frame."""
    correct = z["correct"]
    n = len(correct)
    rows = [ctx.row(task, condition, "top1_acc", 100 * accuracy(correct), n, **kw),
            ctx.row(task, condition, "top1_err", 100 * error(correct), n, **kw),
            *calibration_rows.rows(ctx, task, condition, z, **kw)]
    per = pd.DataFrame({"task": task, "condition": condition, "severity": kw.get("severity") or 0,
                        "eps_255": 0.0, "image": z["index"], "correct": correct, **calibration_rows.columns(z)})
    return rows, per


# ------------------------------------------------------------------------------------------- corruption trees

@dataclass(frozen=True)
class Cell:
    corruption: str
    severity: int
    folder: Path


def check_tree_task(task: str, t, valid: tuple[str, ...]) -> None:
    """A corruption-tree task's corruptions must be among the set's names and its severities within 1-5."""
    bad = [c for c in t.corruptions if c not in valid]
    if bad or not t.corruptions:
        raise NsbenchError(f"{task}.corruptions: unknown {', '.join(bad) or '(empty)'}; valid: {', '.join(valid)}")
    if not t.severities or any(s not in (1, 2, 3, 4, 5) for s in t.severities):
        raise NsbenchError(f"{task}.severities must be a non-empty list within 1-5")


def scan_tree(root: Path, names: tuple[str, ...], what: str,
              severity_folders: dict[str, tuple[str, ...]] | None = None) -> tuple[list[Cell], list[str]]:
    """Cells of `<corruption>/<severity>/<wnid>/` for the known corruption names, and the folders that are not
    one. A severity folder is `1`..`5`, or (when `severity_folders` gives a corruption's five folder names, as
    ImageNet-C-bar's generator writes its parameter values) one of those names, its position the severity."""
    cells, unknown = [], []
    for cdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if cdir.name not in names:
            unknown.append(cdir.name)
            continue
        alias = {n: s for s, n in enumerate((severity_folders or {}).get(cdir.name, ()), start=1)}
        for sdir in sorted(p for p in cdir.iterdir() if p.is_dir()):
            sev = int(sdir.name) if sdir.name in ("1", "2", "3", "4", "5") else alias.get(sdir.name)
            if sev is None:
                raise NsbenchError(f"{sdir}: not a severity folder of {what} (1-5"
                                   + (f" or {', '.join(alias)})" if alias else ")"))
            cells.append(Cell(cdir.name, sev, sdir))
    if not cells:
        raise NsbenchError(f"{root}: no <corruption>/<severity>/<wnid>/ folders of {what} found "
                           f"(corruptions: {', '.join(names)})")
    return cells, unknown


SEVERITIES = (1, 2, 3, 4, 5)


def tree_means(ctx, task: str, names: tuple[str, ...], errors: dict[str, dict[int, float]], n: int) -> list[dict]:
    """The mean error per corruption and over all of them, from the cells present: `mean_err` where every corruption
    has all five severities; otherwise `mean_err_partial` over what is there, its note naming what is missing (and a
    warning), so a partial download gives a summary that is never taken for the set's."""
    rows = []
    present = [c for c in names if c in errors]
    for c in present:
        sev = sorted(errors[c])
        value = 100 * mean_error({c: [errors[c][k] for k in sev]}, [c])
        if tuple(sev) == SEVERITIES:
            rows.append(ctx.row(task, c, "mean_err", value, n))
        else:
            rows.append(ctx.row(task, c, "mean_err_partial", value, n,
                                note=f"partial: severities {','.join(map(str, sev))} of 1-5"))
    if not present:
        return rows
    missing = [c for c in names if c not in errors]
    short = {c: sorted(set(SEVERITIES) - set(errors[c])) for c in present if tuple(sorted(errors[c])) != SEVERITIES}
    value = 100 * mean_error({c: list(errors[c].values()) for c in present}, present)
    if not missing and not short:
        return rows + [ctx.row(task, "all", "mean_err", value, n)]
    parts = [f"{len(present)} of {len(names)} corruptions"] + ([f"missing: {', '.join(missing)}"] if missing else [])
    parts += [f"{c} lacks severities {','.join(map(str, k))}" for c, k in short.items()]
    note = "partial: " + "; ".join(parts)
    log.warning("%s: %s mean_err_partial is not the set's mean error (%s)", ctx.em.label, task, note)
    return rows + [ctx.row(task, "all", "mean_err_partial", value, n, note=note)]


def corruption_tree_task(ctx, task: str, t, names: tuple[str, ...], what: str,
                         severity_folders: dict | None = None, source: str = "") -> TaskResult:
    """top-1 error (and calibration) per corruption and severity, the mean error per corruption and over all of
    them; no CE / mCE: these sets publish no normaliser (see the task modules). Unreadable images are skipped and
    counted per cell (`skipped_unreadable` in the set's info, "corruption|severity": count, as -C records them)."""
    root = existing(task, t.root)
    cells, unknown = scan_tree(root, names, what, severity_folders)
    cells = [c for c in cells if c.corruption in t.corruptions and c.severity in t.severities]
    rows, per, errors, skipped = [], [], {}, {}
    for cell in tqdm(cells, desc=f"{ctx.em.label} {what}", leave=False, mininterval=2.0):
        src = scan_folder(cell.folder, f"{task}/{cell.corruption}/{cell.severity}", ctx.em.classes)
        src.as_shipped()  # shipped at 224 x 224, scored without resizing (as ImageNet-C)
        z = score(ctx, task, src, f"{cell.folder}")
        skipped[f"{cell.corruption}|{cell.severity}"] = unreadable(z, cell.folder)
        r, p = accuracy_rows(ctx, task, cell.corruption, z, severity=cell.severity)
        rows += [x for x in r if x["metric"] != "top1_acc"]
        per.append(p)
        errors.setdefault(cell.corruption, {})[cell.severity] = error(z["correct"])
    n = max((len(p) for p in per), default=0)
    rows += tree_means(ctx, task, names, errors, n)
    info = {"source": f"official {what}: {root}", "layout": source, "cells": len(cells),
            "preprocessing": "files as shipped (224 x 224), no resizing",
            "normaliser": "none published for this set: mean top-1 error, no CE / mCE",
            "skipped_unreadable": {k: v for k, v in skipped.items() if v}}
    if unknown:
        info["ignored_folders"] = unknown
        log.warning("%s: %d folder(s) that are not %s corruptions ignored: %s", root, len(unknown), what,
                    ", ".join(unknown[:5]))
    return TaskResult(rows, per, {task: info})
