"""report/load.py by value: which folders are eval results (results.csv and meta.json, meta.json written last, so a
folder without it is skipped inside a folder of results and refused when named), the label read from a one-row
results.csv, two inputs of one label refused, a row count recorded without a hash checked, columns that must be
numbers checked, meta.json entries that must be objects, and a run's summary.json iterations and history.csv
columns. Folders are written by hand in a temporary folder; every refusal is a one-line NsbenchError naming the file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsbench.report.load import load_eval, load_inputs, load_run
from nsbench.utils import NsbenchError

HEADER = "model,suite,task,condition,severity,eps_255,eps,metric,value,n,normaliser,note\n"


def eval_folder(path: Path, label: str = "m", rows: list[str] | None = None, meta: dict | None = None) -> Path:
    """A results folder by hand: results.csv (a clean top-1 row unless `rows`) and meta.json (unless meta is False)."""
    path.mkdir(parents=True)
    rows = rows if rows is not None else [f"{label},t,clean,clean,,,,top1_acc,76.5,100,,"]
    (path / "results.csv").write_text(HEADER + "".join(r + "\n" for r in rows))
    if meta is not False:
        (path / "meta.json").write_text(json.dumps(meta if meta is not None else {"model": {"label": label}}))
    return path


def test_a_one_row_results_folder_is_labelled_by_its_model_column(tmp_path):
    r = load_eval(eval_folder(tmp_path / "x", "resnet50"))
    assert r.label == "resnet50" and r.rows.value.tolist() == [76.5]


def test_a_folder_of_results_skips_subfolders_that_are_not_finished_results(tmp_path):
    eval_folder(tmp_path / "a", "a")
    eval_folder(tmp_path / "b", "b", meta=False)  # meta.json is written last: b is not finished
    (tmp_path / "plots").mkdir()  # no results at all
    evals, runs = load_inputs([tmp_path])
    assert [e.label for e in evals] == ["a"] and runs == []


def test_naming_a_folder_without_meta_json_is_refused_as_not_results(tmp_path):
    d = eval_folder(tmp_path / "b", "b", meta=False)
    with pytest.raises(NsbenchError, match=r"neither eval results \(results.csv \+ meta.json\)"):
        load_inputs([d])


def test_two_inputs_of_one_label_are_refused(tmp_path):
    a, b = eval_folder(tmp_path / "a", "same"), eval_folder(tmp_path / "b", "same")
    with pytest.raises(NsbenchError, match="two inputs share the model label 'same'"):
        load_inputs([a, b])


def test_a_row_count_recorded_without_a_hash_is_checked(tmp_path):
    d = eval_folder(tmp_path / "m", meta={"model": {"label": "m"}, "results": {"rows": 2}})  # 1 row written
    with pytest.raises(NsbenchError, match="1 rows, meta.json records 2"):
        load_eval(d)


def test_a_severity_that_is_not_a_number_is_refused(tmp_path):
    d = eval_folder(tmp_path / "m", rows=["m,t,corruptions,fog,high,,,top1_err,40.0,100,,"])
    with pytest.raises(NsbenchError, match="column severity holds a value that is not a number"):
        load_eval(d)


def test_meta_entries_must_be_objects_and_may_be_absent(tmp_path):
    ok = load_eval(eval_folder(tmp_path / "ok", meta={}))  # none of model, normaliser, dataset, sets, suite
    assert ok.meta == {} and ok.label == "m"
    bad = eval_folder(tmp_path / "bad", meta={"model": "resnet50"})
    with pytest.raises(NsbenchError, match="model must be an object, found str"):
        load_eval(bad)


def run_folder(path: Path, summary: dict, history: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps(summary))
    if history is not None:
        (path / "history.csv").write_text(history)
    return path


@pytest.mark.parametrize("its", [3, [["iteration", 0]]])  # a number; a list of pairs, not of objects
def test_summary_iterations_must_be_a_list_of_objects(tmp_path, its):
    d = run_folder(tmp_path / "run", {"iterations": its})
    with pytest.raises(NsbenchError, match="iterations must be a list of objects with an iteration"):
        load_run(d)


def test_a_history_with_just_iteration_and_epoch_is_read(tmp_path):
    r = load_run(run_folder(tmp_path / "run", {"iterations": [{"iteration": 0}]}, "iteration,epoch\n0,0\n0,1\n"))
    assert r.history.epoch.tolist() == [0, 1]
