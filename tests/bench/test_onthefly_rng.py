"""The per-image random numbers of the on-the-fly corruptions: splitmix64 by the book, one image's numbers the same in
any batch and on any device, and uniform / normal moments."""
from __future__ import annotations

import math

import pytest
import torch

from nsbench.bench.onthefly.rng import Rng, splitmix64

M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """Steele, Lea & Flood's finaliser on Python ints (unbounded, masked to 64 bits)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_splitmix64_is_the_published_function():
    assert _splitmix64(0) == 0xE220A8397B1DCDAF  # the first output of SplittableRandom-style seeding from 0
    xs = [0, 1, 12345, 2**62 + 7, 2**63 - 1, -1 & M64]
    got = splitmix64(torch.tensor([x if x < 2**63 else x - 2**64 for x in xs], dtype=torch.int64))
    assert [int(g) & M64 for g in got] == [_splitmix64(x) for x in xs]


def test_an_images_numbers_do_not_depend_on_its_batch():
    batch = Rng([7, 8, 9])
    for stream in (0, 3):
        alone = Rng([8]).uniform(stream, (4, 5))
        assert torch.equal(batch.uniform(stream, (4, 5))[1], alone[0])
    assert not torch.equal(batch.uniform(0, (10,))[0], batch.uniform(1, (10,))[0])  # streams differ
    assert not torch.equal(batch.uniform(0, (10,))[0], batch.uniform(0, (10,))[1])  # images differ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_same_numbers_on_the_gpu():
    assert torch.equal(Rng([1, 2], "cuda").bits(5, (1000,)).cpu(), Rng([1, 2]).bits(5, (1000,)))


def test_uniform_normal_and_integer_moments():
    r = Rng([11, 12])
    u = r.uniform(0, (200_000,))
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 5 * math.sqrt(1 / 12 / u.numel())
    z = r.normal(1, (200_000,))
    assert abs(float(z.mean())) < 5 / math.sqrt(z.numel()) and abs(float(z.std()) - 1) < 0.01
    k = r.integers(2, 6, (60_000,))
    counts = torch.bincount(k.reshape(-1), minlength=6).double()
    assert k.min() == 0 and k.max() == 5 and float(((counts - 20_000) ** 2 / 20_000).sum()) < 25  # chi2, 5 dof


def test_uniform_at_is_uniform_of_those_elements():
    """A rejection sampler's redraws hash only the pending elements; they are Rng.uniform's numbers."""
    r = Rng([3, 4, 5])
    flat = torch.tensor([0, 7, 99, 100, 101, 250, 299])
    assert torch.equal(r.uniform_at(9, flat, 100), r.uniform(9, (100,)).reshape(-1)[flat])


STREAM_MULTIPLIER = 0x632BE59BD9B4E019  # rng._STREAM: changing it changes every on-the-fly image (bump REVISION)


def _uniform(seed: int, stream: int, element: int) -> float:
    """The documented derivation on Python ints: key = splitmix64(seed * multiplier + stream), the element's number
    splitmix64(key ^ splitmix64(element)), its top 53 bits over 2^53."""
    key = _splitmix64((seed * STREAM_MULTIPLIER + stream) & M64)
    return (_splitmix64(key ^ _splitmix64(element)) >> 11) * 2.0**-53


def test_uniform_is_the_documented_hash_of_seed_stream_and_element():
    seeds, streams = [0, 1, 977, 2**40 + 3], [0, 1, 6]
    for stream in streams:
        got = Rng(seeds).uniform(stream, (3, 4))
        want = [[_uniform(s, stream, e) for e in range(12)] for s in seeds]
        assert got.reshape(len(seeds), 12).tolist() == want


def test_normal_is_box_muller_of_the_streams_two_uniform_rows():
    """z = sqrt(-2 log(1 - u1)) cos(2 pi u2), u1 the stream's elements 0..n-1 and u2 its elements n..2n-1."""
    n = 5
    got = Rng([21, 22]).normal(4, (n,))
    for row, seed in enumerate([21, 22]):
        u = [_uniform(seed, 4, e) for e in range(2 * n)]
        want = [math.sqrt(-2 * math.log(1 - u[e])) * math.cos(2 * math.pi * u[n + e]) for e in range(n)]
        assert got[row].tolist() == pytest.approx(want, rel=1e-14, abs=1e-15)


def test_integers_are_the_floor_of_uniform_times_high():
    got = Rng([5]).integers(2, 7, (50,))
    assert got[0].tolist() == [math.floor(_uniform(5, 2, e) * 7) for e in range(50)]
