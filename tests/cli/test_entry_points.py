"""The entry points added since the last hardening round, tried as a hostile or careless user would (issue 32): each
input is checked where it enters (CLI, Python API, config, checkpoint metadata, folder tree), with one line naming
the input and the problem, exit 2 before any work, or a failed row (exit 1) once a task has started. Every probe here
failed before issue 32 (a NaN scored as a number, a write outside --out, a silent empty set, or a traceback)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import error_lines, tiny_checkpoint, write_folder
from nsbench import ModelInfo, ScoreSettings
from nsbench.cli import main
from nsbench.utils import NsbenchError

FOUR = [f"class{c}" for c in range(4)]
CLEAN_ONLY = ["corruptions.enabled=false", "perturbations.enabled=false", "natural_adversarial.enabled=false",
              "fgsm.enabled=false", "clean.limit=8"]


def _eval(ckpt, tiny_folder: Path, out: Path, *extra: str) -> int:
    return main(["eval", str(ckpt), "--suite", "quick", "--out", str(out), "--cache", str(out.parent / "cache"),
                 "--workers", "0", "--device", "cpu", f"data.source=folder:{tiny_folder}", "data.split=test",
                 *CLEAN_ONLY, *extra])


def _one_line(capsys, expect: str) -> str:
    (line,) = error_lines(capsys.readouterr().err)
    assert expect in line, line
    return line


# labels and study names are names, never paths (issue 32, probe 1)

@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("label", ["../../escaped", "ABSOLUTE", "a/b", "..", ""])
def test_a_label_that_is_a_path_is_refused_before_any_write(label, tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    out = tmp_path / "deep" / "er" / "ev"
    absolute = tmp_path / "absolute-label"  # an absolute label would write there, outside --out
    assert _eval(ckpt, tiny_folder, out, "--label", str(absolute) if label == "ABSOLUTE" else label) == 2
    _one_line(capsys, "--label")
    assert not out.exists() and not (tmp_path / "deep" / "escaped").exists() and not absolute.exists()


def test_a_python_label_that_is_a_path_is_refused(tmp_path):
    from nsbench import evaluate

    with pytest.raises(NsbenchError, match="label '../x': holds a path separator"):
        evaluate(nn.Linear(3, 4), "quick", tmp_path / "ev", info=ModelInfo(label="../x", classes=4, input_size=32))
    assert not (tmp_path / "x").exists()


def test_a_study_named_like_a_path_is_refused(tmp_path, tiny_folder):
    import yaml

    from nsbench.study import load_study

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "../../x", "recipe": "default", "suite": "study", "seeds": [0],
                                    "variants": {"a": []}, "tables": []}))
    with pytest.raises(NsbenchError, match=r"name '../../x': holds a path separator"):
        load_study(path)


# no NaN model or NaN attack is scored (issue 32, probe 2)

class RedQuadrants(nn.Module):
    """tiny_folder's class c lights quadrant c in red; `nan` makes every output NaN (a diverged model)."""

    def __init__(self, nan: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float("nan") if nan else 10.0))

    def forward(self, x):
        return self.scale * nn.functional.adaptive_avg_pool2d(x[:, :1], 2).flatten(1)


def _attacks(tmp_path, tiny_folder, model, runs):
    pytest.importorskip("torchattacks") if not (Path(sys.prefix) / "reference-libs" / "torchattacks").is_dir() else \
        sys.path.append(str(Path(sys.prefix) / "reference-libs"))
    from nsbench.bench.context import EvalContext
    from nsbench.bench.eval_model import from_module
    from nsbench.bench.suite import SuiteConfig, validate_suite
    from nsbench.bench.tasks import attacks_by_name

    em = from_module(model, classes=FOUR, input_size=32, label="m")
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split = f"folder:{tiny_folder}", "test"
    cfg.attacks.enabled, cfg.attacks.limit, cfg.attacks.batch_size = True, 8, 4
    cfg.attacks.run = [attacks_by_name.AttackSpec(**r) for r in runs]
    validate_suite(cfg)
    ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=0)
    return attacks_by_name.run(ctx, cfg.attacks, None)


