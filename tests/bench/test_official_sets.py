"""Official shifted sets from fabricated trees in each released layout: ImageNet-V2 (class-index folders),
ImageNet-Sketch (wnid folders), ImageNet-C-bar and ImageNet-3DCC (corruption trees); rows, labels, preprocessing,
calibration rows, and a skip with a note when a set is absent."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import PixelOracle, ctx_for, encoded_image, save, synsets
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig, load_suite
from nsbench.bench.tasks import imagenet_3dcc as T3, imagenet_c_bar as TB, imagenet_sketch as TS, imagenet_v2 as TV
from nsbench.data.transforms import prepare
from nsbench.resources import resolve
from nsbench.utils import NsbenchError


class Recorder(PixelOracle):
    def forward(self, x):
        self.inputs = getattr(self, "inputs", []) + [x.clone()]
        return super().forward(x)


def by(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def test_v2_folders_are_class_indices_not_text_order(tmp_path):
    classes = [0, 1, 2, 10]  # as text, "10" sorts before "2": ImageFolder would mislabel it
    root = tmp_path / "v2"
    for variant in ("matched-frequency", "threshold0.7"):
        for k, c in enumerate(classes):
            save(root / f"imagenetv2-{variant}-format-val" / str(c) / "a.jpeg", encoded_image(k, 80))
    save(root / "imagenetv2-matched-frequency-format-val" / "1" / "b.jpeg", encoded_image(0, 80))  # predicted 0
    ctx = ctx_for(tmp_path, PixelOracle(classes, decoy=None))
    t = TV.ImageNetV2Task(enabled=True, root=str(root))
    res = TV.run(ctx, t, Normaliser("none"))
    acc = {r["condition"]: (r["value"], r["n"]) for r in by(res.rows, metric="top1_acc")}
    assert acc == {"matched-frequency": (80.0, 5), "threshold0.7": (100.0, 4)}
    skipped = by(res.rows, metric="skipped")
    assert [r["condition"] for r in skipped] == ["top-images"] and "top-images" in skipped[0]["note"]
    assert {r["metric"] for r in by(res.rows, condition="threshold0.7")} == {"top1_acc", "top1_err", "ece", "nll", "brier"}
    per = res.per_image[0]
    assert set(per.condition) == {"matched-frequency"} and per.correct.sum() == 4
    assert {"confidence", "nll", "brier"} <= set(per.columns)


def test_v2_photos_are_prepared_as_the_clean_split(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 30, (90, 140, 3)).astype(np.uint8)  # grey level < 40: the oracle reads class 0
    save(tmp_path / "v2" / "0" / "a.jpeg", img)
    oracle = Recorder([0], decoy=None)
    ctx = ctx_for(tmp_path, oracle)
    res = TV.run(ctx, TV.ImageNetV2Task(enabled=True, root=str(tmp_path / "v2"), variants=["top-images"]), None)
    assert by(res.rows, metric="top1_acc")[0]["value"] == 100.0
    with Image.open(tmp_path / "v2" / "0" / "a.jpeg") as im:
        want = prepare(np.asarray(im.convert("RGB")), 64, "natural", **ctx.resize)
    got = (oracle.inputs[0][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert got.shape == (64, 64, 3) and np.array_equal(got, want)


def test_sketch_reads_wnid_folders(tmp_path):
    names = synsets()
    for k, c in enumerate((3, 7)):
        for j in range(2):
            save(tmp_path / "ImageNet-Sketch" / "sketch" / names[c] / f"{j}.JPEG", encoded_image(k, 100))
    rng = np.random.default_rng(1)
    odd = rng.integers(0, 30, (120, 70, 3)).astype(np.uint8)  # portrait, grey < 40: class 3
    save(tmp_path / "ImageNet-Sketch" / "sketch" / names[3] / "odd.JPEG", odd)
    oracle = Recorder([3, 7], decoy=None)
    ctx = ctx_for(tmp_path, oracle)
    res = TS.run(ctx, TS.ImageNetSketchTask(enabled=True, root=str(tmp_path / "ImageNet-Sketch")), None)
    assert [(r["value"], r["n"]) for r in by(res.rows, metric="top1_acc")] == [(100.0, 5)]
    with Image.open(tmp_path / "ImageNet-Sketch" / "sketch" / names[3] / "odd.JPEG") as im:
        want = prepare(np.asarray(im.convert("RGB")), 64, "natural", **ctx.resize)  # resize shorter side, centre crop
    seen = [(x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8) for x in oracle.inputs]
    assert any(np.array_equal(img, want) for batch in seen for img in batch)
    conf = np.exp(10) / (np.exp(10) + 999)  # the oracle's one logit of 10 among 1,000
    ece = by(res.rows, metric="ece")[0]["value"]
    assert ece == pytest.approx(100 * (1 - conf))


def test_c_bar_maps_parameter_folders_to_severities_and_reports_mean_error_only(tmp_path):
    names = synsets()
    root = tmp_path / "ImageNet-C-Bar"
    for sev, param in enumerate(("2.35", "3.20", "4.90", "6.60", "9.15"), start=1):  # make_imagenet_c_bar.py names
        save(root / "caustic_refraction" / param / names[3] / "a.JPEG", encoded_image(0 if sev < 5 else 1))
    for sev in range(1, 6):  # the preprocessed tarball's 1-5
        save(root / "sparkles" / str(sev) / names[3] / "a.JPEG", encoded_image(0))
    oracle = Recorder([3, 7], decoy=None)
    ctx = ctx_for(tmp_path, oracle)
    res = TB.run(ctx, TB.ImageNetCBarTask(enabled=True, root=str(root)), None)
    err = {(r["condition"], r["severity"]): r["value"] for r in by(res.rows, metric="top1_err")}
    assert err[("caustic_refraction", 5)] == 100.0 and err[("caustic_refraction", 1)] == 0.0
    assert len(err) == 10
    means = {r["condition"]: r for r in by(res.rows, metric="mean_err")}
    assert means["caustic_refraction"]["value"] == 20.0 and "all" not in means  # 2 of 10: never the set's mean
    (part,) = by(res.rows, metric="mean_err_partial", condition="all")
    assert part["value"] == 10.0 and part["note"].startswith("partial: 2 of 10 corruptions")
    assert not any(r["metric"] in ("ce", "mce", "mce_partial") for r in res.rows)
    assert {x.shape[1:] for x in oracle.inputs} == {(3, 64, 64)}  # shipped files scored as they are
    with Image.open(root / "sparkles" / "1" / names[3] / "a.JPEG") as im:
        shipped = np.asarray(im.convert("RGB"))
    seen = [(x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8) for x in oracle.inputs]
    assert any(np.array_equal(img, shipped) for batch in seen for img in batch)  # no resize, no crop
    assert len(by(res.rows, metric="ece", condition="sparkles")) == 5


def test_3dcc_tree_rows_and_unknown_folders(tmp_path):
    names = synsets()
    root = tmp_path / "ImageNet-3DCC"
    for sev in range(1, 6):
        save(root / "fog_3d" / str(sev) / names[7] / "a.JPEG", encoded_image(1))
    (root / "README_files").mkdir()
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    res = T3.run(ctx, T3.ImageNet3DCCTask(enabled=True, root=str(root)), None)
    assert {(r["condition"], r["severity"]) for r in by(res.rows, metric="top1_err")} == {("fog_3d", s) for s in range(1, 6)}
    assert res.sets["imagenet_3dcc"]["ignored_folders"] == ["README_files"]
    assert res.sets["imagenet_3dcc"]["normaliser"].startswith("none published")
    bad = root / "fog_3d" / "6"
    (bad / names[7]).mkdir(parents=True)
    with pytest.raises(Exception, match="not a severity folder"):
        T3.run(ctx, T3.ImageNet3DCCTask(enabled=True, root=str(root)), None)


# The released names, copied from the sources (not from nsbench):
# EPFL-VILAB/3DCommonCorruptions tools/download_imagenet_3dcc.sh (commit 4fc007b), the loop over the tarballs of
# datasets.epfl.ch/3dcc/imagenet_3dcc/, in its order (the README points to this script and lists no names; the
# order nsbench keeps, and "12 corruptions in ImageNet-3DCC", are RobustBench's README's)
RELEASED_3DCC = ["near_focus", "far_focus", "fog_3d", "flash", "color_quant", "low_light", "xy_motion_blur",
                 "z_motion_blur", "iso_noise", "bit_error", "h265_abr", "h265_crf"]
# facebookresearch/augmentation-corruption README.md (commit ba4d5a5): "We have 10 different corruption types"
RELEASED_C_BAR = ["blue_noise_sample", "brownish_noise", "caustic_refraction", "checkerboard_cutout",
                  "cocentric_sine_waves", "inverse_sparkles", "perlin_noise", "plasma_noise",
                  "single_frequency_greyscale", "sparkles"]


@pytest.mark.parametrize("task,mod,config,released", [
    ("imagenet_3dcc", T3, T3.ImageNet3DCCTask, RELEASED_3DCC),
    ("imagenet_c_bar", TB, TB.ImageNetCBarTask, RELEASED_C_BAR),
], ids=["3dcc", "c_bar"])
def test_the_corruption_names_are_the_released_ones(tmp_path, task, mod, config, released):
    """The names themselves, not their count: a tree holding a folder for each released name is scored whole by the
    task's defaults (no folder ignored as unknown, every name a condition), and the default list is those names."""
    names = T3.THREEDCC_CORRUPTIONS if mod is T3 else TB.CBAR_CORRUPTIONS
    assert sorted(names) == sorted(released) and len(set(names)) == len(names)
    assert sorted(config().corruptions) == sorted(released)
    root = tmp_path / task
    for c in released:
        save(root / c / "1" / synsets()[3] / "a.JPEG", encoded_image(0 if c != released[-1] else 1))
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    res = mod.run(ctx, config(enabled=True, root=str(root), severities=[1]), None)
    assert res.sets[task].get("ignored_folders", []) == []  # present only when a folder was ignored
    err = {r["condition"]: r["value"] for r in by(res.rows, metric="top1_err")}
    assert err == {**{c: 0.0 for c in released[:-1]}, released[-1]: 100.0}
    (mean,) = by(res.rows, metric="mean_err_partial", condition="all")  # severity 1 only: a partial mean
    assert mean["value"] == pytest.approx(100 / len(released))


