"""A new user's dead ends, from a clean clone with fabricated ImageNet-style folders and a model of one's own (issue
33): any subset of the official sets runs on its own, a partial download gives a partial mean, the Python API talks,
errors name both sides, and export never writes into a run folder."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from helpers import encoded_image, error_lines, save, tiny_checkpoint
from nsbench.cli import main

IMAGENET_VARS = ("NSBENCH_IMAGENET", "NSBENCH_IMAGENET_C", "NSBENCH_IMAGENET_P", "NSBENCH_IMAGENET_A",
                 "NSBENCH_IMAGENET_R", "NSBENCH_IMAGENET_V2", "NSBENCH_IMAGENET_SKETCH", "NSBENCH_IMAGENET_C_BAR",
                 "NSBENCH_IMAGENET_3DCC")


@pytest.fixture
def imagenet_model(tmp_path) -> Path:
    """A 1,000-class timm model's weights, as a user brings them (.safetensors)."""
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=1000).state_dict(), str(path))
    return path


def _v2_tree(root: Path) -> Path:
    for k, c in enumerate((3, 7, 11)):
        save(root / "imagenetv2-matched-frequency-format-val" / str(c) / f"{k}.jpeg", encoded_image(k, 80))
    return root


@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("suite", ["imagenet", "shifted"])
def test_imagenet_v2_alone_is_scored_and_every_unset_set_is_a_skipped_row(suite, imagenet_model, tmp_path,
                                                                            monkeypatch, capsys):
    for var in IMAGENET_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NSBENCH_IMAGENET_V2", str(_v2_tree(tmp_path / "v2")))
    out = tmp_path / "ev"
    code = main(["eval", "--suite", suite, "timm:test_resnet", "--checkpoint", str(imagenet_model), "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--workers", "0", "--device", "cpu", "--json",
                 "imagenet_v2.variants=[matched-frequency]"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    rows = pd.read_csv(Path(doc["models"][0]["folder"]) / "results.csv")
    v2 = rows[(rows.task == "imagenet_v2") & (rows.metric == "top1_acc")]
    assert list(v2.condition) == ["matched-frequency"] and v2.n.iloc[0] == 3
    skipped = rows[rows.metric == "skipped"].set_index("task").note
    assert not (rows.metric == "failed").any()
    assert skipped["clean"].startswith("$NSBENCH_IMAGENET is not set (data.source): set it, or data.source=")
    if suite == "imagenet":
        assert skipped["corruptions"] == ("$NSBENCH_IMAGENET_C is not set: set it, or corruptions.root=PATH, or "
                                          "corruptions.enabled=false")
        assert {"perturbations", "natural_adversarial", "fgsm"} <= set(skipped.index)
    assert {"imagenet_sketch", "imagenet_c_bar", "imagenet_3dcc"} <= set(skipped.index)
    assert doc["models"][0]["headline"]["v2_top1:matched-frequency"] == pytest.approx(v2.value.iloc[0])


@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_suite_with_every_set_unset_says_what_to_set(imagenet_model, tmp_path, monkeypatch, capsys):
    for var in IMAGENET_VARS:
        monkeypatch.delenv(var, raising=False)
    assert main(["eval", "--suite", "shifted", "timm:test_resnet", "--checkpoint", str(imagenet_model), "--out",
                 str(tmp_path / "ev"), "--cache", str(tmp_path / "cache"), "--device", "cpu"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "nothing to score: every task of suite shifted was skipped" in line and "$NSBENCH_IMAGENET_V2" in line
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").rglob("results.csv"))


def test_the_python_api_talks_when_the_caller_configured_no_logging(tiny_folder, tmp_path, monkeypatch, capsys):
    """In a notebook nothing configures logging: nsbench.evaluate prints its progress, its numbers and where the
    results are, as the CLI does (and leaves a caller's own logging configuration alone)."""
    from torch import nn

    from nsbench import ModelInfo, ScoreSettings, evaluate

    monkeypatch.setattr(logging.getLogger("nsbench"), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger("nsbench"), "level", logging.NOTSET)
    over = [f"data.source=folder:{tiny_folder}", "data.split=test", "clean.limit=8", "corruptions.enabled=false",
            "perturbations.enabled=false", "natural_adversarial.enabled=false", "fgsm.enabled=false"]
    evaluate(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4)), "quick", tmp_path / "ev",
             info=ModelInfo(classes=4, input_size=32, label="nb"),
             settings=ScoreSettings(overrides=over, cache_dir=tmp_path / "cache", device="cpu"))
    err = capsys.readouterr().err
    assert "nb: clean top-1" in err and f"nb: results in {tmp_path / 'ev' / 'nb'}" in err
    logging.getLogger("nsbench").handlers.clear()


@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_classes_file_that_does_not_match_the_data_names_both_sides(tiny_folder, tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "mine.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=4).state_dict(), str(weights))
    (tmp_path / "classes.txt").write_text("cat\ndog\ncow\nhen\n")
    assert main(["eval", "timm:test_resnet", "--checkpoint", str(weights), "--classes", str(tmp_path / "classes.txt"),
                 "--input-size", "32", "--suite", "quick", "--out", str(tmp_path / "ev"), "--device", "cpu",
                 f"data.source=folder:{tiny_folder}", "data.split=test"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "not among the model's 4 classes (cat, dog, cow, hen)" in line
    assert "the data has 4 (class0, class1, class2, class3)" in line and "training classes" not in line


@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_label_collision_names_both_models_files(tiny_folder, tmp_path, capsys):
    a = tiny_checkpoint(tmp_path / "a" / "m.pt", [f"class{c}" for c in range(4)])
    (tmp_path / "b").mkdir()
    b = tiny_checkpoint(tmp_path / "b" / "m.pt", [f"class{c}" for c in range(4)])
    common = ["--suite", "quick", "--out", str(tmp_path / "ev"), "--cache", str(tmp_path / "cache"), "--device",
              "cpu", "--workers", "0", f"data.source=folder:{tiny_folder}", "data.split=test", "clean.limit=4",
              "corruptions.enabled=false", "perturbations.enabled=false", "natural_adversarial.enabled=false",
              "fgsm.enabled=false"]
    assert main(["eval", str(a), *common]) == 0
    capsys.readouterr()
    assert main(["eval", str(b), *common]) == 2  # both labelled "m" by their file name
    (line,) = error_lines(capsys.readouterr().err)
    assert f"another model (m, from {a})" in line and f"m, from {b} would replace them" in line


@pytest.mark.usefixtures("fresh_log_handlers")
def test_export_without_out_writes_to_exports_never_into_the_run(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tiny_run.iterdir())
    assert main(["export", str(tiny_run / "iter1.pt")]) == 0
    out = tmp_path / "exports" / f"{tiny_run.name}-iter1"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert sorted(p.name for p in tiny_run.iterdir()) == before  # nothing new in the run folder
    assert str(Path("exports") / f"{tiny_run.name}-iter1" / "model.safetensors") in capsys.readouterr().out
