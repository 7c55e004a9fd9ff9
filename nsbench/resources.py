"""Shipped recipes, studies and suites, found by name: a path if one exists, else training/NAME.yaml,
training/studies/NAME.yaml or suites/NAME.yaml.

In a source checkout they are the top-level `training/` and `suites/` folders; in a wheel they are packaged
under `nsbench/_shipped/`.
"""
from __future__ import annotations

from pathlib import Path

from .utils import NsbenchError

_PKG = Path(__file__).resolve().parent
KINDS = {"recipe": "training", "study": "training/studies", "suite": "suites"}


def shipped_dir(kind: str) -> Path:
    folder = KINDS[kind]
    for d in (_PKG / "_shipped" / folder, _PKG.parent / folder):
        if d.is_dir():
            return d
    raise NsbenchError(f"no shipped {folder}/ folder found next to the nsbench package")


def list_shipped(kind: str) -> list[Path]:
    return sorted(shipped_dir(kind).glob("*.yaml"))


def resolve(kind: str, name: str) -> Path:
    p = Path(name).expanduser()
    if p.is_file():
        return p
    candidate = shipped_dir(kind) / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    names = ", ".join(x.stem for x in list_shipped(kind))
    raise NsbenchError(f"{kind} {name!r}: no such file and no shipped {kind} of that name; shipped: {names}")


def headline(path: Path) -> str:
    """The first comment line of a YAML file (recipes are headed by the command that runs them)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
