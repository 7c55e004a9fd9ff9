"""attacks: any torchattacks attack by name, when torchattacks is importable.

    attacks: [{name: torchattacks:AutoAttack, eps_255: 4}, {name: torchattacks:APGD, eps_255: 4, kwargs: {loss: ce}}]

Each attack runs on the [0, 1] images of the evaluation split against the model as nsbench wraps it (normalisation
inside the model), so torchattacks sees real pixels and clips to [0, 1]; its own normalisation hook is never set.
eps is given in grey levels (`eps_255`, as fgsm.eps_255) or as a fraction (`eps`); attacks without an eps (DeepFool,
CW, ...) take neither. nsbench fills `n_classes` (AutoAttack, APGDT, FAB, ... default to 10) and `seed` (the suite's)
where the attack's constructor has them and the entry does not. Rows: top-1 accuracy and calibration under each
attack, task `attacks`, condition the attack's name (with its kwargs when given).

torchattacks is not an nsbench dependency (its requests~=2.25.1 pin has published advisories): install it without
its dependencies (`pip install --no-deps torchattacks==3.5.1`, README). The in-house FGSM / PGD (task `fgsm`) stay
the default attacks.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ...config import check_range
from ...utils import NsbenchError
from .. import calibration_rows
from ..attacks import check_unit_range
from ..metrics import accuracy
from ..registry import TaskResult, register

PREFIX = "torchattacks:"
INSTALL = "pip install --no-deps torchattacks==3.5.1 (its requests pin is skipped on purpose; see the README)"


@dataclass
class AttackSpec:
    name: str = ""  # torchattacks:NAME, NAME a class of torchattacks (AutoAttack, APGD, Square, CW, DeepFool, ...)
    eps_255: float | None = None  # grey levels; or eps (a fraction of the [0, 1] range); neither for eps-free attacks
    eps: float | None = None
    kwargs: dict = field(default_factory=dict)  # passed to the attack's constructor


@dataclass
class AttacksTask:
    enabled: bool = False
    limit: int | None = 500  # images of the evaluation split (seeded subset)
    batch_size: int = 100
    run: list[AttackSpec] = field(default_factory=list)


def torchattacks_module():
    try:
        import torchattacks
    except ImportError as e:
        raise NsbenchError(f"attacks: torchattacks is not importable ({e}); {INSTALL}") from None
    return torchattacks


def attack_class(name: str):
    if not name.startswith(PREFIX):
        raise NsbenchError(f"attacks: {name!r}: name a torchattacks attack as torchattacks:NAME (the in-house FGSM/PGD "
                           f"are the fgsm task)")
    ta = torchattacks_module()
    cls = getattr(ta, name[len(PREFIX):], None)
    if not (inspect.isclass(cls) and issubclass(cls, ta.attack.Attack)):
        valid = sorted(n for n in getattr(ta, "__all__", []) if inspect.isclass(getattr(ta, n, None)))
        raise NsbenchError(f"attacks: unknown torchattacks attack {name[len(PREFIX):]!r}; valid: {', '.join(valid)}")
    return cls


def eps_of(a: AttackSpec) -> float | None:
    """eps as a fraction of [0, 1]; None for an attack given none."""
    if a.eps_255 is not None and a.eps is not None:
        raise NsbenchError(f"attacks: {a.name}: give eps_255 (grey levels) or eps (fraction), not both")
    return a.eps_255 / 255.0 if a.eps_255 is not None else a.eps


def validate(t: AttacksTask) -> None:
    check_range("attacks.limit", t.limit, lo=1, optional=True)
    check_range("attacks.batch_size", t.batch_size, lo=1)
    if not t.run:
        raise NsbenchError("attacks.run: list at least one attack (attacks: [{name: torchattacks:APGD, eps_255: 4}])")
    for a in t.run:
        cls = attack_class(a.name)
        eps = eps_of(a)
        if eps is not None:
            check_range(f"attacks: {a.name}: eps", eps, lo=0, hi=1)
        params = inspect.signature(cls.__init__).parameters
        if eps is not None and "eps" not in params:
            raise NsbenchError(f"attacks: {a.name} takes no eps; drop eps_255 / eps")
        bad = [k for k in a.kwargs if k not in params or k in ("self", "model")]
        if bad:
            raise NsbenchError(f"attacks: {a.name}: unknown argument(s) {', '.join(bad)}; valid: "
                               f"{', '.join(k for k in params if k not in ('self', 'model'))}")
        for k, v in a.kwargs.items():
            _check_kwarg(a.name, k, v, params[k].default)


def _check_kwarg(name: str, key: str, value, default) -> None:
    """An attack argument of the type its default has (a number where the default is a number: torchattacks would
    fail deep inside the attack, or compute NaN images from a NaN step), finite."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return  # no typed default (None, a string, a tuple): torchattacks decides
    if not ok:
        raise NsbenchError(f"attacks: {name}: {key} must be {type(default).__name__} like its default "
                           f"({default!r}), got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise NsbenchError(f"attacks: {name}: {key} must be finite, got {value!r}")


def build(cls, model: torch.nn.Module, a: AttackSpec, n_classes: int, seed: int, device: torch.device | None = None):
    params = inspect.signature(cls.__init__).parameters
    kw = dict(a.kwargs)
    eps = eps_of(a)
    if eps is not None:
        kw["eps"] = eps
    if "n_classes" in params and "n_classes" not in kw:
        kw["n_classes"] = n_classes
    if "seed" in params and "seed" not in kw:
        kw["seed"] = seed
    atk = cls(model, **kw)
    atk.set_model_training_mode(model_training=False)  # eval mode: dropout off, BN running statistics
    if device is not None:  # torchattacks guesses it from the parameters; a parameter-free model has none
        atk.set_device(device)
    return atk


def condition(a: AttackSpec) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in sorted(a.kwargs.items()))
    return f"{a.name}({extra})" if extra else a.name


