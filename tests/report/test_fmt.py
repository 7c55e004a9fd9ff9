"""How the report writes numbers, p values, intervals and config values, by worked example (issue 31: each mutant of
report/fmt.py that changes a page's text is caught here)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nsbench.report import fmt


def test_numbers_default_to_one_decimal_and_never_print_nan():
    assert fmt.num(12.345) == "12.3" and fmt.num(12.345, 3) == "12.345" and fmt.num(2) == "2.0"
    assert fmt.signed(0.25) == "+0.2" and fmt.signed(-1.26) == "-1.3" and fmt.signed(3, 2) == "+3.00"
    assert fmt.ci(1.04, 2.96) == "[1.0, 3.0]" and fmt.ci(0.1234, 0.5, 2) == "[0.12, 0.50]"
    for bad in (None, float("nan"), math.inf, "x"):
        assert fmt.num(bad) == "–" and fmt.signed(bad) == "–"
        assert fmt.ci(bad, 1.0) == "" and fmt.ci(1.0, bad) == ""  # an interval needs both ends
    assert fmt.finite(0) and fmt.finite("1.5") and not fmt.finite(None) and not fmt.finite("x")


@pytest.mark.parametrize("p, text", [
    (0.0005, "p < 0.001"), (0.001, "p = 0.001"), (0.0123, "p = 0.012"), (0.0999, "p = 0.100"), (0.1, "p = 0.10"),
    (0.456, "p = 0.46"), (1.0, "p = 1.00"), (float("nan"), ""), (None, "")])
def test_p_values_as_papers_print_them(p, text):
    assert fmt.pvalue(p) == text


def test_a_p_value_beside_its_holm_value():
    assert fmt.pvalues(0.012, 0.21) == "p = 0.012 (Holm 0.21)"
    assert fmt.pvalues(0.0004, 0.0009) == "p < 0.001 (Holm < 0.001)"
    assert fmt.pvalues(0.012, float("nan")) == "p = 0.012"  # no adjusted value: the raw one alone
    assert fmt.pvalues(float("nan"), 0.5) == ""  # no raw value: nothing


def test_a_value_or_why_there_is_none():
    assert fmt.value_or_note(51.25, "ignored") == "51.2" and fmt.value_or_note(51.25, digits=2) == "51.25"
    assert fmt.value_or_note(float("nan"), "undefined: zero denominator") == "undefined"
    assert fmt.value_or_note(None, "model diverged") == "failed (model diverged)"
    assert fmt.value_or_note(None, None) == "–" and fmt.value_or_note(None) == "–"


def test_config_values_as_plain_text():
    assert fmt.text(None) == "–" and fmt.text(float("nan")) == "–" and fmt.text(np.float64("nan")) == "–"
    assert fmt.text(0.5) == "0.5" and fmt.text("bicubic") == "bicubic"
    assert fmt.text({"crop_pct": 0.875, "size": None}) == "crop pct 0.875, size –"
    assert fmt.text([1, None, "a"]) == "1, –, a"
    assert fmt.text({}) == "–" and fmt.text([]) == "–"  # empty, never blank


@pytest.mark.parametrize("n, text", [(999, "999"), (1000, "1 k"), (5_288_548, "5.3 M"), (999_999, "1000 k"),
                                     (1_000_000, "1.0 M"), (float("nan"), "–")])
def test_parameter_counts(n, text):
    assert fmt.params(n) == text


def test_names_as_the_papers_print_them():
    assert fmt.name("elastic_transform") == "Elastic" and fmt.name("my_set") == "my set"
    assert fmt.short_name("gaussian_noise") == "Gauss." and fmt.short_name("fog") == "Fog"
    assert fmt.metric_label("mce") == "mCE" and fmt.metric_label("not_a_metric") == "not a metric"
