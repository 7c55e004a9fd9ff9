"""EvalContext: one model, one suite, one device, and the one way the harness gets predictions from them.

Tasks receive a context and ask it for logits (of a batch tensor or of a uint8 image array), for the evaluation
source, for a cached cell, or for a set built once on rank 0; under torch.distributed it shards and gathers.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .. import distributed
from .. import schema
from ..calibration import NLL_DEFINITION
from ..data import open_source
from ..data.loaders import auto_workers, iterate_clean, stack_uint8, to_device
from ..data.sources import UnreadableImage
from ..data.splits import subsample
from ..data.transforms import IMAGENET_CROP_PCT, INTERPOLATION
from ..lock import run_lock
from ..models import padded_forward
from ..utils import NsbenchError, atomic_path
from . import cache
from . import metrics
from .eval_model import EvalModel
from .suite import unresolved

log = logging.getLogger(__name__)
NLL_TAG = "nll_definition"  # saved next to a cached cell's per-image nll: the definition it was computed under


class ClassCountMismatch(NsbenchError):
    """A bare class count that the dataset cannot match: refused before any task runs (bench/api.py)."""


def adopt_class_order(src, n: int) -> list[str]:
    """A model given only its class count (`--num-classes N`) predicts the dataset's classes in the dataset's own
    order: torchvision ImageFolder's (sorted folder names) for folders, the label ids for unnamed sources. A
    dataset that names its classes must then have exactly N, since any other count would shift every index."""
    from ..data.sources import ParquetSource

    if isinstance(src, ParquetSource) or not getattr(src, "named", True):  # label ids only (Parquet, HF without names): ids below N fit
        known = src.labels[src.labels >= 0]
        if len(known) and int(known.max()) >= n:
            raise ClassCountMismatch(f"{src.name}: labels go up to {int(known.max())} but --num-classes {n}")
        src.classes = [str(i) for i in range(n)]
        return list(src.classes)
    if len(src.classes) != n:
        raise ClassCountMismatch(f"{src.name}: {len(src.classes)} classes ({', '.join(map(str, src.classes[:4]))}"
                           f"{', ...' if len(src.classes) > 4 else ''}) but --num-classes {n}; outputs are matched "
                           f"to classes in sorted folder order only when the counts agree: pass --classes FILE "
                           f"(one name per line, in the model's output order) instead")
    return list(src.classes)


def default_workers() -> int:
    """Loader processes: `data.num_workers: auto` (loaders.auto_workers)."""
    return auto_workers("auto")


@dataclass
class EvalContext:
    em: EvalModel
    suite: "object"  # SuiteConfig
    cache: Path
    device: torch.device
    limit: int | None = None
    workers: int | None = None  # loader and set-building processes (None: default_workers / all cores)
    batch_size: int | None = None  # None: the suite's
    reference_trainer: Callable | None = None  # trains -A reference classifiers (bench never imports training)
    _source: object = field(default=None, repr=False)
    _model: torch.nn.Module | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ what is being scored, and on what
    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            m = self.em.model.to(self.device).eval()
            if self.device.type == "cuda":
                m = m.to(memory_format=torch.channels_last)
            self._model = m
        return self._model

    @property
    def bs(self) -> int:
        return self.batch_size or self.suite.batch_size

    @property
    def loader_workers(self) -> int:
        return default_workers() if self.workers is None else self.workers

    @property
    def precision(self) -> str:
        """How the harness scores: "fp32" unless the suite asks for bf16 ("bf16 autocast"). Attacks always take
        their gradients in fp32."""
        return "bf16 autocast" if self.suite.precision == "bf16" else "fp32"

    @contextlib.contextmanager
    def numerics(self):
        """Scoring in true fp32 on GPUs: PyTorch lets cuDNN convolutions use TF32 (a 10-bit mantissa) by default,
        so both TF32 switches are off while a suite runs, and restored after."""
        if self.device.type != "cuda":
            yield
            return
        conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm

    @property
    def cfg_data(self) -> dict:
        return (self.em.meta.get("config") or {}).get("data", {})

    @property
    def source_spec(self) -> str | None:
        """The evaluation data: the suite's data.source, else the model's own dataset; None when neither is known, or
        when the suite names it by a variable that is not set (its tasks are skipped: suite.unset_tasks)."""
        spec = self.suite.data.source or (self.em.dataset or {}).get("source") or self.cfg_data.get("source")
        return None if unresolved(spec) else spec

    @property
    def split(self) -> str:
        return self.suite.data.split or self.cfg_data.get("val_split") or "test"

    @property
    def size(self) -> int:
        return self.suite.data.image_size or self.em.input_size

    @property
    def source(self):
        if self._source is None:
            self._source = self.open(self.split)
        return self._source

    def open(self, split: str):
        if not self.source_spec:
            raise NsbenchError(f"{self.em.label}: no dataset known for this model; set data.source in the suite "
                               f"(e.g. data.source=imagenet:/data/imagenet)")
        by_count = self.em.meta.get("classes_from") == "count"
        src = open_source(self.source_spec, split, self.cfg_data.get("image_column", "image"),
                          self.cfg_data.get("label_column", "label"), classes=None if by_count else self.em.classes)
        if by_count:
            self.em.classes = adopt_class_order(src, len(self.em.classes))
        return src

    def check_data(self) -> None:
        """Open the evaluation data and match it to the model before any work starts: a missing folder, classes that
        differ from the model's, an unreadable Parquet or HF source, or a source none of whose images decode is one
        NsbenchError here, not a `failed` row in every task. No dataset known: the tasks say so themselves."""
        if not self.source_spec:
            return
        src = self.source
        if len(src) == 0:
            raise NsbenchError(f"{src.name}: holds no images")
        first = None
        for i in range(len(src)):  # stops at the first readable image: one read on healthy data
            try:
                src.load(i)
                return
            except UnreadableImage as e:
                first = first or str(e)
        raise NsbenchError(f"{src.name}: none of its {len(src)} images can be read (first: {first})")

    def check_outputs(self) -> None:
        """One forward pass of two blank images before any work: a model whose output is not [images, classes] (3
        outputs for 4 class names, a tuple) is one NsbenchError naming it, not an IndexError deep in a task."""
        x = torch.zeros(2, 3, self.size, self.size, device=self.device)
        with torch.no_grad():
            out = self.model(x)
        n = len(self.em.classes)
        if not isinstance(out, torch.Tensor):
            raise NsbenchError(f"{self.em.label}: the model returns a {type(out).__name__}, expected a tensor of "
                               f"logits [images, {n}]")
        if out.ndim != 2 or out.shape != (2, n):
            raise NsbenchError(f"{self.em.label}: the model gives outputs of shape {tuple(out.shape)} for 2 images, "
                               f"expected [2, {n}]: one logit per class name ({n} given)")

    def for_model(self, em: EvalModel) -> "EvalContext":
        """The same settings for another model (a normaliser), sharing the opened dataset."""
        return replace(self, em=em, _model=None, _source=self._source)

    def cap(self, n: int | None) -> int | None:
        if self.limit is None:
            return n
        return self.limit if n is None else min(n, self.limit)

    def pick(self, n: int, limit: int | None = None) -> np.ndarray:
        """The items of a set of `n` a task scores: at most `limit` (and the run's --limit), drawn with the suite's
        seed by the one subset rule (data.splits.subsample), so every model sees the same items."""
        return subsample(n, self.cap(limit), self.suite.seed)

    def row(self, task: str, condition: str, metric: str, value, n: int, *, precision: str | None = None,
            **kw) -> dict:
        """One result row; when it was scored in anything but fp32 (`precision`, default the context's), its note
        says so."""
        r = schema.row(model=self.em.label, suite=self.suite.name, task=task, condition=condition, metric=metric,
                       value=value, n=n, **kw)
        precision = precision or self.precision
        if precision != "fp32":
            why = r["note"] or ("undefined" if r["value"] is None and metric != "failed" else "")
            r["note"] = "; ".join(x for x in (why, f"scored under {precision}") if x)
        return r

    def mean_row(self, task: str, metric: str, vals: dict, members: tuple, what: str, n: int, *,
                 normaliser: str | None, extra: list[str] = ()) -> dict:
        """`metric` (mCE, relative mCE, mFR, mT5D) from the per-member ratios `vals` by its one definition,
        metrics.normalised_mean, when every member of the benchmark set is there with a defined value (and no `extra`
        restriction applies); otherwise `METRIC_partial`, the same mean over the defined ones, its members named in the
        note, and a warning."""
        defined = [v for v in vals.values() if v is not None]
        missing = [k for k in members if k not in vals]
        undefined = [k for k, v in vals.items() if v is None]
        if not missing and not undefined and not extra:
            return self.row(task, "all", metric, metrics.normalised_mean(defined), n, normaliser=normaliser)
        parts = [f"{len(defined)} of {len(members)} {what}"]
        parts += [f"missing: {', '.join(missing)}"] if missing else []
        parts += [f"undefined: {', '.join(undefined)}"] if undefined else []
        note = "partial: " + "; ".join([*parts, *extra])
        log.warning("%s: %s_partial is not %s (%s)", self.em.label, metric, metric, note)
        value = metrics.normalised_mean(defined) if defined else None
        return self.row(task, "all", f"{metric}_partial", value, n, normaliser=normaliser, note=note)

    # ------------------------------------------------------------------ predictions
    def autocast(self):
        """bf16 autocast only when the suite asks for it (on any device); fp32 otherwise."""
        if self.suite.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (float32, on the CPU) of a [0, 1] NCHW batch."""
        with self.autocast():
            return self.finite(padded_forward(self.model, x.to(self.device, non_blocking=True), self.bs).float().cpu())

    def finite(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits`, refused when any is NaN or inf: argmax over NaN picks class 0, so a diverged model would be
        scored as if it predicted (a model of all-NaN weights read as 30% top-1); the task fails with this reason."""
        bad = ~torch.isfinite(logits)
        if bad.any():
            rows = int(bad.reshape(len(logits), -1).any(1).sum()) if logits.ndim else 1
            raise NsbenchError(f"{self.em.label}: the model's outputs are not finite (NaN or inf) for {rows} of "
                               f"{len(logits) if logits.ndim else 1} images in a batch; a diverged model has no score")
        return logits

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits of uint8 NHWC images (any number), batched; under torch.distributed every rank scores a
        contiguous slice and the slices are gathered in order."""
        if distributed.is_dist():
            mine = self.logits_local(images[distributed.shard(len(images))])
            return np.concatenate(distributed.all_gather_objects(mine))
        return self.logits_local(images)

    def logits_local(self, images: np.ndarray) -> np.ndarray:
        # np.array copies: built sets are memory-mapped read-only, and torch warns on (and must never write to)
        # a tensor over read-only memory; one batch's copy is small
        batches = (stack_uint8(np.array(images[s : s + self.bs])) for s in range(0, len(images), self.bs))
        out = [self.forward(to_device(x, self.device)).numpy() for x in batches]
        return np.concatenate(out) if out else np.zeros((0, len(self.em.classes)), np.float32)

    @property
    def resize(self) -> dict:
        """How photos are resized and cropped: the suite's crop_pct / interpolation, or the model's own."""
        d, own = self.suite.data, self.em.meta.get("model", {})
        crop = d.crop_pct if d.crop_pct is not None else (own.get("crop_pct") or IMAGENET_CROP_PCT)
        interp = d.interpolation if d.interpolation != "model" else own.get("interpolation") or "bilinear"
        return {"crop_pct": float(crop), "interpolation": interp if interp in INTERPOLATION else "bicubic"}

    def batches(self, source, indices: np.ndarray, batch_size: int | None = None) -> Iterator:
        """Un-augmented (x, y, source index, n_skipped) batches of `source` at `indices`, in order."""
        yield from iterate_clean(source, indices, self.size, batch_size or self.bs, self.loader_workers, self.resize,
                                 device=self.device)

    # ------------------------------------------------------------------ sharding, caching, building
    def sharded(self, idx: np.ndarray, fn: Callable[[np.ndarray], dict]) -> dict[str, np.ndarray]:
        """`fn(idx_slice) -> dict of arrays` on this rank's share of `idx`, gathered and concatenated in order."""
        if not distributed.is_dist():
            return fn(idx)
        parts = distributed.all_gather_objects(fn(idx[distributed.shard(len(idx))]))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def build(self, fn: Callable):
        """Build a cached set on rank 0 while the others wait, then let every rank open it. Builds hold the cache's
        lock, so two evaluations on one cold cache build each set once: the second waits, then reuses it."""
        if distributed.is_dist():
            if distributed.is_main():
                self._locked(fn)
            distributed.barrier()
            return fn()
        return self._locked(fn)

    def _locked(self, fn: Callable):
        with run_lock(self.cache / "sets", what="building a robustness set", wait=True):
            return fn()

    def cell(self, task: str, key: str, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
        """Per-image outcomes of one cell, computed once per model and key and kept under the cache."""
        own = self.em.meta.get("model", {}).get("own_input_size", self.em.input_size)
        if self.size != own:  # the same weights scored at another size are another cell
            key = f"{key}|size={self.size}"
        # the precision is part of the key: cells scored under bf16 never stand in for fp32 ones (or back)
        path = self.cache / "cells" / self.em.sha256[:16] / task / f"{cache.key_of(f'{key}|{self.precision}')}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    kept = {k: z[k] for k in z.files}
            except Exception as e:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
                log.warning("%s: damaged cached cell (%s); recomputing", path, type(e).__name__)
            else:
                # per-image NLL written under another definition (calibration.NLL_DEFINITION) is scored again
                if "nll" not in kept or str(kept.pop(NLL_TAG, "")) == NLL_DEFINITION:
                    return kept
                log.info("%s: cached cell holds NLL of another definition; recomputing", path)
        arrays = compute()
        if distributed.is_main():
            tag = {NLL_TAG: np.asarray(NLL_DEFINITION)} if "nll" in arrays else {}
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays, **tag)
        return arrays