@register("attacks", config=AttacksTask, order=5, validate=validate)
def run(ctx, t: AttacksTask, norm) -> TaskResult:
    src = ctx.source
    idx = ctx.pick(len(src), t.limit)
    model = ctx.model
    rows, per, info = [], [], []
    for a in t.run:
        cls = attack_class(a.name)
        eps = eps_of(a)

        def local(part, a=a, cls=cls):
            out = {k: [np.zeros(0)] for k in ("pred", "index", "label", *calibration_rows.PER_IMAGE)}
            atk = build(cls, model, a, len(ctx.em.classes), ctx.suite.seed, ctx.device)
            for x, y, i, _ in ctx.batches(src, part, batch_size=t.batch_size):
                if len(y) == 0:
                    continue
                x, y = x.to(ctx.device), y.to(ctx.device)
                check_unit_range(x)
                with torch.no_grad():  # a model that outputs NaN is refused before an attack differentiates it
                    ctx.finite(model(x))
                torch.manual_seed(ctx.suite.seed)  # attacks that draw from torch's generator repeat
                adv = atk(x, y)
                bad = int((~torch.isfinite(adv)).flatten(1).any(1).sum())
                if bad:  # never scored: a NaN image is "wrong" by chance or "right" by argmax of NaNs
                    raise NsbenchError(f"{a.name}: the attack returned non-finite images (NaN or inf) for {bad} of "
                                       f"{len(adv)} images; check its parameters ({condition(a)})")
                with torch.no_grad():
                    z = calibration_rows.per_image(ctx.finite(model(adv)).float().cpu().numpy(), y.cpu().numpy())
                cols = {"pred": z["pred"], "index": i.numpy(), "label": y.cpu().numpy(), **calibration_rows.columns(z)}
                for k, v in cols.items():
                    out[k].append(v)
            return {k: np.concatenate(v) for k, v in out.items()}

        key = f"{src.name}|{src.fingerprint()}|{condition(a)}|{eps}|{t.batch_size}|{idx.tolist()}"
        z = ctx.cell("attacks", key, lambda local=local: ctx.sharded(idx, local))
        correct = z["pred"].astype(np.int64) == z["label"].astype(np.int64)
        eps_255 = None if eps is None else float(eps * 255)
        cond = condition(a)
        rows.append(ctx.row("attacks", cond, "top1_acc", 100 * accuracy(correct), len(correct), eps_255=eps_255))
        rows += calibration_rows.rows(ctx, "attacks", cond, {**z, "correct": correct}, eps_255=eps_255)
        per.append(pd.DataFrame({"task": "attacks", "condition": cond, "severity": 0, "eps_255": eps_255 or 0.0,
                                 "image": z["index"].astype(np.int64), "correct": correct,
                                 **calibration_rows.columns(z)}))
        info.append({"name": a.name, "eps": eps, "eps_255": eps_255, "kwargs": dict(a.kwargs), "n": int(len(correct))})
    ta = torchattacks_module()
    return TaskResult(rows, per, {"attacks": {"library": f"torchattacks {getattr(ta, '__version__', '?')}",
                                              "inputs": "[0, 1], normalisation inside the model", "run": info}})
