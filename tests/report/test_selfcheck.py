"""The statistics self-check (benchmarks/stats_selfcheck.py) at its CI size: the report's intervals cover, a null
study's claims keep the family-wise error, and a difference the size of the stated MDE is found about 80% of the
time. Bounds are four Monte Carlo standard errors wide at this size, so a failure means broken statistics, not luck."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_statistics_keep_their_promises_at_ci_size():
    spec = importlib.util.spec_from_file_location("stats_selfcheck", ROOT / "benchmarks" / "stats_selfcheck.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["stats_selfcheck"] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    checks = {c.name: c for c in mod.run("small")}
    for name in ("coverage, paired accuracy", "coverage, normalised flip rate"):
        c = checks[name]
        assert abs(c.share - 0.95) <= 4 * max(c.mc_se, 0.018), (name, c.share)
    fwer = checks["family-wise error, null study"]
    assert fwer.share <= 0.05 + 4 * 0.011, fwer.share
    power = checks["power at the stated MDE"]
    assert abs(power.share - 0.80) <= 4 * 0.033, power.share
    assert 0 < checks["power, study claim"].share < 1
    assert "| check |" in mod.markdown(list(checks.values()))
