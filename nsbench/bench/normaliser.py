"""Where the denominators of CE, FR and T5D come from: the published AlexNet tables, a reference model scored on
the very same sets, or nothing (then only unnormalised errors are reported)."""
from __future__ import annotations

import logging
from typing import Callable

from ..runs import checkpoint as run_checkpoint
from .models import EvalModel, load_eval_model

log = logging.getLogger(__name__)


class Normaliser:
    def __init__(self, kind: str, model: EvalModel | None = None):
        self.kind, self.model = kind, model  # kind: alexnet | model | none
        self.name = {"alexnet": "AlexNet (published)", "none": None}.get(kind) or (
            f"{model.label} ({model.sha256[:12]})" if model else None)
        self._stats: dict[str, object] = {}
        self._ctx = None

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "sha256": self.model.sha256 if self.model else None}

    def reference(self, ctx, key: str, compute: Callable):
        """`compute(reference_context)` for the reference model, once per key (a task's statistics on its set);
        None unless this normaliser is a model. The evaluated model is its own reference when it is that model."""
        if self.kind != "model":
            return None
        if key not in self._stats:
            if self.model.sha256 == ctx.em.sha256:
                ref = ctx
            else:
                if self._ctx is None:  # one context for every task, so -C and -P share its opened dataset
                    self._ctx = ctx.for_model(self.model)
                ref = self._ctx
            self._stats[key] = compute(ref)
        return self._stats[key]


def resolve_normaliser(spec: str, em: EvalModel, suite) -> Normaliser:
    """auto: AlexNet for official ImageNet-C/-P; for built sets the run's iteration-0 teacher (via lineage)."""
    if spec in ("none", "alexnet"):
        return Normaliser(spec)
    if spec != "auto":
        return Normaliser("model", load_eval_model(spec))
    if suite.corruptions.root or suite.perturbations.root:
        return Normaliser("alexnet")
    if em.path is not None and em.meta.get("iteration") is not None:
        root = lineage_root(em)
        if root is not None:
            return Normaliser("model", root)
    log.warning("%s: no iteration-0 teacher found for normalising CE/FR; reporting unnormalised errors only", em.label)
    return Normaliser("none")


def lineage_root(em: EvalModel) -> EvalModel | None:
    """Walk the run's iter{k-1}.pt files beside the checkpoint, checking each parent hash, down to iteration 0."""
    cur = em
    while cur.meta.get("iteration", 0) > 0:
        k = cur.meta["iteration"]
        parent = run_checkpoint(cur.path.parent, k - 1)
        if not parent.exists():
            return None
        p = load_eval_model(str(parent))
        if p.sha256 != cur.meta.get("parent_sha256"):
            log.warning("%s: parent hash does not match %s; not using it as normaliser", cur.path, parent)
            return None
        cur = p
    return cur if cur.meta.get("iteration") == 0 else None
