"""Probes for issue 21's failure classes (hardening, second round), numbered as in the issue: each test reproduces
one failure (a report into its input, a changed study, models scored on different data, a diverged model, data
that cannot be used, a damaged Parquet row group, a failing writer, a bad study file) and asserts the fix."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import make_image
from nsbench.checkpoint import save_checkpoint
from nsbench.cli import main
from nsbench.models import ModelSpec, build_model
from nsbench.utils import NsbenchError

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
CLEAN_ONLY = ["corruptions.enabled=false", "perturbations.enabled=false", "natural_adversarial.enabled=false",
              "fgsm.enabled=false", "clean.limit=16"]


@pytest.fixture(autouse=True)
def _fresh_log_handlers(monkeypatch):
    """The CLI's stderr handler is made anew per test, on this test's captured stderr (a handler left by an earlier
    test would write to a closed capture and print a logging traceback)."""
    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err[-3000:]
    return [ln for ln in err.splitlines() if ln.startswith("nsbench: error")]


def _eval_folder(name: str, dst: Path, *, label: str | None = None, fingerprint: str | None = None) -> Path:
    """A copy of a fixture eval folder, relabelled and / or with another dataset fingerprint (hash kept valid)."""
    shutil.copytree(FIX / "results" / name, dst)
    meta = json.loads((dst / "meta.json").read_text())
    if label is not None:
        rows = pd.read_csv(dst / "results.csv", keep_default_na=False, na_values=[""])
        rows["model"] = label
        rows.to_csv(dst / "results.csv", index=False, float_format="%.6g")
        meta["model"]["label"] = label
    if fingerprint is not None:
        meta["dataset"]["fingerprint"] = fingerprint
    if "results" in meta:
        data = (dst / "results.csv").read_bytes()
        meta["results"] = {"rows": data.count(b"\n") - 1, "sha256": hashlib.sha256(data).hexdigest()}
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def _checkpoint(path: Path, classes: list[str], *, nan: bool = False) -> Path:
    spec = ModelSpec("test_resnet", num_classes=len(classes), input_size=32)
    model = build_model(spec)
    if nan:  # a diverged model: every weight NaN (argmax of its NaN logits is class 0)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
    save_checkpoint(path, model, spec, classes=classes, iteration=0, parent_sha256=None, config=None, metrics=None)
    return path


def _eval(ckpt: Path, source: str, out: Path, *extra: str) -> int:
    return main(["eval", str(ckpt), "--suite", "quick", "--out", str(out), "--cache", str(out.parent / "cache"),
                 "--workers", "0", "--device", "cpu", f"data.source={source}", "data.split=test", *CLEAN_ONLY, *extra])


def _png_bytes(cls: int, rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(make_image(cls, rng)).save(buf, format="PNG")
    return buf.getvalue()


def _parquet(folder: Path, labels: list, *, group: int = 4) -> Path:
    """Uncompressed Parquet shard of PNG images in row groups of `group` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = [_png_bytes(i % 4, rng) for i in range(len(labels))]
    path = folder / "part-0.parquet"
    pq.write_table(pa.table({"image": imgs, "label": labels}), path, row_group_size=group, compression="none")
    return path


