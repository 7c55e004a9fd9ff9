"""What a run folder records (training/records.py), by value: the final-quarter gain (the last validation top-1 less
the one at epochs - floor(epochs / 4), to 4 decimals; nothing when either is missing or the stage is under 4
epochs), history.csv (rows sorted by iteration and epoch, a re-trained iteration's rows replaced, no index column,
6 significant digits), and which checkpoints resume may adopt (its iteration and architecture, and past iteration
0 its parent's sha256), with each refusal's words."""
from __future__ import annotations

import pytest

from nsbench.models import ModelSpec
from nsbench.training import records


def rows(values: dict[int, float | None]) -> list[dict]:
    return [{"epoch": e, "loss": 1.0 / e, "val_top1": v} for e, v in values.items()]


def test_the_final_quarter_gain_is_the_last_value_less_the_one_three_quarters_in():
    """8 epochs: the final quarter starts after epoch 8 - 2 = 6. 10 epochs: after 10 - 2 = 8."""
    history = rows({e: 50.0 + e for e in range(1, 9)})
    history[5]["val_top1"] = 55.123456  # epoch 6
    assert records.final_quarter_gain(history) == {"final_quarter_gain": round(58.0 - 55.123456, 4),
                                                   "quarter_epoch": 6}
    assert records.final_quarter_gain(history)["final_quarter_gain"] == 2.8765  # not 2.87654
    assert records.final_quarter_gain(rows({8: 70.0, 10: 71.5, 9: None})) == {"final_quarter_gain": 1.5,
                                                                              "quarter_epoch": 8}


@pytest.mark.parametrize("values", [{1: 50.0, 2: 51.0, 3: 52.0},  # under 4 epochs: no final quarter
                                    {4: 50.0},  # no value at the mark (epoch 3)
                                    {3: 50.0, 4: None},  # no final value
                                    {}])
def test_no_gain_without_both_values(values):
    history = rows(values) + ([{"epoch": 4, "loss": 0.5}] if values == {3: 50.0, 4: None} else [])
    assert records.final_quarter_gain(history) == {}


def test_history_csv_replaces_a_retrained_iterations_rows_and_keeps_the_order(tmp_path):
    records.write_history(tmp_path, [{"iteration": 1, "epoch": 2, "loss": 0.25}, {"iteration": 1, "epoch": 1,
                                                                                  "loss": 0.5}])
    records.write_history(tmp_path, [{"iteration": 0, "epoch": 1, "loss": 1.23456789}])
    records.write_history(tmp_path, [{"iteration": 1, "epoch": 1, "loss": 0.125}])  # iteration 1 trained again
    text = (tmp_path / "history.csv").read_text().splitlines()
    assert text == ["iteration,epoch,loss", "0,1,1.23457", "1,1,0.125"]


def test_a_checkpoint_is_adopted_only_as_this_runs_iteration_of_its_lineage(tmp_path, monkeypatch):
    spec = ModelSpec("resnet18", 10)
    meta = {}
    monkeypatch.setattr(records, "read_checkpoint", lambda path: (meta, None))

    def problem(k, parent, **m):
        meta.clear()
        meta.update(m)
        return records._inspect(tmp_path / f"iter{k}.pt", k, spec, parent)[0]

    assert problem(0, None, iteration=0, model={"arch": "resnet18"}) is None
    # iteration 0 has no parent to check: whatever it records
    assert problem(0, "aa", iteration=0, model={"arch": "resnet18"}, parent_sha256="zz") is None
    assert problem(2, "aa", iteration=2, model={"arch": "resnet18"}, parent_sha256="aa") is None
    assert problem(1, None, iteration=2, model={"arch": "resnet18"}) == \
        "it holds iteration 2 (resnet18), not 1 (resnet18)"
    assert problem(1, None, iteration=1, model={"arch": "resnet50"}) == \
        "it holds iteration 1 (resnet50), not 1 (resnet18)"
    assert problem(2, "aa", iteration=2, model={"arch": "resnet18"}, parent_sha256="bb") == \
        "its parent sha256 is not iteration 1's"
