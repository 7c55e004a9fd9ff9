"""Where the denominators of CE, FR and T5D come from, chosen per set and per setting.

The published AlexNet tables hold only where they were measured: the official ImageNet-C set (Hendrycks &
Dietterich 2019, table in hendrycks/robustness README) and the official ImageNet-P set at difficulty 1 (appendix
E; the `_2`/`_3` noise sets have no published AlexNet numbers). Everywhere else the normaliser is a model scored on
the very same images (the run's iteration-0 teacher by default, or a checkpoint the user names), or nothing; the
choice is recorded beside every number.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..runs import checkpoint as run_checkpoint
from .eval_model import EvalModel, load_eval_model

log = logging.getLogger(__name__)

ALEXNET = "AlexNet (published)"


@dataclass(frozen=True)
class Choice:
    kind: str  # alexnet | model | none
    name: str | None  # what the results' `normaliser` column says
    why: str  # one line: why this normaliser for this set


class Normaliser:
    def __init__(self, spec: str, model: EvalModel | None = None):
        self.spec, self.model = spec, model  # spec: auto | alexnet | none | model
        self._stats: dict[str, object] = {}
        self._ctx = None
        self.choices: dict[str, dict] = {}

    @property
    def model_name(self) -> str | None:
        return f"{self.model.label} ({self.model.sha256[:12]})" if self.model else None

    def choose(self, task: str, *, alexnet_holds: bool, setting: str) -> Choice:
        """The normaliser for one task's set; `alexnet_holds` when the set and setting are those of the published
        AlexNet table."""
        if self.spec == "none":
            c = Choice("none", None, "no normaliser requested")
        elif self.spec in ("auto", "alexnet") and alexnet_holds:
            c = Choice("alexnet", ALEXNET, f"official set, {setting}: the published AlexNet table applies")
        elif self.spec == "alexnet":
            log.warning("%s: AlexNet's published numbers do not cover %s; reporting unnormalised errors only", task, setting)
            c = Choice("none", None, f"AlexNet's published table does not cover {setting}")
        elif self.model is not None:
            c = Choice("model", self.model_name, f"{self.model.label} scored on the same images ({setting})")
        else:
            c = Choice("none", None, f"no published table for {setting} and no baseline model found")
        self.choices[task] = {"kind": c.kind, "name": c.name, "why": c.why}
        return c

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self._overall_kind(), "name": self._overall_name(),
                "sha256": self.model.sha256 if self.model else None, "per_task": self.choices}

    def _overall_kind(self) -> str:
        kinds = {c["kind"] for c in self.choices.values()}
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else self.spec)

    def _overall_name(self) -> str | None:
        names = {c["name"] for c in self.choices.values()}
        return names.pop() if len(names) == 1 else (None if not names else "per task")

    def reference(self, ctx, key: str, compute: Callable):
        """`compute(reference_context)` for the normalising model, once per key; the evaluated model is its own
        reference when it is that model."""
        if self.model is None:
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


def resolve_normaliser(spec: str, em: EvalModel, suite=None) -> Normaliser:
    """auto / alexnet: AlexNet where its table holds, else the run's iteration-0 teacher (found via the
    checkpoint's lineage) where there is one; none; or PATH: that checkpoint scored on the same sets."""
    if spec == "none":
        return Normaliser("none")
    if spec not in ("auto", "alexnet"):
        return Normaliser("model", load_eval_model(spec))
    root = lineage_root(em) if em.path is not None and em.meta.get("iteration") is not None else None
    return Normaliser(spec, root)


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