def test_c_bar_severity_parameters_name_the_released_corruptions():
    from nsbench.reference import imagenet_c_bar_severities

    assert sorted(imagenet_c_bar_severities()) == sorted(RELEASED_C_BAR)


@pytest.mark.parametrize("task,run,config,corruption", [
    ("imagenet_c_bar", TB.run, TB.ImageNetCBarTask, "sparkles"),
    ("imagenet_3dcc", T3.run, T3.ImageNet3DCCTask, "fog_3d"),
])
def test_a_truncated_jpeg_in_a_tree_cell_is_skipped_and_counted(tmp_path, caplog, task, run, config, corruption):
    names = synsets()
    root = tmp_path / task
    for sev in range(1, 6):
        for j in range(3):
            save(root / corruption / str(sev) / names[3] / f"{j}.JPEG", encoded_image(0))
    victim = root / corruption / "2" / names[3] / "1.JPEG"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    with caplog.at_level("WARNING", logger="nsbench.bench.official_sets"):
        res = run(ctx, config(enabled=True, root=str(root), corruptions=[corruption]), None)
    assert res.sets[task]["skipped_unreadable"] == {f"{corruption}|2": 1}
    n = {r["severity"]: r["n"] for r in by(res.rows, metric="top1_err")}
    assert n == {1: 3, 2: 2, 3: 3, 4: 3, 5: 3}
    assert by(res.rows, metric="top1_err", severity=2)[0]["value"] == 0.0  # the two readable images, both right
    warned = [r.getMessage() for r in caplog.records if r.name == "nsbench.bench.official_sets"
              and "unreadable" in r.getMessage()]  # (one corruption of the set: its partial mean warns too)
    assert warned == [f"{root / corruption / '2'}: 1 unreadable image(s) skipped and counted"]
    # a cell none of whose images reads is an error that names it, not a row of n = 0
    for j in range(3):
        f = root / corruption / "4" / names[3] / f"{j}.JPEG"
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(NsbenchError, match=f"{corruption}/4: none of its 3 image"):
        run(ctx, config(enabled=True, root=str(root), corruptions=[corruption]), None)


