"""`nsbench train` end to end: two iterations leave the files and lineage they promise; a second train into one
--out, or an --out that is a file, is one line."""
from __future__ import annotations

import pandas as pd
import yaml

from helpers import teacher_only, tiny_recipe
from nsbench.checkpoint import load_checkpoint
from nsbench.cli import main


def test_main_train_two_iterations_end_to_end(tiny_folder, tmp_path):
    import yaml

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(f"folder:{tiny_folder}", iterations=2)))
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "pseudo.soft=false"]) == 0
    for f in ["config.yaml", "split.json", "train.log", "history.csv", "summary.json", "iter0.pt", "iter1.pt", "iter2.pt",
              "iter1/pseudo/stats.json", "iter2/pseudo/selection-00000-of-00001.parquet"]:
        assert (out / f).exists(), f
    assert not (out / "iter2" / "state.pt").exists()
    metas = [load_checkpoint(out / f"iter{k}.pt")[1] for k in range(3)]
    assert [m["iteration"] for m in metas] == [0, 1, 2]
    assert metas[0]["parent_sha256"] is None
    assert metas[1]["parent_sha256"] == metas[0]["sha256"] and metas[2]["parent_sha256"] == metas[1]["sha256"]
    assert metas[2]["config"]["pseudo"]["soft"] is False and metas[1]["role"] == "student"
    hist = pd.read_csv(out / "history.csv")
    assert sorted(hist["iteration"].unique()) == [0, 1, 2] and hist["val_top1"].notna().all()
    # the same out folder again is refused; unknown override keys are refused with the valid ones listed
    assert main(["train", "--recipe", str(recipe), "--out", str(out)]) == 2
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "x"), "ns.iteration=3"]) == 2


def test_second_train_into_one_out_is_refused_in_one_line(tiny_folder, tmp_path, capsys):
    from nsbench.lock import run_lock

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(teacher_only(tiny_folder)))
    with run_lock(tmp_path / "run", what="nsbench train (train)"):
        assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use by nsbench train (train) (pid" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_out_pointing_at_a_file_is_one_line(tiny_folder, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(teacher_only(tiny_folder)))
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nsbench: error: --out {tmp_path / 'afile'}: exists and is not a folder"