def test_an_attack_by_name_never_scores_a_model_with_nan_outputs(tmp_path, tiny_folder):
    with pytest.raises(NsbenchError, match=r"outputs are not finite \(NaN or inf\)"):
        _attacks(tmp_path, tiny_folder, RedQuadrants(nan=True),
                 [{"name": "torchattacks:PGD", "eps_255": 8, "kwargs": {"steps": 2}}])


@pytest.mark.parametrize("kwargs, expect", [({"alpha": float("nan")}, "alpha must be finite"),
                                            ({"steps": "ten"}, r"steps must be int like its default \(10\), got str 'ten'"),
                                            ({"steps": 2.5}, "steps must be int")])
def test_attack_arguments_of_the_wrong_type_or_nan_are_refused_at_load(kwargs, expect, tmp_path, tiny_folder):
    with pytest.raises(NsbenchError, match=expect):
        _attacks(tmp_path, tiny_folder, RedQuadrants(), [{"name": "torchattacks:PGD", "eps_255": 8, "kwargs": kwargs}])


# no silent empty result; every cell counts what it skipped (issue 32, probe 3)

@pytest.mark.usefixtures("fresh_log_handlers")
def test_the_clean_task_counts_unreadable_images(tmp_path):
    data = write_folder(tmp_path / "data", 4, {"test": 3})
    (next((data / "test" / "class1").iterdir())).write_bytes(b"\x89PNG truncated")
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    assert main(["eval", str(ckpt), "--suite", "quick", "--out", str(tmp_path / "ev"), "--cache",
                 str(tmp_path / "cache"), "--workers", "0", "--device", "cpu", f"data.source=folder:{data}",
                 "data.split=test", *CLEAN_ONLY, "clean.limit=12"]) == 0  # all 12: 11 readable
    clean = json.loads((tmp_path / "ev" / "m" / "meta.json").read_text())["sets"]["clean"]
    assert {k: clean[k] for k in ("n", "skipped_unreadable")} == {"n": 11, "skipped_unreadable": 1}
    assert clean["temperature"]["fitted_on"] == "cross_fit" and sum(clean["temperature"]["images"]) == 11


def test_an_empty_built_a_is_a_skipped_row_not_a_failed_task(tmp_path, tiny_folder):
    from nsbench import evaluate

    class Right(nn.Module):  # references that get every image right: no image for DATASET-A
        def forward(self, x):
            return nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()

    def trainer(**_):
        return Right(), {"rounds": 1, "val_top1_per_round": [100.0], "val_top1": 100.0, "stopped_by": "plateau"}

    over = [f"data.source=folder:{tiny_folder}", "data.split=test", "clean.limit=8", "corruptions.enabled=false",
            "perturbations.enabled=false", "fgsm.enabled=false", "natural_adversarial.ref_max_rounds=1",
            "natural_adversarial.ref_train_limit=8"]
    only_class0 = tmp_path / "data"  # every pool image of class 0: the references are always right
    write_folder(only_class0, 4, {"train": 3, "test": 0})
    for c in FOUR:
        (only_class0 / "test" / c).mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(sorted((tiny_folder / "test" / "class0").iterdir())[:4]):
        (only_class0 / "test" / "class0" / p.name).write_bytes(p.read_bytes())
    over[0] = f"data.source=folder:{only_class0}"
    rows = evaluate(RedQuadrants(), "quick", tmp_path / "ev", info=ModelInfo(classes=FOUR, input_size=32, label="m"),
                    settings=ScoreSettings(overrides=over, cache_dir=tmp_path / "cache", device="cpu",
                                           reference_trainer=trainer))
    a = rows[rows.task == "natural_adversarial"]
    assert list(a.metric) == ["skipped"] and "no pool image is misclassified by every reference" in a.note.iloc[0]
    assert not (rows.metric == "failed").any()


# tracebacks become one line (issue 32, probe 4)

@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("args, expect", [(["--input-size", "100000"], "--input-size: 100000 pixels is outside 1..4096"),
                                          (["--device", "tpu"], "--device 'tpu': unknown; valid: auto, cpu, cuda")])