def test_imagenet_suite_skips_absent_sets_with_a_note(tmp_path, monkeypatch):
    for var in ("NSBENCH_IMAGENET", "NSBENCH_IMAGENET_C", "NSBENCH_IMAGENET_P", "NSBENCH_IMAGENET_A"):
        monkeypatch.setenv(var, str(tmp_path))
    for var in ("NSBENCH_IMAGENET_V2", "NSBENCH_IMAGENET_SKETCH", "NSBENCH_IMAGENET_C_BAR", "NSBENCH_IMAGENET_3DCC"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_suite(resolve("suite", "imagenet"))
    assert {"imagenet_v2", "imagenet_sketch", "imagenet_c_bar", "imagenet_3dcc"} <= set(cfg.tasks())
    ctx = ctx_for(tmp_path, PixelOracle([3], decoy=None))
    for mod, name in ((TV, "imagenet_v2"), (TS, "imagenet_sketch"), (TB, "imagenet_c_bar"), (T3, "imagenet_3dcc")):
        res = mod.run(ctx, getattr(cfg, name), None)
        (row,) = res.rows
        assert row["metric"] == "skipped" and row["value"] is None and "$NSBENCH_IMAGENET" in row["note"]
    with pytest.raises(Exception, match="folder not found"):
        TS.run(ctx, TS.ImageNetSketchTask(enabled=True, root=str(tmp_path / "nowhere")), None)


def test_every_official_set_task_is_registered_and_off_by_default():
    from nsbench.bench.registry import task_kinds
    from nsbench.schema import OFFICIAL_SET_TASKS

    kinds = task_kinds()
    assert all(t in kinds and not getattr(SuiteConfig(), t).enabled for t in OFFICIAL_SET_TASKS)


@pytest.mark.parametrize("task, mod, config", [("imagenet_3dcc", T3, lambda **k: T3.ImageNet3DCCTask(**k)),
                                               ("imagenet_c_bar", TB, lambda **k: TB.ImageNetCBarTask(**k))],
                         ids=["3dcc", "c_bar"])
def test_a_partial_download_gives_a_partial_mean_and_a_warning(tmp_path, task, mod, config, caplog):
    """2 corruptions at severities 1 and 3 (issue 33): per-corruption and overall means over what is there, named
    _partial, their notes and a warning naming what is missing; never the set's mean error."""
    names = T3.THREEDCC_CORRUPTIONS if mod is T3 else TB.CBAR_CORRUPTIONS
    root = tmp_path / task
    for c in names[:2]:
        for sev in (1, 3):
            save(root / c / str(sev) / synsets()[3] / "a.JPEG", encoded_image(0 if (c, sev) != (names[1], 3) else 1))
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    with caplog.at_level("WARNING"):
        res = mod.run(ctx, config(enabled=True, root=str(root)), None)
    assert not by(res.rows, metric="mean_err")
    per = {r["condition"]: r for r in by(res.rows, metric="mean_err_partial")}
    assert per[names[0]]["value"] == 0.0 and per[names[1]]["value"] == 50.0  # severities 1, 3: errors 0 and 100
    assert per[names[0]]["note"] == "partial: severities 1,3 of 1-5"
    assert per["all"]["value"] == 25.0
    assert per["all"]["note"].startswith(f"partial: 2 of {len(names)} corruptions; missing: {names[2]}")
    assert "lacks severities 2,4,5" in per["all"]["note"]
    assert any("mean_err_partial is not the set's mean error" in m for m in caplog.messages)
    from nsbench import schema

    rows = pd.DataFrame([{**r, "severity": r.get("severity"), "eps_255": r.get("eps_255")} for r in res.rows])
    key = "3dcc_mean_err_partial" if mod is T3 else "c_bar_mean_err_partial"
    assert schema.headline_numbers(rows)[key] == 25.0  # the log line and --json carry it by name


# ---- issue 31: the suite order, ImageNet-V2's variant names and class folders, its skipped rows


def test_tasks_run_in_the_order_the_shipped_suite_lists_them():
    """suites/imagenet.yaml lists its sections in the order the harness runs them (clean, -C, -P, -A, FGSM, then the
    official shifted sets: -V2, -Sketch, -C-bar, -3DCC, as its description says); task_kinds() is that order."""
    import yaml

    from nsbench.bench.registry import task_kinds

    kinds = list(task_kinds())
    listed = [k for k in yaml.safe_load(resolve("suite", "imagenet").read_text()) if k in kinds]
    assert listed == ["clean", "corruptions", "perturbations", "natural_adversarial", "fgsm", "imagenet_v2",
                      "imagenet_sketch", "imagenet_c_bar", "imagenet_3dcc"]
    assert [k for k in kinds if k in listed] == listed


@pytest.mark.parametrize("variants, says", [(["matched-frequency", "foo"], "unknown foo;"), ([], "unknown (empty);")])
def test_v2_unknown_or_no_variants_are_refused(variants, says):
    with pytest.raises(NsbenchError, match=re.escape(f"imagenet_v2.variants: {says}")):
        TV.validate(TV.ImageNetV2Task(enabled=True, variants=variants))
    TV.validate(TV.ImageNetV2Task(enabled=True, variants=["top-images"]))


@pytest.mark.parametrize("folder", ["1000", "n01440764", "-1"])
def test_v2_class_folders_outside_0_to_999_are_refused(tmp_path, folder):
    root = tmp_path / "v2" / "imagenetv2-top-images-format-val"
    save(root / "0" / "a.jpeg", encoded_image(0, 80))
    save(root / folder / "b.jpeg", encoded_image(0, 80))
    ctx = ctx_for(tmp_path, PixelOracle([0], decoy=None))
    with pytest.raises(NsbenchError, match=r"ImageNet-V2 class folders are named 0\.\.999"):
        TV.run(ctx, TV.ImageNetV2Task(enabled=True, root=str(tmp_path / "v2")), None)
    save(tmp_path / "ok" / "imagenetv2-top-images-format-val" / "999" / "c.jpeg", encoded_image(0, 80))
    res = TV.run(ctx, TV.ImageNetV2Task(enabled=True, root=str(tmp_path / "ok"), variants=["top-images"]), None)
    assert by(res.rows, metric="top1_acc")[0]["n"] == 1  # 999, the last class index, is a class folder


def test_v2_root_without_any_variant_says_so(tmp_path):
    (tmp_path / "v2" / "notes").mkdir(parents=True)
    ctx = ctx_for(tmp_path, PixelOracle([0], decoy=None))
    with pytest.raises(NsbenchError, match="none of the ImageNet-V2 variants matched-frequency, threshold0.7, top-images"):
        TV.run(ctx, TV.ImageNetV2Task(enabled=True, root=str(tmp_path / "v2")), None)


def test_v2_an_absent_variant_is_a_skipped_row_of_no_images(tmp_path):
    save(tmp_path / "v2" / "imagenetv2-threshold0.7-format-val" / "0" / "a.jpeg", encoded_image(0, 80))
    ctx = ctx_for(tmp_path, PixelOracle([0], decoy=None))
    res = TV.run(ctx, TV.ImageNetV2Task(enabled=True, root=str(tmp_path / "v2")), None)
    skipped = {r["condition"]: (r["value"], r["n"]) for r in by(res.rows, metric="skipped")}
    assert skipped == {"matched-frequency": (None, 0), "top-images": (None, 0)}
