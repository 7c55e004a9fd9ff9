"""Metrics anchored on the reference facts (../shared/reference/README.md)."""
from __future__ import annotations

import numpy as np
import pytest

from nsbench import reference
from nsbench.bench import metrics as M


def test_alexnet_own_errors_give_ce_one_and_mce_100():
    alex = reference.alexnet_c_errors()
    for c, errs in alex.items():
        assert M.ce(errs, alex[c]) == pytest.approx(1.0)
        assert M.relative_ce(errs, reference.ALEXNET_CLEAN_ERR, alex[c], reference.ALEXNET_CLEAN_ERR) == pytest.approx(1.0)
    assert M.mce(alex, alex, reference.C_BENCHMARK) == pytest.approx(100.0)
    assert M.relative_mce(alex, reference.ALEXNET_CLEAN_ERR, alex, reference.ALEXNET_CLEAN_ERR,
                          reference.C_BENCHMARK) == pytest.approx(100.0)


def test_ce_is_ratio_of_sums_not_mean_of_ratios():
    errs, ref = [0.1, 0.5], [0.2, 0.6]
    assert M.ce(errs, ref) == pytest.approx(0.6 / 0.8)
    assert M.ce(errs, ref) != pytest.approx(np.mean([0.1 / 0.2, 0.5 / 0.6]))


def test_resnet50_row_gives_mce_76_9():
    """Errors that are the paper's ResNet-50 CE row times AlexNet's errors give that row back as CEs through
    nsbench, and an mCE of 76.9 (reported 76.7 from unrounded values)."""
    row = dict(zip(reference.C_BENCHMARK, [80, 82, 83, 75, 89, 78, 80, 78, 75, 66, 57, 71, 85, 77, 77]))
    alex = reference.alexnet_c_errors()
    errors = {c: [e * row[c] / 100 for e in alex[c]] for c in reference.C_BENCHMARK}
    for c in reference.C_BENCHMARK:
        assert 100 * M.ce(errors[c], alex[c]) == pytest.approx(row[c])
    assert round(M.mce(errors, alex, reference.C_BENCHMARK), 1) == 76.9


def test_benchmark_corruptions_match_reference_table():
    rows = {c for c, _ in reference.alexnet_c_errors().items()}
    assert set(reference.C_BENCHMARK) | set(reference.C_VALIDATION) == rows
    assert len(reference.C_BENCHMARK) == 15


@pytest.mark.parametrize("sigma,expected", [
    (list(range(1, 11)), 0), ([2, 1, 3, 4, 5, 6, 7], 2), ([3, 1, 2, 4, 5, 6, 7], 4),
    ([2, 3, 4, 5, 6, 7, 8, 9, 10, 1], 5), ([1, 2, 3, 4, 6, 5, 7], 1), ([1, 2, 3, 5, 6, 4, 7], 2),
    ([5, 4, 3, 2, 1, 6, 7], 12),
])
def test_top5_distance_examples_from_appendix_c(sigma, expected):
    assert M.top5_distance(sigma) == expected
    # the same through the sequence path: frame 0 ranks classes 0..9 in order; frame 1's ranks are sigma
    n = 10
    sigma = sigma + list(range(len(sigma) + 1, n + 1))
    f0 = -np.arange(n, dtype=float)
    f1 = np.empty(n)
    f1[np.arange(n)] = -np.asarray(sigma, float)  # class i gets rank sigma[i]
    assert M.sequence_t5d(np.stack([f0, f1]), noise=False) == expected


def test_flip_probability_noise_and_temporal():
    a, b = 0, 1
    seq = np.array([[a, b, a, a]])
    assert M.flip_probability(seq, noise=True)[0] == pytest.approx(1 / 3)
    assert M.flip_probability(seq, noise=False)[0] == pytest.approx(2 / 3)


def test_flip_probability_difficulty_two_uses_both_offset_chains():
    # chains (0, 2, 4) and (1, 3, 5): pairs (0,2) (2,4) (1,3) (3,5)
    seq = np.array([[0, 0, 1, 0, 1, 1]])
    # (0,2): 0 vs 1 flip; (2,4): 1 vs 1 same; (1,3): 0 vs 0 same; (3,5): 0 vs 1 flip -> 2/4
    assert M.flip_probability(seq, noise=False, difficulty=2)[0] == pytest.approx(0.5)
    # noise ignores difficulty and compares with the first frame: flips at 2, 4, 5 -> 3/5
    assert M.flip_probability(seq, noise=True, difficulty=2)[0] == pytest.approx(0.6)


def test_mean_per_sequence_then_over_sequences():
    seqs = np.array([[0, 1, 1, 1], [0, 0, 0, 0]])
    fp = M.flip_probability(seqs, noise=False)
    assert fp.tolist() == pytest.approx([1 / 3, 0.0])


def test_ordinal_ranks_break_ties_by_index():
    assert M.ordinal_ranks(np.array([[1.0, 3.0, 3.0, 0.0]])).tolist() == [[3, 1, 2, 4]]