def test_eval_refuses_impossible_sizes_and_devices_in_one_line(args, expect, tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    cmd = ["eval", str(ckpt), "--suite", "quick", "--out", str(tmp_path / "ev"), "--workers", "0",
           f"data.source=folder:{tiny_folder}", "data.split=test", *CLEAN_ONLY, *args]
    assert main(cmd) == 2
    _one_line(capsys, expect)
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("size, expect", [("32", "expected a whole number of pixels, got str '32'"),
                                          (32.5, "expected a whole number of pixels, got float 32.5"),
                                          (0, "0 pixels is outside 1..4096")])
def test_python_input_sizes_are_whole_pixels(size, expect, tmp_path):
    from nsbench import evaluate

    with pytest.raises(NsbenchError, match=expect):
        evaluate(nn.Linear(3, 4), "quick", tmp_path / "ev", info=ModelInfo(classes=4, input_size=size))


def test_a_model_whose_outputs_do_not_match_its_classes_is_refused_before_any_work(tmp_path, tiny_folder):
    from nsbench import evaluate

    class Three(nn.Module):
        def forward(self, x):
            return x.mean((2, 3))  # 3 outputs (the channels) for 4 class names

    with pytest.raises(NsbenchError, match=r"outputs of shape \(2, 3\) for 2 images, expected \[2, 4\]"):
        evaluate(Three(), "quick", tmp_path / "ev", info=ModelInfo(classes=4, input_size=32, label="three"),
                 settings=ScoreSettings(overrides=[f"data.source=folder:{tiny_folder}", "data.split=test",
                                                   *CLEAN_ONLY], cache_dir=tmp_path / "cache", device="cpu"))
    assert not (tmp_path / "ev" / "three" / "results.csv").exists()


@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("field, value", [("config", ["a", "list"]), ("config", "a string"), ("dataset", "a string"),
                                          ("config", {"data": "a string"})])
@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_checkpoint_with_malformed_embedded_metadata_is_one_line(field, value, command, tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    obj = torch.load(ckpt, weights_only=True)
    meta = json.loads(obj["meta"])
    meta[field] = value
    obj["meta"] = json.dumps(meta)
    torch.save(obj, ckpt)
    if command == "eval":
        assert _eval(ckpt, tiny_folder, tmp_path / "ev") == 2
    else:
        assert main(["export", str(ckpt), "--to", "timm", "--out", str(tmp_path / "x")]) == 2
    where = "config.data" if isinstance(value, dict) else field
    _one_line(capsys, f"checkpoint metadata is corrupt ({where}: expected a mapping")


def test_damaged_pseudo_label_statistics_are_never_read_as_numbers(tmp_path):
    """A statistics file holding pickled objects (or garbage) marks its shard as not done: labeled again on
    resume; merging it names the file instead of numpy's ValueError."""
    from nsbench.training.selection import plan_and_select
    from nsbench.training.store import read_stats, shard_name, stats_file

    shard = tmp_path / shard_name(0, 1)
    shard.write_bytes(b"")
    np.savez(stats_file(shard), hist=np.array([{"evil": 1}], dtype=object), predicted=np.zeros(2),
             correct_kept=np.zeros(2), scalars=np.zeros(4, np.int64), conf_sum=np.zeros(1))
    assert read_stats(shard) is None
    with pytest.raises(NsbenchError, match=r"stats-00000-of-00001.npz: pseudo-label statistics missing or damaged"):
        plan_and_select(tmp_path, 1, 4, 0.3, True, "mean")
    stats_file(shard).write_bytes(b"not an npz")
    assert read_stats(shard) is None


def test_a_damaged_statistics_file_is_labeled_again(tmp_path, tiny_folder):
    from nsbench.data import open_source
    from nsbench.training.label import LabelConfig, label_unlabeled
    from nsbench.training.store import read_stats, shard_name, stats_file
    from nsbench.config import PseudoConfig

    src = open_source(f"folder:{tiny_folder}", "test")
    store = tmp_path / "store"
    store.mkdir()
    shard = store / shard_name(0, 1)
    shard.write_bytes(b"half a shard")
    np.savez(stats_file(shard), hist=np.array([{"evil": 1}], dtype=object))
    teacher = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    label_unlabeled(teacher, src, np.arange(len(src)), store,
                    LabelConfig(pseudo=PseudoConfig(), num_classes=4, size=32, device=torch.device("cpu")))
    stats = read_stats(shard)
    assert stats is not None and int(stats["scalars"][0]) == len(src)  # labeled again, every image


# unclear or missing refusals (issue 32, probe 5)

def test_train_refuses_a_config_that_is_not_a_mapping(tmp_path):
    from nsbench import train

    with pytest.raises(NsbenchError, match="config: expected a mapping shaped like a recipe or a TrainConfig, got list"):
        train(config=["teacher_optim.epochs=1"], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("fresh_log_handlers")
def test_an_unwritable_cache_is_refused_in_one_line(tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    assert main(["eval", str(ckpt), "--suite", "quick", "--out", str(tmp_path / "ev"), "--cache",
                 "/sys/nsbench-cache", "--workers", "0", "--device", "cpu", f"data.source=folder:{tiny_folder}",
                 "data.split=test", *CLEAN_ONLY]) == 2
    _one_line(capsys, "--cache /sys/nsbench-cache: cannot write there")
    assert not (tmp_path / "ev" / "m" / "results.csv").exists()


@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("args, expect", [(["--device", "tpu"], "--device 'tpu': unknown"),
                                          (["--limit", "many"], "argument --limit: invalid int value")])
def test_a_json_caller_gets_json_on_refusal_too(args, expect, tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    with pytest.raises(SystemExit) if args[0] == "--limit" else _no_raise():
        code = _eval(ckpt, tiny_folder, tmp_path / "ev", "--json", *args)
        assert code == 2
    got = json.loads(capsys.readouterr().out)
    assert expect in got["error"] and got["exit"] == 2


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.usefixtures("fresh_log_handlers")
def test_the_same_model_given_twice_is_refused(tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", FOUR)
    assert main(["eval", str(ckpt), str(ckpt), "--suite", "quick", "--out", str(tmp_path / "ev"), "--workers", "0",
                 "--device", "cpu", f"data.source=folder:{tiny_folder}", "data.split=test", *CLEAN_ONLY]) == 2
    _one_line(capsys, "the same model given twice")
    assert not (tmp_path / "ev").exists()


def test_an_as_shipped_file_of_another_size_is_skipped_and_counted(tmp_path):
    """One 96 px file in a 64 px as-shipped cell (ImageNet-C-bar, -3DCC, -C): skipped and counted, the rest scored,
    instead of numpy's "all input arrays must have the same shape" failing the whole task."""
    from PIL import Image

    from nsbench.data.loaders import iterate_clean
    from nsbench.data.sources import scan_folder

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            side = 96 if (c, i) == ("b", 1) else 64
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    src = scan_folder(tmp_path, "cell", ["a", "b"]).as_shipped()
    assert src.shipped_size == (64, 64)
    seen, skipped = [], 0
    for x, _, i, k in iterate_clean(src, np.arange(len(src)), 64, 4):
        seen += i.tolist()
        skipped += k
        assert tuple(x.shape[1:]) == (3, 64, 64)
    assert skipped == 1 and len(seen) == 5


@pytest.mark.parametrize("task", ["imagenet_v2", "imagenet_sketch"])
def test_an_official_set_with_no_readable_image_fails_naming_its_folder(task, tmp_path):
    """ImageNet-V2 / -Sketch folders where no image decodes: an error naming the folder (a failed row once the
    harness runs it), never an "undefined" row of n = 0 with numpy warnings and exit 0."""
    from helpers import PixelOracle, ctx_for, synsets
    from nsbench.bench.tasks import imagenet_sketch, imagenet_v2

    folder = tmp_path / "set" / ("0" if task == "imagenet_v2" else "sketch/" + synsets()[0])
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.jpeg").write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
    ctx = ctx_for(tmp_path, PixelOracle([0], decoy=None))
    with pytest.raises(NsbenchError, match=r"set.*: none of its 3 image\(s\) could be read"):
        if task == "imagenet_v2":
            imagenet_v2.run(ctx, imagenet_v2.ImageNetV2Task(enabled=True, root=str(tmp_path / "set"),
                                                            variants=["top-images"]), None)
        else:
            imagenet_sketch.run(ctx, imagenet_sketch.ImageNetSketchTask(enabled=True, root=str(tmp_path / "set")), None)