def _damage_row_group(path: Path, group: int, columns: tuple[int, ...] = (0,)) -> None:
    """Overwrite the page headers of `group`'s column chunks with garbage; the footer stays intact."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    data = bytearray(path.read_bytes())
    for c in columns:
        col = md.row_group(group).column(c)
        start = col.dictionary_page_offset or col.data_page_offset
        data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


# ---- 1: a report never writes into an input folder ----------------------------------------------------------------

def test_report_out_naming_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    a = _eval_folder("iter0", tmp_path / "a")
    b = _eval_folder("iter0", tmp_path / "b", label="b")
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    for out in (a, b, tmp_path):  # an input, the other input, a folder holding them
        code = main(["report", str(a), str(b) if out != tmp_path else str(tmp_path), "--out", str(out)]
                    if out != tmp_path else ["report", str(tmp_path), "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and _error_lines(err) == [f"nsbench: error: --out {out}: is an input of the report "
                                                   f"({out}); a report never writes into its inputs: choose another "
                                                   f"folder"], err
    other = _eval_folder("iter0", tmp_path / "other", label="other")  # eval results not among the inputs
    assert main(["report", str(a), "--out", str(other)]) == 2
    assert "holds eval results, which the report would overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before  # results.csv untouched
    assert not (a / "index.html").exists() and not (other / "index.html").exists()
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "report")]) == 0  # still reportable
    assert (tmp_path / "report" / "index.html").exists()


# ---- 2: a changed study is refused before anything is skipped as finished ------------------------------------------

def _fake_finished_runs(study, out: Path) -> None:
    """What a finished study leaves in runs/: each run's resolved config, summary and checkpoints."""
    for plan in study.runs:
        run = out / "runs" / plan.name
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(plan.cfg.to_dict(), sort_keys=False))
        its = range(plan.cfg.ns.iterations + 1)
        summary = {"iterations": [{"iteration": k, "sha256": "0" * 64} for k in its]}
        (run / "summary.json").write_text(json.dumps(summary))
        for k in its:
            (run / f"iter{k}.pt").write_bytes(b"a finished checkpoint")


