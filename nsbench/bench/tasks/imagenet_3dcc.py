"""imagenet_3dcc: top-1 error (and calibration) per corruption and severity on ImageNet-3DCC (3D Common
Corruptions, Kar et al., CVPR 2022), read from its released tree.

Layout (EPFL-VILAB/3DCommonCorruptions README: one `<corruption>.tar.gz` per corruption from
datasets.epfl.ch/3dcc/imagenet_3dcc/, unpacked into `ImageNet-3DCC/`): ImageNet-C's
`<corruption>/<severity 1-5>/<wnid>/<image>`, 12 corruptions, 224 x 224 images scored as shipped.
Normaliser: none published for 3DCC (no AlexNet table), so nsbench reports mean error, never an mCE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import official_sets
from ..registry import TaskResult, register

# the 12 names of EPFL-VILAB/3DCommonCorruptions tools/download_imagenet_3dcc.sh (commit 4fc007b: one tarball each), in
# the order RobustBench's README lists ImageNet-3DCC's corruptions
THREEDCC_CORRUPTIONS = ("near_focus", "far_focus", "bit_error", "color_quant", "flash", "fog_3d", "h265_abr",
                        "h265_crf", "iso_noise", "low_light", "xy_motion_blur", "z_motion_blur")
ENV = "NSBENCH_IMAGENET_3DCC"


@dataclass
class ImageNet3DCCTask:
    enabled: bool = False
    root: str | None = None  # the unpacked ImageNet-3DCC/ folder
    corruptions: list[str] = field(default_factory=lambda: list(THREEDCC_CORRUPTIONS))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


def validate(t: ImageNet3DCCTask) -> None:
    official_sets.check_tree_task("imagenet_3dcc", t, THREEDCC_CORRUPTIONS)


@register("imagenet_3dcc", config=ImageNet3DCCTask, order=13, validate=validate)
def run(ctx, t: ImageNet3DCCTask, norm) -> TaskResult:
    why = official_sets.unset_reason("imagenet_3dcc", t.root, ENV)
    if why:
        return official_sets.skipped(ctx, "imagenet_3dcc", why)
    return official_sets.corruption_tree_task(ctx, "imagenet_3dcc", t, THREEDCC_CORRUPTIONS, "ImageNet-3DCC", None,
                                  "EPFL-VILAB/3DCommonCorruptions: <corruption>/<1-5>/<wnid>/")
