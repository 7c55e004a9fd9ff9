"""Official shifted sets (bench/official_sets.py) by value: which cells of a corruption tree are scored, the
per-image frame of a cell (its severity, eps_255 0: no attack), the mean over a complete tree, the skipped row, the
checks of a tree task's settings, and what a tree's root may hold besides corruption folders."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from helpers import PixelOracle, ctx_for, encoded_image, save, synsets
from nsbench.bench import official_sets
from nsbench.bench.tasks import imagenet_3dcc as T3, imagenet_sketch as TS
from nsbench.utils import NsbenchError


def by(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def test_only_the_asked_corruptions_and_severities_are_scored_each_image_a_per_image_row(tmp_path):
    names = synsets()
    root = tmp_path / "ImageNet-3DCC"
    for corruption, severities in (("fog_3d", range(1, 6)), ("flash", (1, 2))):
        for sev in severities:
            save(root / corruption / str(sev) / names[7] / "right.JPEG", encoded_image(1))  # the oracle says 7
            save(root / corruption / str(sev) / names[7] / "wrong.JPEG", encoded_image(0))  # the oracle says 3
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    res = T3.run(ctx, T3.ImageNet3DCCTask(enabled=True, root=str(root), corruptions=["fog_3d"], severities=[2, 4]), None)
    errs = by(res.rows, metric="top1_err")
    assert sorted((r["condition"], r["severity"], r["value"], r["n"]) for r in errs) == \
        [("fog_3d", 2, 50.0, 2), ("fog_3d", 4, 50.0, 2)]
    assert len(res.per_image) == 2
    for frame, sev in zip(res.per_image, (2, 4)):
        assert frame.severity.tolist() == [sev, sev] and frame.eps_255.tolist() == [0.0, 0.0]
        assert frame.correct.sum() == 1


def test_a_set_without_severities_has_severity_0_and_eps_0_per_image(tmp_path):
    names = synsets()
    root = tmp_path / "ImageNet-Sketch"
    save(root / "sketch" / names[7] / "a.JPEG", encoded_image(1, 100))
    save(root / "sketch" / names[3] / "b.JPEG", encoded_image(1, 100))  # a 7 in the 3 folder: wrong
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    res = TS.run(ctx, TS.ImageNetSketchTask(enabled=True, root=str(root)), None)
    frame, = res.per_image
    assert frame.severity.tolist() == [0, 0] and frame.eps_255.tolist() == [0.0, 0.0]
    assert sorted(frame.correct.tolist()) == [False, True]


def test_a_complete_tree_has_the_mean_error_over_all_its_cells(tmp_path):
    ctx = ctx_for(tmp_path, PixelOracle([3], decoy=None))
    errors = {"a": {s: 0.1 for s in range(1, 6)}, "b": {1: 0.2, 2: 0.4, 3: 0.6, 4: 0.8, 5: 1.0}}
    rows = official_sets.tree_means(ctx, "imagenet_3dcc", ("a", "b"), errors, 4)
    got = {(r["condition"], r["metric"]): (r["value"], r["n"]) for r in rows}
    assert got[("a", "mean_err")] == (pytest.approx(10.0), 4) and got[("b", "mean_err")] == (pytest.approx(60.0), 4)
    assert got[("all", "mean_err")] == (pytest.approx(35.0), 4)  # (0.1 * 5 + 3.0) / 10 cells
    assert len(rows) == 3


def test_an_absent_set_is_a_skipped_row_of_no_images(tmp_path):
    ctx = ctx_for(tmp_path, PixelOracle([3], decoy=None))
    res = official_sets.skipped(ctx, "imagenet_v2", "no imagenet_v2.root set")
    row, = res.rows
    assert (row["task"], row["condition"], row["metric"], row["n"], row["note"]) == \
        ("imagenet_v2", "all", "skipped", 0, "no imagenet_v2.root set")
    assert res.per_image == [] and res.sets == {"imagenet_v2": {"skipped": "no imagenet_v2.root set"}}


@pytest.mark.parametrize("root", [None, "", "   "])
def test_a_root_not_given_is_unset(root):
    assert official_sets.unset_reason("imagenet_v2", root, "IMAGENET_V2") == \
        "no imagenet_v2.root set (set $IMAGENET_V2 or imagenet_v2.root=PATH)"


def test_a_root_naming_an_unset_variable_is_unset_a_path_is_not():
    assert official_sets.unset_reason("imagenet_v2", "${IMAGENET_V2}/x", "IMAGENET_V2") == \
        "$IMAGENET_V2 is not set (set it or imagenet_v2.root=PATH)"
    assert official_sets.unset_reason("imagenet_v2", "/data/v2", "IMAGENET_V2") is None


@pytest.mark.parametrize("corruptions, severities, message", [
    (["fog_3d", "nope"], [1], "imagenet_3dcc.corruptions: unknown nope; valid: fog_3d, flash"),
    ([], [1], "imagenet_3dcc.corruptions: unknown (empty); valid: fog_3d, flash"),
    (["fog_3d"], [1, 6], "imagenet_3dcc.severities must be a non-empty list within 1-5"),
    (["fog_3d"], [0], "imagenet_3dcc.severities must be a non-empty list within 1-5"),
    (["fog_3d"], [], "imagenet_3dcc.severities must be a non-empty list within 1-5"),
])
def test_tree_task_settings_are_checked(corruptions, severities, message):
    t = SimpleNamespace(corruptions=corruptions, severities=severities)
    with pytest.raises(NsbenchError) as e:
        official_sets.check_tree_task("imagenet_3dcc", t, ("fog_3d", "flash"))
    assert str(e.value) == message
    official_sets.check_tree_task("imagenet_3dcc", SimpleNamespace(corruptions=["flash"], severities=[1, 5]),
                                  ("fog_3d", "flash"))


def test_files_and_hidden_folders_beside_the_corruptions_are_not_reported_as_folders(tmp_path):
    (tmp_path / "fog_3d" / "1" / "n01440764").mkdir(parents=True)
    (tmp_path / "README.txt").write_text("released with the set")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "extras").mkdir()
    cells, unknown = official_sets.scan_tree(tmp_path, ("fog_3d",), "ImageNet-3DCC")
    assert [(c.corruption, c.severity) for c in cells] == [("fog_3d", 1)]
    assert unknown == ["extras"]
