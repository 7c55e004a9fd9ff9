"""-P sequences in torch (bench/onthefly/perturb.py) against nsbench's numpy generator (bench/perturbation_sets.py's
`sequence`, the port of hendrycks/robustness create_p) on the same images: every frame within one grey level on at
least 99% of pixels, at 32 px (CIFAR-10-P parameters) and on 224-px photographs (ImageNet-P parameters). For the
random perturbations the numpy generator is handed the torch generator's own draws (a stand-in for its
np.random.Generator), so the comparison is of everything but the random numbers; a frame depends only on its image's
seed (the same in a batch of one)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nsbench.bench import perturbation_sets
from nsbench.bench.onthefly import perturb
from nsbench.bench.onthefly.noise_blur import poisson
from nsbench.bench.onthefly.rng import Rng

DETERMINISTIC = ["translate", "rotate", "shear", "scale", "tilt", "zoom_blur", "brightness", "gaussian_blur",
                 "motion_blur"]
RANDOM = ["gaussian_noise", "speckle_noise", "shot_noise", "snow"]


def _photos(size: int, n: int) -> np.ndarray:
    import skimage.data as d

    out = []
    for img in (d.astronaut(), d.coffee(), d.chelsea(), d.rocket())[:n]:
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


class _Draws:
    """Stands in for the np.random.Generator `sequence` takes, answering each call with the torch draws of one image
    in the order the numpy code asks (frame i -> the image's stream i)."""

    def __init__(self, seed: int):
        self.rng, self.calls = Rng([seed]), 0

    def _next(self) -> int:
        self.calls += 1
        return self.calls - 1

    def standard_normal(self, shape):
        return self.rng.normal(self._next(), tuple(shape))[0].numpy()

    def normal(self, size, loc=0.0, scale=1.0):
        return loc + scale * self.rng.normal(self._next(), tuple(size))[0].numpy()

    def poisson(self, lam):
        i = self._next()
        return poisson(self.rng, perturb.FRAME_STREAMS * i, torch.as_tensor(np.asarray(lam, np.float64))[None])[0].numpy()


def _agreement(ours: np.ndarray, ref: np.ndarray) -> float:
    return float((np.abs(ours.astype(int) - ref.astype(int)) <= 1).mean())


CASES = [pytest.param(name, size, n, marks=[pytest.mark.slow] if (name, size) == ("shot_noise", 224) else [])
         for name in DETERMINISTIC + RANDOM for size, n in ((32, 3), (224, 2))]  # shot noise at 224 px: 16 s


@pytest.mark.parametrize("name, size, n", CASES)
def test_frames_match_the_numpy_generator(name, size, n):
    imgs = _photos(size, n)
    seeds = [11 + k for k in range(n)]
    ours = perturb.sequences(torch.from_numpy(imgs), name, 1, seeds).numpy()
    for k in range(n):
        ref = perturbation_sets.sequence(imgs[k], name, 1, _Draws(seeds[k]))
        assert ours[k].shape == ref.shape
        worst = min(_agreement(ours[k][f], ref[f]) for f in range(len(ref)))
        assert worst >= 0.99, (name, size, worst)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "snow", "rotate"])
def test_a_sequence_does_not_depend_on_its_batch(name):
    imgs = torch.from_numpy(_photos(32, 3))
    together = perturb.sequences(imgs, name, 2 if "noise" in name else 1, [5, 6, 7])
    alone = perturb.sequences(imgs[1:2], name, 2 if "noise" in name else 1, [6])
    assert torch.equal(together[1], alone[0])
