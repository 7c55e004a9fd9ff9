"""Imports point one way (DESIGN.md, Layering):

    cli/commands -> study -> api -> training, bench, report (, timm_export) -> models, checkpoint, data, config (, ...)
    -> schema, runs, utils (, reference)

The harness (bench) never imports training, training never imports bench or report, data knows nothing of its
consumers (training, models, bench), report reads saved results only (schema, runs, utils and the published
reference numbers), and no two modules import each other, directly or round a longer loop.

And no function in the package takes more than ten parameters."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "nsbench"

# The bottom layer: the results schema, the run-folder layout, helpers, and the published reference numbers
# (constants from papers, keyed by name, that reports compare against), and the calibration arithmetic (ECE, NLL,
# Brier) that the harness computes and the report bootstraps with one binning.
BASE = {"schema", "runs", "utils", "reference", "calibration"}
# The middle layer: what models, checkpoints, data and configs are, and the machinery every layer above shares.
CORE = {"models", "checkpoint", "data", "config", "distributed", "lock", "resources", "tensorboard"}
# Every part of nsbench (a top-level module or package) -> the parts it may import. A new part must be placed here.
ALLOWED = {
    "__main__": {"cli"},
    "__init__": {"api"},  # `nsbench.evaluate`, imported lazily
    "cli": {"__init__", "commands"} | CORE | BASE,  # __init__: the version
    "commands": {"study", "api", "training", "bench", "report", "timm_export"} | CORE | BASE,
    "study": {"api", "training", "bench", "report"} | CORE | BASE,
    "api": {"training", "bench"} | CORE | BASE,  # the one place that hands bench the -A reference trainer
    "training": CORE | BASE,  # never bench or report
    "bench": CORE | BASE,  # never training: a built set that needs trained models gets the trainer passed in
    "timm_export": CORE | BASE,
    "report": BASE,  # saved results only: never data, models, checkpoint, training or bench
    "models": BASE,
    "checkpoint": {"models"} | BASE,
    "config": {"data"} | BASE,  # DataConfig validates source names
    "data": BASE,  # knows nothing of its consumers: no training, models or bench
    "distributed": BASE,
    "lock": BASE,
    "tensorboard": {"distributed"} | BASE,  # the optional training-curve writer (runtime.tensorboard)
    "resources": BASE,
    "schema": {"utils"},
    "runs": {"utils"},
    "reference": {"utils"},
    "calibration": set(),
    "utils": set(),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _part(module: str) -> str:
    """nsbench.training.stage -> training; nsbench -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module that defines `name`: itself, or its longest dotted prefix that is a module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def dependencies(path: Path, modules: dict[str, Path]) -> set[str]:
    """The nsbench modules a source file imports, at any depth (an import inside a function is still a dependency),
    relative imports resolved. `from PKG import x` depends on PKG.x when that is a module, else on PKG (a name it
    defines): a package's submodules importing each other never loop through its __init__."""
    package = list(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {_known(a.name, modules) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else _known(base, modules))
    out.discard(None)
    out.discard(_module_name(path))
    return out


def violations() -> list[str]:
    """Imports that the table forbids, and parts of nsbench the table does not place."""
    modules, bad = _modules(), []
    for module, path in modules.items():
        part = _part(module)
        if part not in ALLOWED:
            bad.append(f"{path.relative_to(PKG.parent)}: nsbench.{part} has no place in the layering table")
            continue
        for target in sorted(dependencies(path, modules)):
            other = _part(target)
            if other != part and other not in ALLOWED[part]:
                bad.append(f"{path.relative_to(PKG.parent)} imports {target}")
    return bad


def cycles() -> list[list[str]]:
    """Groups of modules that import each other (strongly connected components of more than one module), with
    function-level imports counted: an import inside a function is still a dependency."""
    modules = _modules()
    graph = {m: dependencies(p, modules) for m, p in modules.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_imports_point_one_way():
    assert violations() == []


def test_no_two_modules_import_each_other():
    assert cycles() == []


def test_the_checker_sees_relative_nested_and_absolute_imports(tmp_path, monkeypatch):
    fake = tmp_path / "nsbench"
    for part in ("bench/tasks", "data", "report", "training"):
        (fake / part).mkdir(parents=True)
        (fake / part / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    for name in ("schema", "models", "utils"):
        (fake / f"{name}.py").write_text("")
    (fake / "bench" / "tasks" / "x.py").write_text("def f():\n    from ...training.stage import train_stage\n")
    (fake / "training" / "stage.py").write_text("")
    (fake / "data" / "y.py").write_text("import nsbench.bench.tasks.x\n")
    (fake / "report" / "z.py").write_text("from .. import models\nfrom ..schema import COLUMNS\nfrom .. import utils\n")
    (fake / "newpart.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    found = violations()
    assert any("x.py imports nsbench.training.stage" in v for v in found)
    assert any("y.py imports nsbench.bench.tasks.x" in v for v in found)
    assert any("z.py imports nsbench.models" in v for v in found)
    assert not any("schema" in v or "utils" in v for v in found)
    assert any("nsbench.newpart has no place" in v for v in found)


def test_the_cycle_finder_sees_loops_through_function_level_imports(tmp_path, monkeypatch):
    fake = tmp_path / "nsbench"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("from .a import A\n")
    (fake / "data" / "a.py").write_text("from .b import B\nA = 1\n")
    (fake / "data" / "b.py").write_text("def f():\n    from .c import C\nB = 1\n")
    (fake / "data" / "c.py").write_text("from . import a\nC = 1\n")
    (fake / "data" / "d.py").write_text("from . import a\n")  # a package's submodule, not a loop through __init__
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert cycles() == [["nsbench.data.a", "nsbench.data.b", "nsbench.data.c"]]


@pytest.mark.parametrize("part", ["bench", "data", "report", "training", "study", "commands"])
def test_each_layer_exists(part):
    assert list((PKG / part).rglob("*.py")), f"nsbench/{part} has no modules to check"


def test_no_function_in_the_package_takes_more_than_ten_parameters():
    wide = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)] + [bool(a.vararg), bool(a.kwarg)]
                n = len([x for x in names if x and x not in ("self", "cls")])
                if n > 10:
                    wide.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n})")
    assert not wide, "\n".join(wide)