def test_a_changed_finished_study_is_refused_not_skipped(tiny_folder, tmp_path, capsys, monkeypatch):
    import nsbench.training.driver as drv
    from nsbench.study import load_study
    from test_study import tiny_study

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0])
    out = tmp_path / "out"
    _fake_finished_runs(load_study(path, scale="small"), out)
    spec = yaml.safe_load(path.read_text())
    spec["variants"]["no_noise"]["overrides"] = ["noise.randaugment=false", "students.0.drop_rate=0.5",
                                                 "students.0.drop_path_rate=0.0"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the study file changed since the runs finished
    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained despite a changed study"))
    assert main(["study", str(path), "--out", str(out), "--workers", "0"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert re.search(r"no_noise-seed0: holds a run whose config differs from the study's no_noise-seed0 "
                     r"\(students\.0\.drop_rate: 0\.0 there, 0\.5 now\)", line), line
    assert not (out / "eval").exists() and not (out / "report").exists()  # nothing scored, no stale claims


# ---- 3: pairing requires the same data ------------------------------------------------------------------------------

def test_models_scored_on_different_data_are_compared_unpaired_and_the_report_says_so(tmp_path):
    from nsbench.report.compare import headline
    from nsbench.report.load import load_inputs
    from nsbench.report.render import render_report

    a = _eval_folder("iter0", tmp_path / "a")
    same = _eval_folder("iter0", tmp_path / "same", label="same")
    other = _eval_folder("iter0", tmp_path / "other", label="other", fingerprint="0123456789abcdef")
    evals, _ = load_inputs([a, same, other])
    head = headline(evals, evals[0].label)
    clean = head[head.measure == "clean_top1"].set_index("model")
    assert clean.loc["same", "test"].startswith("exact McNemar")  # same fingerprint, same ids: paired
    assert clean.loc["other", "test"].startswith("unpaired bootstrap")
    assert "scored on different data" in clean.loc["other", "test"] and "McNemar" not in clean.loc["other", "test"]
    html = render_report([a, other], tmp_path / "r").read_text()
    assert "other against iter0: scored on different data, so the differences are unpaired" in html
    unknown = _eval_folder("iter0", tmp_path / "unknown", label="unknown", fingerprint="")  # older results
    evals, _ = load_inputs([a, unknown])
    test = headline(evals, "iter0").set_index(["model", "measure"]).loc[("unknown", "clean_top1"), "test"]
    assert test.startswith("unpaired bootstrap") and "a dataset fingerprint is missing" in test


# ---- 4: non-finite outputs ------------------------------------------------------------------------------------------

def test_a_model_with_nan_outputs_fails_its_tasks_and_eval_exits_non_zero(tiny_folder, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "nan.pt", [f"class{c}" for c in range(4)], nan=True)
    assert _eval(ckpt, f"folder:{tiny_folder}", tmp_path / "ev") == 1
    rows = pd.read_csv(tmp_path / "ev" / "nan" / "results.csv")  # the rows are still written
    (failed,) = rows[rows.metric == "failed"].itertuples()
    assert failed.task == "clean" and "outputs are not finite (NaN or inf) for 16 of 16 images" in failed.note
    assert not ((rows.metric == "top1_acc") & rows.value.notna()).any()  # no accuracy from argmax over NaN
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("nsbench: error: 1 task(s) failed (nan: clean)")


def test_non_finite_validation_logits_stop_training_naming_iteration_epoch_and_lr(tmp_path):
    from nsbench.config import OptimConfig, RuntimeConfig
    from nsbench.data.loaders import ImageDataset
    from nsbench.data.sources import ArraySource
    from nsbench.training.optim import lr_at
    from nsbench.training.stage import StageConfig, train_stage
    from nsbench.training.validate import ValSet

    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2, ["a", "b"])
    model = build_model(ModelSpec("test_resnet", num_classes=2))
    # the training loss stays finite (as with lr=1e4: 2.9e9) while the weights already give NaN in eval mode
    model.register_forward_hook(lambda m, a, out: out if m.training else out * float("nan"))
    lr = f"{lr_at(1, 4, 0, 0.01):.4g}"  # the schedule's rate at the epoch's last step (2 steps per epoch, 4 in all)
    with pytest.raises(NsbenchError, match=rf"^iter1: iteration 1, epoch 1/2, learning rate {re.escape(lr)}: the "
                                           r"validation logits are not finite \(NaN or inf\) for 16 of 16 images"):
        train_stage(model, StageConfig(name="iter1", optim=OptimConfig(epochs=2, batch_size=8, warmup_epochs=0, lr=0.01),
                                       runtime=RuntimeConfig(device="cpu", channels_last=False),
                                       labeled=ImageDataset(src, np.arange(16), 32), val=ValSet(src, np.arange(16), 32),
                                       device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))
    assert not (tmp_path / "state.pt").exists()  # the diverged epoch was not saved as a good state


# ---- 5: eval exits 2 in one line when the data cannot be used, before any work ---------------------------------------

def _unusable(kind: str, tmp_path: Path, tiny_folder: Path) -> tuple[str, list[str], str]:
    """(data.source, the checkpoint's classes, the expected error) for one kind of unusable data."""
    four = [f"class{c}" for c in range(4)]
    if kind == "missing folder":
        return f"folder:{tmp_path / 'nope'}", four, "folder not found"
    if kind == "class mismatch":
        return f"folder:{tiny_folder}", ["cat", "dog", "cow", "hen"], "class folder not among the training classes"
    if kind == "unreadable parquet":
        (tmp_path / "pq").mkdir()
        (tmp_path / "pq" / "part-0.parquet").write_bytes(b"not parquet at all" * 100)
        return f"parquet:{tmp_path / 'pq'}", four, "not a readable Parquet file"
    if kind == "unreadable hf":
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "dataset_info.json").write_text("{broken")
        return f"hf:{tmp_path / 'hf'}", four, "cannot load split 'test'"
    for c in four:  # every image unreadable
        d = tmp_path / "bad" / "test" / c
        d.mkdir(parents=True)
        for i in range(3):
            (d / f"{i}.png").write_bytes(b"\x89PNG garbage")
    return f"folder:{tmp_path / 'bad'}", four, "none of its 12 images can be read"


@pytest.mark.parametrize("kind", ["missing folder", "class mismatch", "unreadable parquet", "unreadable hf",
                                  "every image unreadable"])
def test_eval_refuses_unusable_data_in_one_line_before_any_work(kind, tiny_folder, tmp_path, capsys):
    source, classes, expect = _unusable(kind, tmp_path, tiny_folder)
    ckpt = _checkpoint(tmp_path / "m.pt", classes)
    assert _eval(ckpt, source, tmp_path / "ev") == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert expect in line, line
    assert not (tmp_path / "ev").exists()  # no folder of failed rows


def test_eval_of_usable_data_exits_0(tiny_folder, tmp_path):
    ckpt = _checkpoint(tmp_path / "m.pt", [f"class{c}" for c in range(4)])
    assert _eval(ckpt, f"folder:{tiny_folder}", tmp_path / "ev") == 0
    assert "failed" not in set(pd.read_csv(tmp_path / "ev" / "m" / "results.csv").metric)


# ---- 6: damaged Parquet row groups are skipped and counted; string labels --------------------------------------------

@pytest.mark.parametrize("columns", [(0,), (0, 1)], ids=["image chunk", "image and label chunks"])
def test_a_damaged_parquet_row_group_is_skipped_and_counted(tmp_path, columns):
    from nsbench.data.loaders import iterate_clean
    from nsbench.data.sources import UnreadableImage, open_source

    path = _parquet(tmp_path / "pq", [i % 4 for i in range(12)])
    _damage_row_group(path, 1, columns)
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=[f"class{c}" for c in range(4)])
    assert len(src) == 12
    with pytest.raises(UnreadableImage, match=r"row group 1"):
        src.load(5)
    assert src.load(8).shape == (32, 32, 3)
    ids, skipped = [], 0
    for _, _, i, sk in iterate_clean(src, np.arange(12), 32, 5, 0):
        ids += i.tolist()
        skipped += sk
    assert ids == [0, 1, 2, 3, 8, 9, 10, 11] and skipped == 4


