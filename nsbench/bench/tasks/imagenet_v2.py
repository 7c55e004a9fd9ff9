"""imagenet_v2: top-1 accuracy (and calibration) on the three ImageNet-V2 test sets, read from their released folders.

Layout (modestyachts/ImageNetV2 README; the tarballs on huggingface.co/datasets/vaishaal/ImageNetV2):
`imagenetv2-<variant>.tar.gz` unpacks to `imagenetv2-<variant>-format-val/<k>/<image>.jpeg`, where the folder name
`k` is the ImageNet class index 0..999 (the position of the wnid in sorted order), 10 images per class. The folders
are labelled by that integer, never by sorting the folder names as text (ImageFolder would put `10` before `2`).
Variants, named as the authors' files name them: matched-frequency (MatchedFrequency, imagenetv2-b-33),
threshold0.7 (Threshold0.7, imagenetv2-a-44), top-images (TopImages, imagenetv2-c-12). Photos are prepared as
the clean split is (the V2 eval.py: Resize(256), CenterCrop(224)). No normaliser exists: accuracy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...data.sources import IMAGE_EXTS, FileSource
from ...utils import NsbenchError
from .. import official_sets
from ..registry import TaskResult, register

VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
ENV = "NSBENCH_IMAGENET_V2"


@dataclass
class ImageNetV2Task:
    enabled: bool = False
    root: str | None = None  # folder holding imagenetv2-<variant>-format-val/ (or one variant's 0..999 folders)
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))


def validate(t: ImageNetV2Task) -> None:
    bad = [v for v in t.variants if v not in VARIANTS]
    if bad or not t.variants:
        raise NsbenchError(f"imagenet_v2.variants: unknown {', '.join(bad) or '(empty)'}; valid: {', '.join(VARIANTS)}")


def variant_folder(root: Path, variant: str) -> Path | None:
    """The released folder of one variant under `root` (the tarball's name with or without -format-val)."""
    for name in (f"imagenetv2-{variant}-format-val", f"imagenetv2-{variant}", variant):
        if (root / name).is_dir():
            return root / name
    return None


def open_variant(folder: Path, variant: str, classes: list[str]) -> FileSource:
    """Images labelled by their folder's class index (0..999)."""
    paths, labels = [], []
    for d in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name):
        if not d.name.isdigit() or not 0 <= int(d.name) < len(classes):
            raise NsbenchError(f"{d}: ImageNet-V2 class folders are named 0..999 (the class index)")
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        paths += files
        labels += [int(d.name)] * len(files)
    if not paths:
        raise NsbenchError(f"{folder}: no images in 0..999 class folders (ImageNet-V2 layout)")
    return FileSource(f"imagenet-v2/{variant}", paths, np.asarray(labels), list(classes))


@register("imagenet_v2", config=ImageNetV2Task, order=10, validate=validate)
def run(ctx, t: ImageNetV2Task, norm) -> TaskResult:
    why = official_sets.unset_reason("imagenet_v2", t.root, ENV)
    if why:
        return official_sets.skipped(ctx, "imagenet_v2", why)
    official_sets.need_imagenet_1k(ctx, "ImageNet-V2")
    root = official_sets.existing("imagenet_v2", t.root)
    found = {v: variant_folder(root, v) for v in t.variants}
    if not any(found.values()) and any(p.name.isdigit() for p in root.iterdir() if p.is_dir()):
        if len(t.variants) != 1:
            raise NsbenchError(f"{root}: holds one variant's class folders; name it with imagenet_v2.variants=[NAME]")
        found = {t.variants[0]: root}
    rows, per, info = [], [], {"layout": "modestyachts/ImageNetV2: imagenetv2-<variant>-format-val/<class index>/",
                               "preprocessing": "as the clean split (resize shorter side, centre crop)"}
    for variant, folder in found.items():
        if folder is None:
            rows.append(ctx.row("imagenet_v2", variant, "skipped", None, 0,
                                note=f"{root}: no imagenetv2-{variant}-format-val folder"))
            continue
        z = official_sets.score(ctx, "imagenet_v2", open_variant(folder, variant, ctx.em.classes), str(folder))
        skipped = official_sets.unreadable(z, folder)  # none readable: an error naming the folder, never n = 0
        r, p = official_sets.accuracy_rows(ctx, "imagenet_v2", variant, z)
        rows += r
        per.append(p)
        info[variant] = {"folder": str(folder), "n": int(len(z["correct"])), "skipped_unreadable": skipped}
    if not per:
        raise NsbenchError(f"{root}: none of the ImageNet-V2 variants {', '.join(t.variants)} found")
    return TaskResult(rows, per, {"imagenet_v2": info})
