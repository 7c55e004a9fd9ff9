"""The harness by what it writes (bench/harness.py): a failed task is a row with n = 0 and the error as its note (the
type named unless it is nsbench's own one-line error), a task skipped for an unset variable is a row with n = 0,
timings are durations, a size the user chose is taken as given; ScoreSettings' ranges and defaults; the output
folder guards."""
from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd
import pytest
import yaml
from torch import nn

from helpers import write_folder
from nsbench import ModelInfo, ScoreSettings
from nsbench.bench import registry
from nsbench.bench.harness import as_eval_model, score
from nsbench.utils import NsbenchError

CLASSES = [f"class{i}" for i in range(4)]


def net() -> nn.Module:
    """Any-size images to 4 logits (mean colour through a linear layer)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))


def suite_file(tmp_path, data, **tasks) -> str:
    body = {"name": "t", "data": {"source": f"folder:{data}", "split": "test"},
            "clean": {"limit": 8}, "fgsm": {"enabled": False}, "corruptions": {"enabled": False},
            "perturbations": {"enabled": False}, "natural_adversarial": {"enabled": False}, **tasks}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def failing(exc):
    def run(ctx, cfg, norm):
        raise exc

    return run


def test_failed_and_skipped_tasks_are_rows_with_n_0_and_timings_are_durations(tmp_path, monkeypatch):
    data = write_folder(tmp_path / "data", 4, {"test": 2})  # 8 images of 32 px
    kinds = registry.task_kinds()
    monkeypatch.setitem(registry._TASKS, "fgsm", dataclasses.replace(kinds["fgsm"], run=failing(ValueError("boom"))))
    monkeypatch.setitem(registry._TASKS, "perturbations",
                        dataclasses.replace(kinds["perturbations"], run=failing(NsbenchError("no -P set here\nmore"))))
    monkeypatch.delenv("NSBENCH_TEST_UNSET_ROOT", raising=False)
    suite = suite_file(tmp_path, data, fgsm={"enabled": True}, perturbations={"enabled": True},
                       corruptions={"enabled": True, "root": "${NSBENCH_TEST_UNSET_ROOT}"})
    # 64 px chosen by the user for 32 px images: taken as given (a warning), not refused as an unchosen size would be
    em = as_eval_model(net(), ModelInfo(classes=CLASSES, input_size=64, label="mine"))
    out = tmp_path / "out"
    t0 = time.time()
    score(em, suite, ScoreSettings(cache_dir=tmp_path / "cache", device="cpu"), out)
    elapsed = time.time() - t0

    rows = pd.read_csv(out / "results.csv").set_index("task")
    assert (rows.loc["fgsm", "metric"], rows.loc["fgsm", "n"], rows.loc["fgsm", "note"]) == ("failed", 0, "ValueError: boom")
    assert (rows.loc["perturbations", "metric"], rows.loc["perturbations", "n"], rows.loc["perturbations", "note"]) == \
        ("failed", 0, "no -P set here")
    assert (rows.loc["corruptions", "metric"], rows.loc["corruptions", "n"], rows.loc["corruptions", "note"]) == \
        ("skipped", 0, "$NSBENCH_TEST_UNSET_ROOT is not set: set it, or corruptions.root=PATH, or corruptions.enabled=false")
    assert rows.loc["clean"].n.max() == 8  # the clean task scored all 8 images

    meta = json.loads((out / "meta.json").read_text())
    t = meta["timings_s"]
    assert set(t) == {"clean", "fgsm", "perturbations", "total"}
    assert all(0 <= t[k] <= t["total"] <= elapsed for k in ("clean", "fgsm", "perturbations"))
    assert meta["preprocessing"]["image_size"] == 64 and meta["preprocessing"]["source_image_size"] == [32, 32]
    assert meta["preprocessing"]["image_size_from"] == "given (input_size=)"


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    em = as_eval_model(net(), ModelInfo(classes=CLASSES, input_size=32, label="mine"))
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(NsbenchError, match=rf"^{tmp_path / 'out'}: exists and is not a folder$"):
        score(em, suite_file(tmp_path, tmp_path / "data"), ScoreSettings(cache_dir=tmp_path / "cache", device="cpu"),
              tmp_path / "out")


def test_another_models_results_are_not_replaced_by_default(tmp_path):
    em = as_eval_model(net(), ModelInfo(classes=CLASSES, input_size=32, label="mine"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "meta.json").write_text(json.dumps({"model": {"label": "theirs", "sha256": "f" * 64}}))
    with pytest.raises(NsbenchError, match=r"already holds the results of another model \(theirs\); mine would replace "
                                           r"them: choose another --out or --label, or pass --overwrite"):
        score(em, suite_file(tmp_path, tmp_path / "data"), ScoreSettings(cache_dir=tmp_path / "cache", device="cpu"), out)


@pytest.mark.parametrize("info", [ModelInfo(classes=CLASSES), ModelInfo(input_size=32), ModelInfo()])
def test_an_nn_module_needs_both_classes_and_input_size(info):
    with pytest.raises(NsbenchError, match=r"^an nn.Module needs classes= \(names or a count\) and input_size="):
        as_eval_model(net(), info)


@pytest.mark.parametrize("key", ["limit", "batch_size"])
def test_limit_and_batch_size_must_be_positive(key):
    assert getattr(ScoreSettings(**{key: 1}), key) == 1
    with pytest.raises(NsbenchError, match=rf"^{key.replace('_', ' ')} must be positive, got 0$"):
        ScoreSettings(**{key: 0})


def test_score_settings_are_frozen():
    """docs/evaluation.md: the harness takes "a frozen ScoreSettings"."""
    s = ScoreSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.limit = 5