def test_pseudo_labeling_an_unlabeled_parquet_source_skips_a_damaged_row_group(tmp_path):
    from nsbench.data.sources import open_source
    from nsbench.config import PseudoConfig
    from nsbench.training.label import LabelConfig
    from test_pseudo import teacher_probs

    path = _parquet(tmp_path / "unl", [None] * 12)  # unlabeled
    _damage_row_group(path, 2)
    src = open_source(f"parquet:{tmp_path / 'unl'}", "train")
    cfg = LabelConfig(PseudoConfig(batch_size=4), num_classes=4, size=32, device=torch.device("cpu"))
    probs, idx, skipped = teacher_probs(build_model(ModelSpec("test_resnet", num_classes=4)), src, np.arange(12), cfg,
                                        progress=False)
    assert idx.tolist() == list(range(8)) and skipped == 4 and probs.shape == (8, 4)


def test_eval_on_parquet_with_a_damaged_row_group_scores_the_rest(tmp_path):
    path = _parquet(tmp_path / "pq" / "test", [i % 4 for i in range(12)])
    _damage_row_group(path, 0)
    ckpt = _checkpoint(tmp_path / "m.pt", [f"class{c}" for c in range(4)])
    assert _eval(ckpt, f"parquet:{tmp_path / 'pq'}", tmp_path / "ev") == 0
    rows = pd.read_csv(tmp_path / "ev" / "m" / "results.csv")
    assert rows[(rows.task == "clean") & (rows.metric == "top1_acc")].n.tolist() == [8]


def test_parquet_string_labels_map_by_class_names_or_fail_in_one_line(tmp_path):
    from nsbench.data.sources import open_source

    names = ["cat", "dog", "cow"]
    _parquet(tmp_path / "pq", ["dog", "cat", None, "cow", "dog", "cat"], group=3)
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train")  # no model: the sorted names
    assert src.classes == ["cat", "cow", "dog"] and src.labels.tolist() == [2, 0, -1, 1, 2, 0]
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=names)  # a model's order
    assert src.classes == names and src.labels.tolist() == [1, 0, -1, 2, 1, 0]
    with pytest.raises(NsbenchError, match=r"label 'cow' is not among the model's 2 classes \(cat, dog\)$"):
        open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=["cat", "dog"])


def test_hf_rows_that_cannot_be_read_are_skipped_and_string_labels_map(tmp_path):
    import datasets

    from nsbench.data.loaders import iterate_clean
    from nsbench.data.sources import open_source

    rng = np.random.default_rng(0)
    good = [{"bytes": _png_bytes(i % 3, rng), "path": None} for i in range(6)]
    good[2] = {"bytes": b"\x89PNG damaged", "path": None}
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": good, "label": ["dog", "cat", "cow", None, "dog", "cat"]},
                               features=feats).save_to_disk(tmp_path / "hf")
    src = open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["cat", "dog", "cow"])
    assert src.labels.tolist() == [1, 0, 2, -1, 1, 0]
    ids, skipped = [], 0
    for _, _, i, sk in iterate_clean(src, np.arange(6), 32, 4, 0):
        ids += i.tolist()
        skipped += sk
    assert ids == [0, 1, 3, 4, 5] and skipped == 1
    with pytest.raises(NsbenchError, match=r"label 'cow' is not among the model's 2 classes"):
        open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["cat", "dog"])


