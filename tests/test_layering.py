"""Imports point one way (DESIGN.md, Layering): the harness never imports training, data knows nothing of its
consumers, and reports read saved results without importing models, training or the harness."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "nsbench"

# package (relative to nsbench) -> modules it must never import (prefixes, relative to nsbench)
FORBIDDEN = {
    "bench": ["training"],
    "data": ["training", "bench"],
    "report": ["models", "training", "bench", "checkpoint"],
}


def imported_modules(path: Path) -> set[str]:
    """Every module an nsbench source file imports (any depth, relative imports resolved), as dotted names."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def violations() -> list[str]:
    bad = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((PKG / layer).rglob("*.py")):
            for mod in imported_modules(path):
                for b in banned:
                    if mod == f"nsbench.{b}" or mod.startswith(f"nsbench.{b}."):
                        bad.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    return bad


def test_imports_point_one_way():
    assert violations() == []


def test_the_checker_sees_relative_nested_and_absolute_imports(tmp_path, monkeypatch):
    fake = tmp_path / "nsbench"
    (fake / "bench" / "tasks").mkdir(parents=True)
    (fake / "data").mkdir()
    (fake / "report").mkdir()
    (fake / "bench" / "tasks" / "x.py").write_text("def f():\n    from ...training.fit import train_stage\n")
    (fake / "data" / "y.py").write_text("import nsbench.bench.api\n")
    (fake / "report" / "z.py").write_text("from .. import models\nfrom ..schema import COLUMNS\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    found = violations()
    assert any("x.py imports nsbench.training.fit" in v for v in found)
    assert any("y.py imports nsbench.bench.api" in v for v in found)
    assert any("z.py imports nsbench.models" in v for v in found)
    assert not any("schema" in v for v in found)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_exists(layer):
    assert list((PKG / layer).rglob("*.py")), f"nsbench/{layer} has no modules to check"
