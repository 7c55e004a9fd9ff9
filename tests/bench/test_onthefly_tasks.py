"""corruptions.generate / perturbations.generate: the on-the-fly path scores the same images as the cached one (the
built set's clean images, each with the cached path's per-image seed) and stores no corrupted image; for the
deterministic corruptions and perturbations the per-image outcomes agree with the cached cells."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nsbench import ScoreSettings, evaluate

DET_C = "corruptions.corruptions=[contrast,pixelate,brightness]"
DET_P = "perturbations.perturbations=[translate,rotate,brightness]"
SUITE = ["corruptions.limit=24", "corruptions.severities=[1,3,5]", DET_C, "perturbations.limit=6", DET_P,
         "natural_adversarial.enabled=false", "fgsm.enabled=false"]


def _eval(tiny_run, out, cache, how):
    return evaluate(str(tiny_run / "iter1.pt"), "robustness", out / how,
                    settings=ScoreSettings(overrides=[*SUITE, f"corruptions.generate={how}",
                                                      f"perturbations.generate={how}"], cache_dir=cache, device="cpu"))


def test_on_the_fly_cells_agree_with_cached_ones(tiny_run, tmp_path):
    cache = tmp_path / "cache"
    cached = _eval(tiny_run, tmp_path, cache, "cached")
    fly = _eval(tiny_run, tmp_path, cache, "on_the_fly")
    pc = pd.read_parquet(tmp_path / "cached" / f"{tiny_run.name}-iter1" / "per_image.parquet")
    pf = pd.read_parquet(tmp_path / "on_the_fly" / f"{tiny_run.name}-iter1" / "per_image.parquet")
    key = ["task", "condition", "severity", "image"]
    c = pc[pc.task == "corruptions"].set_index(key).sort_index()
    f = pf[pf.task == "corruptions"].set_index(key).sort_index()
    assert c.index.equals(f.index) and len(c) == 3 * 3 * 24
    assert (c.correct == f.correct).mean() >= 0.99  # frames within one grey level: a flip only at a boundary
    p_c = pc[pc.task == "perturbations"].set_index(["condition", "image"]).sort_index()
    p_f = pf[pf.task == "perturbations"].set_index(["condition", "image"]).sort_index()
    assert p_c.index.equals(p_f.index) and np.allclose(p_c.flip, p_f.flip, atol=1 / 15)
    # the rows name how the set came about
    import json

    meta = json.loads((tmp_path / "on_the_fly" / f"{tiny_run.name}-iter1" / "meta.json").read_text())
    assert meta["sets"]["corruptions"]["generate"] == "on_the_fly"
    assert meta["sets"]["perturbations"]["generate"] == "on_the_fly"
    # nothing corrupted is stored by the on-the-fly run beyond the cached run's files
    sets = {p.name for p in (cache / "sets").rglob("*.npy")}
    assert any(n.startswith("contrast-") for n in sets)  # the cached run's cells
    assert len(cached) and len(fly)


def test_on_the_fly_alone_stores_only_clean_images(tiny_run, tmp_path):
    _eval(tiny_run, tmp_path, tmp_path / "cache", "on_the_fly")
    files = sorted(p.name for p in (tmp_path / "cache" / "sets").rglob("*.npy"))
    assert set(files) <= {"clean.npy", "labels.npy", "indices.npy"}, files


def test_generate_is_checked(tiny_run, tmp_path):
    from nsbench.utils import NsbenchError

    with pytest.raises(NsbenchError, match="corruptions.generate must be auto, cached, on_the_fly"):
        evaluate(str(tiny_run / "iter1.pt"), "robustness", tmp_path,
                 settings=ScoreSettings(overrides=["corruptions.generate=fast"], device="cpu"))
