"""Suite definitions: YAML files under suites/, parsed into typed dataclasses (unknown keys rejected). The
sections are those of the registered task kinds (bench/registry.py); each validates its own settings."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from ..config import build_config, load_yaml
from ..utils import NsbenchError
from .registry import task_kinds

PRECISIONS = ("fp32", "bf16")  # how models are scored (suite key `precision`, `nsbench eval --precision`)


@dataclass
class SuiteData:
    source: str | None = None  # None: the checkpoint's own dataset
    split: str | None = None  # None: the checkpoint's validation split
    image_size: int | None = None  # None: the checkpoint's input size
    # photos: resize the shorter side to floor(image_size / crop_pct), centre-crop (the official scripts' Resize(256)
    # + CenterCrop(224)); crop_pct null takes the model's own from timm's pretrained config
    crop_pct: float | None = 0.875
    interpolation: str = "bilinear"  # bilinear (the official scripts) | bicubic | nearest | model (the model's own)


def _suite_config() -> type:
    """SuiteConfig: the suite-wide settings plus one section per registered task kind (see bench/registry.py)."""
    kinds = task_kinds()
    fields = [("name", str, field(default="custom")), ("description", str, field(default="")),
              ("seed", int, field(default=0)), ("batch_size", int, field(default=500)),
              # auto | alexnet | none | PATH to a checkpoint (its errors normalise CE / FR / T5D)
              ("normaliser", str, field(default="auto")),
              # fp32 (the published tables and every reference pipeline) | bf16 (autocast: faster on GPUs, but it
              # flips some top-1s and every flip moves -P's flip rates); recorded in meta.json and each row's note
              ("precision", str, field(default="fp32")),
              ("data", SuiteData, field(default_factory=SuiteData))]
    fields += [(k.name, k.config, field(default_factory=k.config)) for k in kinds.values()]

    def tasks(self) -> list[str]:
        return [name for name in kinds if getattr(self, name).enabled]

    cls = make_dataclass("SuiteConfig", fields, namespace={"tasks": tasks})
    cls.__module__ = __name__
    return cls


SuiteConfig = _suite_config()


_ENV = re.compile(r"\$\{(\w+)\}")


def _expand(value):
    """${VAR} in string values expands from the environment; an unset variable is left as written and reported."""
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and _ENV.search(value):
        if any(m not in os.environ for m in _ENV.findall(value)):
            return value
        return _ENV.sub(lambda m: os.environ[m.group(1)], value)
    return value


def load_suite(path: str | Path, overrides: list[str] = ()) -> SuiteConfig:
    base = _expand(load_yaml(path))
    if isinstance(base, dict) and isinstance(base.get("attacks"), list):  # `attacks: [{name: ...}]` means attacks.run
        base["attacks"] = {"enabled": True, "run": base["attacks"]}
    try:
        cfg = build_config(SuiteConfig, base, overrides)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None
    try:
        validate_suite(cfg)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None
    return cfg


# tasks that score the evaluation data itself (data.source), and those that do when their root is not set (built sets)
READS_DATA = ("clean", "fgsm", "pgd", "attacks")
BUILT_WITHOUT_ROOT = ("corruptions", "perturbations", "natural_adversarial")


def unresolved(value) -> str | None:
    """The first environment variable a suite value still names (`${VAR}` unset when the suite was loaded)."""
    m = _ENV.search(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def unset_tasks(cfg) -> dict[str, str]:
    """{task: why it is skipped} for the enabled tasks whose data is named by an unset variable: a set's root (the
    official -C, -P, -A), or data.source for the tasks that score the evaluation data (clean, attacks, built sets).
    Each becomes a `skipped` row whose note gives the variable and the override to type; the rest of the suite runs."""
    out = {}
    source_var = unresolved(cfg.data.source)
    for name in cfg.tasks():
        root = getattr(getattr(cfg, name), "root", None) if name in BUILT_WITHOUT_ROOT else None
        var = unresolved(root)
        if var:
            out[name] = f"${var} is not set: set it, or {name}.root=PATH, or {name}.enabled=false"
        elif source_var and (name in READS_DATA or (name in BUILT_WITHOUT_ROOT and not root)):
            out[name] = (f"${source_var} is not set (data.source): set it, or data.source=SCHEME:PATH, or "
                         f"{name}.enabled=false")
    return out


def validate_suite(cfg) -> None:
    """Range checks of the suite-wide values, then each enabled task section's own validator; one-line
    NsbenchError naming the key."""
    from ..config import check_range

    check_range("batch_size", cfg.batch_size, lo=1)
    if cfg.precision not in PRECISIONS:
        raise NsbenchError(f"precision must be {' or '.join(PRECISIONS)}, got {cfg.precision!r}")
    check_range("data.image_size", cfg.data.image_size, lo=1, optional=True)
    check_range("data.crop_pct", cfg.data.crop_pct, lo=0, lo_open=True, hi=1, optional=True)
    if cfg.data.interpolation not in ("bilinear", "bicubic", "nearest", "model"):
        raise NsbenchError(f"data.interpolation must be bilinear, bicubic, nearest or model, got {cfg.data.interpolation!r}")
    skipped = unset_tasks(cfg)
    for name, kind in task_kinds().items():
        if kind.validate is not None and getattr(cfg, name).enabled and name not in skipped:
            kind.validate(getattr(cfg, name))
