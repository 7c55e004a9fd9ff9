"""Per-image random numbers that do not depend on the device, the batch or the order of work: each value is a hash
of (image seed, stream, element index) -- splitmix64 (Steele, Lea & Flood 2014, the finaliser of Java's
SplittableRandom), computed with torch's int64 arithmetic, which wraps identically on CPUs and GPUs. So the same
(seed, stream) gives the same numbers on any device and in any batch; a corruption asks for one stream per random
draw it makes (its noise, its angle, ...), so adding a draw never shifts another's numbers."""
from __future__ import annotations

import math

import torch

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB
_STREAM = 0x632BE59BD9B4E019  # spreads streams apart (any odd constant)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """z + golden, then (z ^ z >>> 30) * mix1, (z ^ z >>> 27) * mix2, z ^ z >>> 31; on a new tensor."""
    return _splitmix64_(z + _GOLDEN, golden=False)


def _splitmix64_(z: torch.Tensor, golden: bool = True) -> torch.Tensor:
    """splitmix64 in place on z (which the caller owns) and one scratch buffer: a temporary per step would allocate,
    and on a CPU fault in, fresh memory eight times."""
    if golden:
        z.add_(_GOLDEN)
    t = torch.empty_like(z)
    for k, mix in ((30, _MIX1), (27, _MIX2), (31, None)):
        torch.bitwise_right_shift(z, k, out=t)
        t.bitwise_and_((1 << (64 - k)) - 1)  # logical shift
        z.bitwise_xor_(t)
        if mix is not None:
            z.mul_(mix)
    return z


def _unit_(bits: torch.Tensor) -> torch.Tensor:
    """Owned int64 hashes -> float64 on [0, 1): their top 53 bits times 2^-53."""
    return _shr(bits, 11).to(torch.float64).mul_(2.0**-53)


class Rng:
    """Random numbers for a batch: one row per image, drawn from that image's seed alone."""

    def __init__(self, seeds, device: torch.device | str | None = None):
        self.seeds = torch.as_tensor(seeds, dtype=torch.int64, device=device).reshape(-1)
        self.device = self.seeds.device

    def __len__(self) -> int:
        return len(self.seeds)

    def bits(self, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
        """[images, *shape] int64 hashes of (seed, stream, element index)."""
        n = math.prod(shape)
        idx = torch.arange(n, dtype=torch.int64, device=self.device)
        key = splitmix64(self.seeds * _STREAM + int(stream))  # [images]
        return _splitmix64_(key[:, None] ^ _splitmix64_(idx)[None, :]).reshape(len(self), *shape)

    def uniform_at(self, stream: int, flat: torch.Tensor, per: int) -> torch.Tensor:
        """uniform(stream, (per,)).reshape(-1)[flat] for those elements alone (flat: indices into the [images * per]
        numbers): a rejection sampler's later rounds redraw few elements without hashing them all."""
        rows = torch.div(flat, per, rounding_mode="floor")
        key = splitmix64(self.seeds * _STREAM + int(stream)).index_select(0, rows)
        return _unit_(_splitmix64_(key ^ _splitmix64_(flat - rows * per)))

    def uniform(self, stream: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] float64 uniform on [0, 1), 53 random bits each."""
        return _unit_(self.bits(stream, shape))

    def normal(self, stream: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] float64 standard normals (Box-Muller on two uniforms of the stream)."""
        u = self.uniform(stream, (2, *shape))  # owned: the steps below run in place on its two halves
        radius = u[:, 0].neg_().add_(1.0).log_().mul_(-2.0).sqrt_()  # sqrt(-2 log(1 - u1)); 1 - u1 in (0, 1]
        return radius.mul_(u[:, 1].mul_(2 * math.pi).cos_())

    def integers(self, stream: int, high: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] int64 uniform on 0..high-1."""
        return torch.floor(self.uniform(stream, shape) * high).to(torch.int64).clamp_(max=high - 1)
