"""Before scoring: is the model's input size sane for the data's images, and is the output folder free?

A timm/torchvision model's input size defaults to its pretrained config (224 px for most); a 32 px model trained
elsewhere and handed over as a state dict carries no size of its own. Scoring 28-32 px images at 224 px upscales
them 7x, builds DATASET-C/-P at 224 px with ImageNet-C's calibration, and gives a number that looks like a result
(8% instead of 88% in the case that prompted this check). So a size nobody chose is refused when the images are far
smaller than it, with the fix named; a size the user gave is taken as given, and both are recorded in meta.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..data.sources import image_sizes
from ..utils import NsbenchError

log = logging.getLogger(__name__)

FAR_SMALLER = 2  # images whose longer side is at most 1/2 of the model's input are "far smaller"


def suggested_size(side: int) -> int:
    """The images' longer side rounded up to a multiple of 8 (28 -> 32): small images are zero-padded to it."""
    return -(-side // 8) * 8


def check_input_size(source, size: int, *, explicit: bool, model: str, size_from: str) -> dict:
    """Refuse (one line naming both fixes) an input size nobody chose when the images are far smaller than it;
    return what was seen, for meta.json."""
    sizes = image_sizes(source)
    if not sizes:
        return {"source_image_size": None}
    side = int(np.median([max(h, w) for h, w in sizes]))
    h, w = sizes[len(sizes) // 2]
    seen = {"source_image_size": [h, w]}
    if side * FAR_SMALLER > size:
        return seen
    fix = suggested_size(side)
    if explicit:
        log.warning("%s: images of %dx%d px are scored at %d px as asked (upscaled %.1fx)", model, h, w, size,
                    size / side)
        return seen
    raise NsbenchError(
        f"{source.name}: images are {h}x{w} px, far smaller than {model}'s {size} px input ({size_from}); scoring "
        f"would upscale them {size / side:.0f}x and build the -C/-P sets at {size} px. Pass --input-size {fix} "
        f"(input_size={fix} in Python) to score at the images' size, or --input-size {size} to upscale on purpose")


def check_out_folder(folder: Path, sha256: str, label: str, *, overwrite: bool, path: str | Path | None = None) -> None:
    """An output folder that already holds another model's results is refused unless `overwrite`: the same model
    rerun replaces its own results (cached cells make that cheap), a different one would silently replace them. The
    refusal names both models' files (the held one from meta.json, this one's `path`) where they are known."""
    meta = folder / "meta.json"
    if overwrite or not meta.is_file():
        return
    try:
        held = json.loads(meta.read_text(encoding="utf-8")).get("model", {})
    except (OSError, ValueError, AttributeError):
        held = {}
    if held.get("sha256") != sha256:
        other = held.get("label") or "an unreadable model record"
        if held.get("path"):
            other += f", from {held['path']}"
        this = f"{label}, from {path}" if path else label
        raise NsbenchError(f"{folder}: already holds the results of another model ({other}); {this} would replace "
                           f"them: choose another --out or --label, or pass --overwrite (overwrite=True)")


MAX_INPUT_SIZE = 4096  # pixels per side; the largest published classifiers take 800 (EfficientNet-L2)


def check_side(value, what: str = "input_size") -> None:
    """A side in pixels: an int from 1 to MAX_INPUT_SIZE (not "32", not 32.5 truncated, not 100000 run into a
    MemoryError of tens of GB per image)."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise NsbenchError(f"{what}: expected a whole number of pixels, got {type(value).__name__} {value!r}")
    if not 1 <= value <= MAX_INPUT_SIZE:
        raise NsbenchError(f"{what}: {value} pixels is outside 1..{MAX_INPUT_SIZE}")


def check_writable(folder: Path, what: str) -> None:
    """A folder nsbench will write into: created if missing, and a file can be made there; else one line naming
    it and the cause (read-only, not a folder, no permission)."""
    import tempfile

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nsbench-write-check-"):
            pass
    except OSError as e:
        raise NsbenchError(f"{what} {folder}: cannot write there ({e.strerror or type(e).__name__})") from None
