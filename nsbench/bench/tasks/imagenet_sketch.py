"""imagenet_sketch: top-1 accuracy (and calibration) on ImageNet-Sketch, read from its released folder.

Layout (HaohanWang/ImageNet-Sketch README; the released ImageNet-Sketch.zip): `sketch/<wnid>/<image>.JPEG`,
50,889 images in the 1,000 ImageNet class folders, named by wnid, so labels come from matching the folder's wnid
with the model's class names. Photos are prepared as the clean split is (resize the shorter side, centre crop).
No normaliser exists: accuracy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...data.sources import scan_folder
from .. import official_sets
from ..registry import TaskResult, register

ENV = "NSBENCH_IMAGENET_SKETCH"


@dataclass
class ImageNetSketchTask:
    enabled: bool = False
    root: str | None = None  # the unpacked folder: sketch/ (or the folder holding it)


def sketch_folder(root: Path) -> Path:
    return root / "sketch" if (root / "sketch").is_dir() else root


@register("imagenet_sketch", config=ImageNetSketchTask, order=11)
def run(ctx, t: ImageNetSketchTask, norm) -> TaskResult:
    why = official_sets.unset_reason("imagenet_sketch", t.root, ENV)
    if why:
        return official_sets.skipped(ctx, "imagenet_sketch", why)
    folder = sketch_folder(official_sets.existing("imagenet_sketch", t.root))
    src = scan_folder(folder, "imagenet-sketch", ctx.em.classes)  # wnid folders; one not among the classes: error
    z = official_sets.score(ctx, "imagenet_sketch", src, str(folder))
    skipped = official_sets.unreadable(z, folder)  # none readable: an error naming the folder, never n = 0
    rows, per = official_sets.accuracy_rows(ctx, "imagenet_sketch", "sketch", z)
    info = {"source": f"official ImageNet-Sketch: {folder}", "layout": "HaohanWang/ImageNet-Sketch: sketch/<wnid>/",
            "n": int(len(z["correct"])), "skipped_unreadable": skipped,
            "preprocessing": "as the clean split (resize shorter side, centre crop)"}
    return TaskResult(rows, [per], {"imagenet_sketch": info})
