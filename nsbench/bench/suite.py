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
    unresolved = [(where, v) for where, v, on in [
        ("data.source", cfg.data.source, True), ("corruptions.root", cfg.corruptions.root, cfg.corruptions.enabled),
        ("perturbations.root", cfg.perturbations.root, cfg.perturbations.enabled),
        ("natural_adversarial.root", cfg.natural_adversarial.root, cfg.natural_adversarial.enabled)]
        if on and isinstance(v, str) and _ENV.search(v)]
    if unresolved:
        where, v = unresolved[0]
        var = _ENV.search(v).group(1)
        raise NsbenchError(f"{path}: {where} needs ${var} set (or override {where}=PATH, or disable the task)")
    try:
        validate_suite(cfg)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None
    return cfg


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
    for name, kind in task_kinds().items():
        if kind.validate is not None and getattr(cfg, name).enabled:
            kind.validate(getattr(cfg, name))
