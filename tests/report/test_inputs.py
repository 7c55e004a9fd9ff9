"""Report inputs: every corrupt or cut-short file stops the report with one line naming it; an --out that names an
input or a file is refused; new result rows (notes, failed tasks, partial means, other attacks) and hostile labels
render as words, never as nan or markup."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import FIX, error_lines, eval_folder
from nsbench.cli import main
from nsbench.report.load import load_inputs
from nsbench.report.render import render_report
from nsbench.utils import NsbenchError


def copy_model(src: str, dst: Path, *, label: str | None = None, edit=None, rehash: bool = True) -> Path:
    """A copy of a fixture model, optionally relabelled and with its rows edited; meta.json's results hash is
    rewritten to match (as the new writer would) when the source carries one and `rehash`."""
    shutil.copytree(FIX / "results" / src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    if label is not None or edit is not None:
        rows = pd.read_csv(dst / "results.csv", keep_default_na=False, na_values=[""])
        if label is not None:
            rows["model"] = label
            meta["model"]["label"] = label
        rows = edit(rows) if edit is not None else rows
        rows.to_csv(dst / "results.csv", index=False, float_format="%.6g")
    if "results" in meta and rehash:
        data = (dst / "results.csv").read_bytes()
        meta["results"] = {"rows": data.count(b"\n") - 1, "sha256": hashlib.sha256(data).hexdigest()}
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def one_line_error(tmp_path: Path, inputs: list[Path], capsys) -> str:
    code = main(["report", *map(str, inputs), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and not (tmp_path / "out" / "index.html").exists(), err
    return err


@pytest.mark.parametrize("src", ["xss", "iter0"])  # with the results hash in meta.json (new writer) and without
def test_truncated_results_csv_renders_no_report(tmp_path, capsys, src):
    d = copy_model(src, tmp_path / "m")
    data = (d / "results.csv").read_bytes()
    (d / "results.csv").write_bytes(data[: len(data) * 2 // 3])
    err = one_line_error(tmp_path, [d], capsys)
    assert "results.csv" in err and ("truncated" in err or "sha256" in err)


def test_modified_results_csv_is_refused_when_meta_records_its_hash(tmp_path):
    d = copy_model("xss", tmp_path / "m")
    text = (d / "results.csv").read_text().replace("top1_acc,89", "top1_acc,99", 1)
    (d / "results.csv").write_text(text)
    with pytest.raises(NsbenchError, match=r"results\.csv.*sha256"):
        load_inputs([d])


@pytest.mark.parametrize("case", ["per_image", "history", "stats", "stats_list", "summary_list", "meta_list", "value"])
def test_corrupt_inputs_name_the_file(tmp_path, case):
    m = copy_model("iter0", tmp_path / "m")
    run = tmp_path / "run"
    shutil.copytree(FIX / "run", run)
    target = {
        "per_image": (m / "per_image.parquet", b"PAR1 not really parquet"),
        "history": (run / "history.csv", bytes(range(256)) * 4),
        "stats": (run / "iter1" / "pseudo" / "stats.json", b'{"n_kept": 3, '),
        "stats_list": (run / "iter1" / "pseudo" / "stats.json", b'{"per_class": 7}'),
        "summary_list": (run / "summary.json", b"[1, 2]"),
        "meta_list": (m / "meta.json", b"[]"),
        "value": None,
    }[case]
    if case == "value":
        text = (m / "results.csv").read_text().splitlines()
        text[3] = text[3].rsplit(",", 3)[0] + ",12.5%,200,"  # value column: "12.5%"
        (m / "results.csv").write_text("\n".join(text) + "\n")
        path = m / "results.csv"
    else:
        path, payload = target
        path.write_bytes(payload)
    with pytest.raises(NsbenchError) as e:
        load_inputs([m, run])
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_hostile_labels_render_escaped_with_mathtext_off(tmp_path):
    label = "$\\frac{$ <b>bold</b> & {'k': None}"  # invalid mathtext: matplotlib would raise if it parsed it
    m = copy_model("iter0", tmp_path / "in" / "m", label=label)
    html = render_report([m, FIX / "results" / "xss"], tmp_path / "r", baseline=label).read_text()
    assert "<b>bold</b>" not in html and "$\\frac{$ &lt;b&gt;bold&lt;/b&gt; &amp;" in html
    assert html.count("data:image/png;base64,") >= 5


def _failed_and_partial(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows.task != "natural_adversarial"].copy()
    failed = rows.iloc[[0]].copy()
    failed[["task", "condition", "metric", "value", "note"]] = ["natural_adversarial", "", "failed", np.nan,
                                                                "CUDA out of memory"]
    rows.loc[rows.metric == "mce", ["metric", "condition", "note"]] = [
        "mce_partial", "gaussian_noise,shot_noise,impulse_noise", "missing: 12 of 15 corruptions"]
    rows.loc[(rows.task == "fgsm"), ["task", "condition"]] = ["pgd", "pgd"]  # as the attack task writes PGD rows
    return pd.concat([rows, failed], ignore_index=True)


def test_failed_undefined_partial_and_pgd_rows_render_as_words(tmp_path):
    m = copy_model("xss", tmp_path / "in" / "student", label="student", edit=_failed_and_partial)
    out = tmp_path / "r"
    html = render_report([FIX / "results" / "iter0", m], out, baseline="iter0").read_text()
    text = html.split("<body>", 1)[1]
    assert "failed (CUDA out of memory)" in text
    assert "undefined: the normaliser makes no error" in text
    assert "mCE (partial)" in text and "covers an incomplete benchmark set" in text
    assert "PGD 8/255" in text
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"\bnan\b", words, re.IGNORECASE)
    head = pd.read_csv(out / "headline.csv", keep_default_na=False)
    partial = head[(head.model == "student") & (head.measure == "mce_partial")]
    full = head[(head.model == "student") & (head.measure == "mce")]
    assert len(partial) == 1 and partial.value.iloc[0] != "" and full.value.iloc[0] == ""  # never shown as mCE


def test_seed_groups_are_pooled_across_seeds(tmp_path):
    ins = [copy_model("iter0", tmp_path / "in" / f"b{s}", label=f"teacher-seed{s}") for s in (0, 1)]
    ins += [copy_model("xss", tmp_path / "in" / f"s{s}", label=f"student-seed{s}") for s in (0, 1)]
    out = tmp_path / "r"
    html = render_report(ins, out, baseline="teacher-seed0").read_text()
    seeds = pd.read_csv(out / "seeds.csv")
    assert set(seeds.group) == {"teacher", "student"} and (seeds.seeds == 2).all()
    row = seeds[(seeds.group == "student") & (seeds.measure == "clean_top1")].iloc[0]
    assert row.value == pytest.approx(89.0) and row.test.startswith("paired t over 2 seeds")
    assert row.verdict == "no interval (zero variance across seeds)"  # copies: the same difference in both seeds
    assert "Across seeds" in html


def _never_flips(rows: pd.DataFrame) -> pd.DataFrame:
    """What the old writer saves when the normaliser never flips: FR undefined, left empty without a note."""
    rows = rows.copy()
    p = rows.task == "perturbations"
    rows.loc[p & rows.metric.isin(["fr", "mfr"]), "value"] = np.nan
    rows.loc[p & rows.metric.isin(["fp", "mean_fp"]), "value"] = 0.0
    return rows


def test_old_results_with_empty_values_render_as_undefined(tmp_path):
    a = copy_model("iter0", tmp_path / "in" / "a", edit=_never_flips)
    b = copy_model("iter0", tmp_path / "in" / "b", label="other", edit=_never_flips)
    out = tmp_path / "r"
    html = render_report([a, b], out, baseline="iter0").read_text()
    head = pd.read_csv(out / "headline.csv", keep_default_na=False)
    mfr = head[(head.model == "other") & (head.measure == "mfr")].iloc[0]
    assert mfr.value == "" and mfr.note == "undefined" and mfr.verdict == "no interval"
    assert "undefined" in _text(html) and not re.search(r"\bnan\b", _text(html), re.IGNORECASE)


def _text(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html.split("<body>", 1)[1])


def test_table_normaliser_resamples_the_model_side_only(tmp_path):
    """With a published-table normaliser (no per-image outcomes), its denominators are recovered from the saved
    rows as constants: the interval still covers the saved mCE / mFR; as the fixture's two models err independently,
    holding the denominators fixed narrows it against resampling iter0 as normaliser."""
    from nsbench.report.compare import headline

    m = copy_model("xss", tmp_path / "m")
    meta = json.loads((m / "meta.json").read_text())
    meta["normaliser"] = {"kind": "alexnet", "name": "AlexNet (published)", "sha256": None}
    (m / "meta.json").write_text(json.dumps(meta))
    alone = headline(load_inputs([m])[0], None).set_index("measure")
    paired = headline(load_inputs([FIX / "results"])[0], "iter0")
    paired = paired[paired.model != "iter0"].set_index("measure")
    for k in ("mce", "relative_mce", "mfr", "mt5d"):
        lo, v, hi = alone.loc[k, ["ci_low", "value", "ci_high"]]
        assert lo < v < hi, k
        assert hi - lo < paired.loc[k, "ci_high"] - paired.loc[k, "ci_low"], k


# a report never writes into an input folder (issue 21, probe 1)

@pytest.mark.usefixtures("fresh_log_handlers")
def test_report_out_naming_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    a = eval_folder("iter0", tmp_path / "a")
    b = eval_folder("iter0", tmp_path / "b", label="b")
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    for out in (a, b, tmp_path):  # an input, the other input, a folder holding them
        code = main(["report", str(a), str(b) if out != tmp_path else str(tmp_path), "--out", str(out)]
                    if out != tmp_path else ["report", str(tmp_path), "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and error_lines(err) == [f"nsbench: error: --out {out}: is an input of the report "
                                                   f"({out}); a report never writes into its inputs: choose another "
                                                   f"folder"], err
    other = eval_folder("iter0", tmp_path / "other", label="other")  # eval results not among the inputs
    assert main(["report", str(a), "--out", str(other)]) == 2
    assert "holds eval results, which the report would overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before  # results.csv untouched
    assert not (a / "index.html").exists() and not (other / "index.html").exists()
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "report")]) == 0  # still reportable
    assert (tmp_path / "report" / "index.html").exists()


@pytest.mark.usefixtures("fresh_log_handlers")
def test_report_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    a = eval_folder("iter0", tmp_path / "a")
    assert main(["report", str(a), "--out", str(tmp_path / "afile")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: --out {tmp_path / 'afile'}: exists and is not a folder"
    assert main(["report", str(a), "--out", str(tmp_path / "afile" / "sub")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'afile' / 'sub'}: cannot create the folder (Not a directory)"
