"""Where CE / FR / T5D denominators come from (bench/normaliser.py): the per-task choice and the summary of it that
meta.json records, the normalising model's scores taken on the same images, and the lineage walk that finds a
run's iteration-0 teacher (docs/evaluation.md: "for built -C the run's iteration-0 teacher ..., else none")."""
from __future__ import annotations


import pytest
from torch import nn

from nsbench.bench.eval_model import EvalModel
from nsbench.bench.normaliser import ALEXNET, Normaliser, lineage_root, resolve_normaliser


def model(label: str, sha: str, meta=None, path=None) -> EvalModel:
    return EvalModel(nn.Identity(), label, sha * 64, ["a", "b"], 32, dict(meta or {}), path)


TEACHER = model("teacher", "t")


def test_one_kind_and_one_name_for_every_task_is_the_summary():
    n = Normaliser("auto", TEACHER)
    n.choose("corruptions", alexnet_holds=True, setting="ImageNet-C")
    n.choose("perturbations", alexnet_holds=True, setting="ImageNet-P difficulty 1")
    d = n.describe()
    assert (d["spec"], d["kind"], d["name"], d["sha256"]) == ("auto", "alexnet", ALEXNET, "t" * 64)


def test_different_normalisers_per_task_are_summarised_as_mixed_and_per_task():
    n = Normaliser("auto", TEACHER)
    n.choose("corruptions", alexnet_holds=True, setting="ImageNet-C")
    n.choose("perturbations", alexnet_holds=False, setting="a built -P set")
    d = n.describe()
    assert (d["kind"], d["name"]) == ("mixed", "per task")
    assert d["per_task"]["perturbations"] == {"kind": "model", "name": f"teacher ({'t' * 12})",
                                              "why": "teacher scored on the same images (a built -P set)"}


def test_no_task_chosen_yet_summarises_as_the_spec_and_no_name():
    d = Normaliser("alexnet").describe()
    assert (d["kind"], d["name"], d["sha256"], d["per_task"]) == ("alexnet", None, None, {})


def test_two_tasks_without_normaliser_have_no_name():
    n = Normaliser("none")
    n.choose("corruptions", alexnet_holds=True, setting="ImageNet-C")
    n.choose("perturbations", alexnet_holds=False, setting="a built -P set")
    assert (n.describe()["kind"], n.describe()["name"]) == ("none", None)


class Ctx:
    """An evaluation context: the model it scores and the context of another model on the same images."""

    def __init__(self, em, others=None):
        self.em, self.others = em, others or {}

    def for_model(self, em):
        return self.others[em.sha256]


def test_the_normalising_model_is_scored_in_its_own_context_once_per_key():
    student = model("student", "s")
    teacher_ctx = Ctx(TEACHER)
    ctx = Ctx(student, {TEACHER.sha256: teacher_ctx})
    n = Normaliser("model", TEACHER)
    calls = []
    score = lambda ref: calls.append(ref) or ref.em.label  # noqa: E731
    assert n.reference(ctx, "clean-err", score) == "teacher"
    assert n.reference(ctx, "clean-err", score) == "teacher"
    assert calls == [teacher_ctx]


def test_the_evaluated_model_normalising_itself_uses_its_own_context():
    ctx = Ctx(TEACHER)  # for_model would raise: there is no other context
    assert Normaliser("model", TEACHER).reference(ctx, "clean-err", lambda ref: ref) is ctx


@pytest.mark.parametrize("iteration", [0, 1])
def test_a_model_without_a_checkpoint_file_has_no_run_teacher(iteration):
    """An in-memory model (no file) has no run folder to walk, whatever its metadata says: no baseline model."""
    em = model("mine", "m", {"iteration": iteration}, path=None)
    n = resolve_normaliser("auto", em)
    assert n.model is None
    c = n.choose("corruptions", alexnet_holds=False, setting="a built -C set")
    assert (c.kind, c.name, c.why) == ("none", None, "no published table for a built -C set and no baseline model found")


def test_a_checkpoint_without_an_iteration_record_has_no_lineage(tmp_path):
    assert lineage_root(model("mine", "m", {}, path=tmp_path / "mine.pt")) is None
    assert lineage_root(model("mine", "m", {"iteration": 0}, path=tmp_path / "iter0.pt")).label == "mine"


def run_of_three(folder, *, wrong_parent: bool = False):
    """iter0.pt <- iter1.pt <- iter2.pt, each recording its parent's sha256 (as training writes them)."""
    import hashlib

    from nsbench.checkpoint import save_checkpoint
    from nsbench.models import ModelSpec, build_model

    spec = ModelSpec("test_resnet", num_classes=2, input_size=32)
    parent = None
    for k in range(3):
        path = folder / f"iter{k}.pt"
        save_checkpoint(path, build_model(spec), spec, classes=["a", "b"], iteration=k,
                        parent_sha256="0" * 64 if (wrong_parent and k == 2) else parent, config=None, metrics=None)
        parent = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256((folder / "iter0.pt").read_bytes()).hexdigest()


@pytest.mark.parametrize("student", ["iter1.pt", "iter2.pt"])
def test_a_students_normaliser_is_its_runs_iteration_0_teacher(tmp_path, student):
    from nsbench.bench.eval_model import load_eval_model

    teacher_sha = run_of_three(tmp_path)
    n = resolve_normaliser("auto", load_eval_model(str(tmp_path / student)))
    assert n.model is not None and n.model.sha256 == teacher_sha
    assert n.choose("corruptions", alexnet_holds=False, setting="a built -C set").kind == "model"


def test_a_broken_parent_hash_gives_no_teacher(tmp_path):
    from nsbench.bench.eval_model import load_eval_model

    run_of_three(tmp_path, wrong_parent=True)
    assert resolve_normaliser("auto", load_eval_model(str(tmp_path / "iter2.pt"))).model is None