# ---- 7: every writer's failure is one line naming the file and the cause ---------------------------------------------

def test_export_under_a_file_size_limit_is_one_line_naming_the_safetensors_file(tmp_path):
    """safetensors' Rust writer fails for real (RLIMIT_FSIZE, as on a full disk) with a SafetensorError."""
    ckpt = _checkpoint(tmp_path / "m.pt", list("abcd"))
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))
        from nsbench.cli import main
        sys.exit(main(["export", {str(ckpt)!r}, "--out", {str(tmp_path / 'exp')!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    (line,) = _error_lines(proc.stderr)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert line == f"nsbench: error: {tmp_path / 'exp' / 'model.safetensors'}: cannot write (File too large)", line
    assert [p.name for p in (tmp_path / "exp").iterdir()] == []  # no temporary left


def test_torch_iostream_error_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """At one free-space level torch's writer fails with libstdc++'s bare `basic_ios::clear: iostream error`."""
    from nsbench.utils import atomic_path

    def full(obj, f, *a, **k):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(NsbenchError, match=r"^.*iter0\.pt: cannot write \((No space left on device|the write was cut "
                                           r"short: disk full or quota exceeded\? \(basic_ios::clear: iostream error\))\)$"):
        with atomic_path(tmp_path / "iter0.pt") as tmp:
            torch.save({"a": 1}, tmp)
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_read_only_filesystem_is_one_line(tmp_path, monkeypatch, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt", list("abcd"))
    real = os.mkdir

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "ro" / "new")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'ro' / 'new'}: cannot create the folder (Read-only file system)", line


def test_report_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    a = _eval_folder("iter0", tmp_path / "a")
    assert main(["report", str(a), "--out", str(tmp_path / "afile")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: --out {tmp_path / 'afile'}: exists and is not a folder"
    assert main(["report", str(a), "--out", str(tmp_path / "afile" / "sub")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'afile' / 'sub'}: cannot create the folder (Not a directory)"


def test_a_log_that_cannot_be_opened_is_one_line(tiny_folder, tmp_path, capsys, monkeypatch):
    import nsbench.training.driver as drv
    from test_study import tiny_study

    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained without its log"))
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0])
    (tmp_path / "out" / "study.log").mkdir(parents=True)  # stands for a log file that cannot be opened
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'out' / 'study.log'}: cannot write (Is a directory)", line


# ---- 8: every variant of a study is resolved and checked before anything trains --------------------------------------

@pytest.mark.parametrize("variants, message", [
    ({"noisy_student": 3}, "variants.noisy_student: expected a mapping (about, overrides) or a list of KEY=VALUE "
                           "overrides, got int 3"),
    ({"noisy_student": "ns.iterations=2"}, "variants.noisy_student: expected a mapping"),
    ({"noisy_student": {"overrides": [3]}}, "variants.noisy_student.overrides.0"),
    ({"noisy_student": {"overrides": []}, "no_noise": {"overrides": ["students.0.kwargs.channel_multiplier=0.5"]}},
     "variant no_noise (no_noise-seed0): iteration 1: student test_efficientnet"),
])
def test_bad_variants_are_refused_naming_the_variant_before_anything_trains(variants, message, tiny_folder, tmp_path,
                                                                             capsys, monkeypatch):
    import nsbench.training.driver as drv
    from test_study import tiny_study

    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained despite a bad study"))
    tables = [{"title": "t", "rows": ["noisy_student"],
               "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher"}]}]
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0], variants=variants, tables=tables)
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert str(path) in line and message in line, line
    assert not (tmp_path / "out" / "runs").exists()
