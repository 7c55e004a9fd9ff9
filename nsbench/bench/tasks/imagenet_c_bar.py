"""imagenet_c_bar: top-1 error (and calibration) per corruption and severity on ImageNet-C-bar (Mintun et al.,
NeurIPS 2021), read from its released tree.

Layout (facebookresearch/augmentation-corruption README, "preprocessed ImageNet-C-bar dataset"): ImageNet-C's
`<corruption>/<severity 1-5>/<wnid>/<image>.JPEG`, 10 corruptions. A tree made with the repository's
imagenet_c_bar/make_imagenet_c_bar.py names each severity folder by the corruption's parameter ("{:.2f}" of the
values in imagenet_c_bar/imagenet_c_bar.csv, e.g. caustic_refraction/2.35/); those folders map to severities 1-5
in that file's order (reference_data/imagenet_c_bar_severities.csv). Images are 224 x 224 (the generator's
Resize(256) + CenterCrop(224)), scored as shipped.

Normaliser: none for these corruptions. The repository's only baselines (experiments/baseline_data/
mCE_baseline_imagenet.p, mCE_baseline.p) hold AlexNet's ImageNet-C / CIFAR-10-C errors (clean 43.5) for the 19
ImageNet-C corruptions, none of the C-bar ones; so nsbench reports mean error, never an mCE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...reference import imagenet_c_bar_severities
from .. import official_sets
from ..registry import TaskResult, register

# facebookresearch/augmentation-corruption README ("We have 10 different corruption types")
CBAR_CORRUPTIONS = ("blue_noise_sample", "brownish_noise", "caustic_refraction", "checkerboard_cutout",
                    "cocentric_sine_waves", "inverse_sparkles", "perlin_noise", "plasma_noise",
                    "single_frequency_greyscale", "sparkles")
ENV = "NSBENCH_IMAGENET_C_BAR"


@dataclass
class ImageNetCBarTask:
    enabled: bool = False
    root: str | None = None  # the unpacked tree (ImageNet-C-Bar/ or imagenet_c_bar/)
    corruptions: list[str] = field(default_factory=lambda: list(CBAR_CORRUPTIONS))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


def validate(t: ImageNetCBarTask) -> None:
    official_sets.check_tree_task("imagenet_c_bar", t, CBAR_CORRUPTIONS)


@register("imagenet_c_bar", config=ImageNetCBarTask, order=12, validate=validate)
def run(ctx, t: ImageNetCBarTask, norm) -> TaskResult:
    why = official_sets.unset_reason("imagenet_c_bar", t.root, ENV)
    if why:
        return official_sets.skipped(ctx, "imagenet_c_bar", why)
    folders = {c: tuple(f"{v:.2f}" for v in vals) for c, vals in imagenet_c_bar_severities().items()}
    return official_sets.corruption_tree_task(ctx, "imagenet_c_bar", t, CBAR_CORRUPTIONS, "ImageNet-C-bar", folders,
                                  "facebookresearch/augmentation-corruption: <corruption>/<1-5 or parameter>/<wnid>/")
