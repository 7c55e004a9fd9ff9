"""Suite files (bench/suite.py): the ranges of the suite-wide values, the `attacks: [...]` shorthand of
docs/evaluation.md, and the tasks skipped when the variable naming their data is unset."""
from __future__ import annotations

import pytest
import yaml

from nsbench.bench.suite import load_suite, unset_tasks
from nsbench.utils import NsbenchError


def suite(tmp_path, **values):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "t", **values}))
    return path


@pytest.mark.parametrize("values", [{"batch_size": 1}, {"data": {"image_size": 1}}, {"data": {"crop_pct": 1.0}},
                                    {"data": {"crop_pct": 0.001}}, {"data": {"crop_pct": None}}])
def test_smallest_and_largest_allowed_values_load(tmp_path, values):
    """batch_size >= 1, data.image_size >= 1 (or null), 0 < data.crop_pct <= 1 (or null: the model's own)."""
    cfg = load_suite(suite(tmp_path, **values))
    key, value = next(iter(values.items()))
    if key == "data":
        (key, value), = value.items()
        assert getattr(cfg.data, key) == value
    else:
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("values, message", [
    ({"batch_size": 0}, "batch_size: must be >= 1, got 0"),
    ({"data": {"image_size": 0}}, "data.image_size: must be >= 1, got 0"),
    ({"data": {"crop_pct": 0}}, "data.crop_pct: must be > 0 and <= 1, got 0.0"),
    ({"data": {"crop_pct": 1.5}}, "data.crop_pct: must be > 0 and <= 1, got 1.5"),
])
def test_values_out_of_range_are_refused_naming_the_file_and_key(tmp_path, values, message):
    path = suite(tmp_path, **values)
    with pytest.raises(NsbenchError) as e:
        load_suite(path)
    assert str(e.value) == f"{path}: {message}"


def test_attacks_given_as_a_list_are_the_enabled_attacks_task(tmp_path, monkeypatch):
    """`attacks: [{name: ...}]` (docs/evaluation.md) means attacks.run and turns the task on. data.source names an
    unset variable, so the task is skipped rather than validated (torchattacks need not be installed)."""
    monkeypatch.delenv("NSBENCH_TEST_UNSET_SOURCE", raising=False)
    cfg = load_suite(suite(tmp_path, data={"source": "${NSBENCH_TEST_UNSET_SOURCE}"},
                           attacks=[{"name": "torchattacks:APGD", "eps_255": 4}]))
    assert cfg.attacks.enabled is True and "attacks" in cfg.tasks()
    assert [a.name for a in cfg.attacks.run] == ["torchattacks:APGD"]
    assert unset_tasks(cfg)["attacks"] == ("$NSBENCH_TEST_UNSET_SOURCE is not set (data.source): set it, or "
                                           "data.source=SCHEME:PATH, or attacks.enabled=false")


def test_a_built_set_without_a_root_is_skipped_when_data_source_is_unset(tmp_path, monkeypatch):
    """-C built from the evaluation data (no root) cannot run without data.source; with an official root it can."""
    monkeypatch.delenv("NSBENCH_TEST_UNSET_SOURCE", raising=False)
    cfg = load_suite(suite(tmp_path, data={"source": "${NSBENCH_TEST_UNSET_SOURCE}"},
                           corruptions={"enabled": True}))
    assert unset_tasks(cfg)["corruptions"] == ("$NSBENCH_TEST_UNSET_SOURCE is not set (data.source): set it, or "
                                               "data.source=SCHEME:PATH, or corruptions.enabled=false")
    official = load_suite(suite(tmp_path, data={"source": "${NSBENCH_TEST_UNSET_SOURCE}"},
                                corruptions={"enabled": True, "root": str(tmp_path / "imagenet-c")}))
    assert "corruptions" not in unset_tasks(official)


def test_a_suite_file_that_leaves_the_suite_wide_values_out_gets_the_documented_defaults(tmp_path):
    """docs/evaluation.md: seed 0, batches of 500, normaliser auto, fp32, data from the checkpoint (split, size),
    photos resized by crop_pct 0.875 with bilinear interpolation."""
    cfg = load_suite(suite(tmp_path))
    assert (cfg.seed, cfg.batch_size, cfg.normaliser, cfg.precision) == (0, 500, "auto", "fp32")
    assert (cfg.data.split, cfg.data.image_size, cfg.data.crop_pct, cfg.data.interpolation) == \
        (None, None, 0.875, "bilinear")
