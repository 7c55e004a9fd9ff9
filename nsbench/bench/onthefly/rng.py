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
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


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
        return splitmix64(key[:, None] ^ splitmix64(idx)[None, :]).reshape(len(self), *shape)

    def uniform_at(self, stream: int, flat: torch.Tensor, per: int) -> torch.Tensor:
        """uniform(stream, (per,)).reshape(-1)[flat] for those elements alone (flat: indices into the [images * per]
        numbers): a rejection sampler's later rounds redraw few elements without hashing them all."""
        rows = torch.div(flat, per, rounding_mode="floor")
        key = splitmix64(self.seeds * _STREAM + int(stream)).index_select(0, rows)
        return _shr(splitmix64(key ^ splitmix64(flat - rows * per)), 11).to(torch.float64) * 2.0**-53

    def uniform(self, stream: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] float64 uniform on [0, 1), 53 random bits each."""
        return _shr(self.bits(stream, shape), 11).to(torch.float64) * 2.0**-53

    def normal(self, stream: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] float64 standard normals (Box-Muller on two uniforms of the stream)."""
        u = self.uniform(stream, (2, *shape))
        u1, u2 = 1.0 - u[:, 0], u[:, 1]  # (0, 1]: log never sees 0
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)

    def integers(self, stream: int, high: int, shape: tuple[int, ...] = ()) -> torch.Tensor:
        """[images, *shape] int64 uniform on 0..high-1."""
        return torch.floor(self.uniform(stream, shape) * high).to(torch.int64).clamp_(max=high - 1)
