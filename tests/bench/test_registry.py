"""The task registry (bench/registry.py): a task kind is one module under nsbench/bench/tasks/ that registers itself
(adding a task is adding one file); kinds come back in suite order; a name registered by two different functions
is refused."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from nsbench.bench import registry


@dataclass
class Section:
    enabled: bool = True


def run_a(ctx, cfg, norm):
    return registry.TaskResult(rows=[])


def run_b(ctx, cfg, norm):
    return registry.TaskResult(rows=[])


@pytest.fixture
def own_registry(monkeypatch):
    """The shipped kinds loaded, then a private copy of the registry for the test to add to."""
    registry.task_kinds()
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))


def test_kinds_come_back_in_suite_order(own_registry):
    registry.register("zz_last", config=Section, order=1000)(run_a)
    registry.register("aa_first", config=Section, order=-1)(run_b)
    names = list(registry.task_kinds())
    assert names[0] == "aa_first" and names[-1] == "zz_last"
    assert names[1] == "clean"  # order 0 among the shipped kinds


def test_a_name_registered_by_two_functions_is_refused_the_same_function_again_is_not(own_registry):
    registry.register("mine", config=Section, order=50)(run_a)
    registry.register("mine", config=Section, order=50)(run_a)  # the module imported again
    with pytest.raises(ValueError, match="^task 'mine' registered twice$"):
        registry.register("mine", config=Section, order=50)(run_b)
    with pytest.raises(ValueError, match="^task 'clean' registered twice$"):
        registry.register("clean", config=Section, order=0)(run_b)
    assert registry.task_kinds()["mine"].run is run_a


def test_every_task_module_registers_itself_on_first_use():
    """In a fresh process nothing but the registry is imported: task_kinds() finds every module of bench/tasks/."""
    code = "from nsbench.bench.registry import task_kinds; print(' '.join(task_kinds()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split()[:5] == ["clean", "corruptions", "perturbations", "natural_adversarial", "fgsm"]
    assert {"attacks", "imagenet_v2", "imagenet_sketch", "imagenet_c_bar", "imagenet_3dcc"} <= set(out.stdout.split())
