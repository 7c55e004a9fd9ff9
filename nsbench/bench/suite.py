"""Suite definitions: YAML files under suites/, parsed into typed dataclasses (unknown keys rejected)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import build_config, load_yaml
from ..reference import C_BENCHMARK, C_VALIDATION, P_TEST
from ..utils import NsbenchError


@dataclass
class CleanTask:
    enabled: bool = True
    limit: int | None = None  # images of the evaluation split (None: all)


@dataclass
class CorruptionTask:
    enabled: bool = True
    limit: int | None = 1000  # images per (corruption, severity) cell for built sets
    corruptions: list[str] = field(default_factory=lambda: list(C_BENCHMARK + C_VALIDATION))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    root: str | None = None  # official ImageNet-C tree; None: build DATASET-C from the evaluation split


@dataclass
class PerturbationTask:
    enabled: bool = True
    limit: int | None = 200  # sequences per perturbation for built sets
    perturbations: list[str] = field(default_factory=lambda: list(P_TEST))
    difficulty: int = 1  # 1, 2 or 3 (official noise difficulties live in <name>_2 / <name>_3 folders)
    root: str | None = None  # official ImageNet-P tree; None: build DATASET-P


@dataclass
class ReferenceModel:
    arch: str = "test_resnet"
    seed: int = 0
    kwargs: dict = field(default_factory=dict)


@dataclass
class NaturalAdversarialTask:
    enabled: bool = True
    root: str | None = None  # official ImageNet-A (or -R) folder; None: build DATASET-A
    mask: str = "imagenet-a"  # imagenet-a | imagenet-r: the 200-class logit subset for official folders
    pool_split: str | None = None  # held-out pool for built sets (default: the evaluation split)
    pool_limit: int | None = None
    references: list[ReferenceModel] = field(default_factory=lambda: [ReferenceModel(seed=s) for s in (0, 1, 2)])
    ref_epochs: int = 2
    ref_train_limit: int | None = 20000  # training images for each reference model (seeded subset)
    ref_batch_size: int = 128
    ref_lr: float = 0.003


@dataclass
class FGSMTask:
    enabled: bool = True
    limit: int | None = 1000
    eps_255: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0, 16.0])
    attack: str = "fgsm"  # fgsm | pgd
    pgd_steps: int = 10
    pgd_alpha_255: float = 1.0


@dataclass
class SuiteData:
    source: str | None = None  # None: the checkpoint's own dataset
    split: str | None = None  # None: the checkpoint's validation split
    image_size: int | None = None  # None: the checkpoint's input size


@dataclass
class SuiteConfig:
    name: str = "custom"
    description: str = ""
    seed: int = 0
    batch_size: int = 500
    normaliser: str = "auto"  # auto | alexnet | none | PATH to a checkpoint (its errors normalise CE / FR / T5D)
    data: SuiteData = field(default_factory=SuiteData)
    clean: CleanTask = field(default_factory=CleanTask)
    corruptions: CorruptionTask = field(default_factory=CorruptionTask)
    perturbations: PerturbationTask = field(default_factory=PerturbationTask)
    natural_adversarial: NaturalAdversarialTask = field(default_factory=NaturalAdversarialTask)
    fgsm: FGSMTask = field(default_factory=FGSMTask)

    def tasks(self) -> list[str]:
        return [t for t in ("clean", "corruptions", "perturbations", "natural_adversarial", "fgsm")
                if getattr(self, t).enabled]


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
    for c in cfg.corruptions.corruptions:
        if c not in C_BENCHMARK + C_VALIDATION:
            raise NsbenchError(f"{path}: unknown corruption {c!r}; valid: {', '.join(C_BENCHMARK + C_VALIDATION)}")
    if any(s not in (1, 2, 3, 4, 5) for s in cfg.corruptions.severities):
        raise NsbenchError(f"{path}: severities must be within 1-5")
    if cfg.perturbations.difficulty not in (1, 2, 3):
        raise NsbenchError(f"{path}: perturbations.difficulty must be 1, 2 or 3")
    if cfg.natural_adversarial.mask not in ("imagenet-a", "imagenet-r"):
        raise NsbenchError(f"{path}: natural_adversarial.mask must be imagenet-a or imagenet-r")
    if cfg.fgsm.attack not in ("fgsm", "pgd"):
        raise NsbenchError(f"{path}: fgsm.attack must be fgsm or pgd")
    if any(e < 0 for e in cfg.fgsm.eps_255):
        raise NsbenchError(f"{path}: fgsm.eps_255 values must be >= 0")
    try:
        validate_suite(cfg)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None
    return cfg


def validate_suite(cfg: SuiteConfig) -> None:
    """Range checks of every suite value (counts, limits, eps, steps, names); one-line NsbenchError naming the key."""
    from ..config import check_range
    from ..reference import P_VALIDATION

    check_range("batch_size", cfg.batch_size, lo=1)
    check_range("data.image_size", cfg.data.image_size, lo=1, optional=True)
    check_range("clean.limit", cfg.clean.limit, lo=1, optional=True)
    c, p, a, f = cfg.corruptions, cfg.perturbations, cfg.natural_adversarial, cfg.fgsm
    check_range("corruptions.limit", c.limit, lo=1, optional=True)
    if c.enabled and (not c.corruptions or not c.severities):
        raise NsbenchError("corruptions: corruptions and severities must not be empty (or set corruptions.enabled=false)")
    check_range("perturbations.limit", p.limit, lo=1, optional=True)
    valid_p = tuple(P_TEST) + tuple(P_VALIDATION)
    for name in p.perturbations:
        if name not in valid_p:
            raise NsbenchError(f"perturbations.perturbations: unknown perturbation {name!r}; valid: {', '.join(valid_p)}")
        if name == "spatter" and p.enabled and p.root is None:
            raise NsbenchError("perturbations.perturbations: 'spatter' exists only in the official ImageNet-P "
                               "(set perturbations.root)")
    if p.enabled and not p.perturbations:
        raise NsbenchError("perturbations.perturbations: must not be empty (or set perturbations.enabled=false)")
    check_range("natural_adversarial.pool_limit", a.pool_limit, lo=1, optional=True)
    if a.enabled and a.root is None and not a.references:
        raise NsbenchError("natural_adversarial.references: building DATASET-A needs at least one reference model")
    check_range("natural_adversarial.ref_epochs", a.ref_epochs, lo=1)
    check_range("natural_adversarial.ref_train_limit", a.ref_train_limit, lo=1, optional=True)
    check_range("natural_adversarial.ref_batch_size", a.ref_batch_size, lo=1)
    check_range("natural_adversarial.ref_lr", a.ref_lr, lo=0, lo_open=True)
    check_range("fgsm.limit", f.limit, lo=1, optional=True)
    if f.enabled and not f.eps_255:
        raise NsbenchError("fgsm.eps_255: must list at least one epsilon (or set fgsm.enabled=false)")
    for e in f.eps_255:
        check_range("fgsm.eps_255", e, lo=0, hi=255)
    check_range("fgsm.pgd_steps", f.pgd_steps, lo=1)
    check_range("fgsm.pgd_alpha_255", f.pgd_alpha_255, lo=0, lo_open=True)
