"""Fashion-MNIST: a gzip IDX reader that checks magic numbers and shapes, and where to find the files.

Search order: $NSBENCH_FASHION_MNIST, Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist),
then the HF hub (`zalando-datasets/fashion_mnist`).
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from ..utils import NsbenchError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HF_NAME = "zalando-datasets/fashion_mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
# IDX magic numbers: 0x00000803 = unsigned byte, 3 dimensions; 0x00000801 = unsigned byte, 1 dimension.
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_idx(path: str | os.PathLike, magic: int, ndim: int) -> np.ndarray:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise NsbenchError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 + 4 * ndim:
        raise NsbenchError(f"{path}: truncated IDX header")
    got_magic = struct.unpack(">i", raw[:4])[0]
    if got_magic != magic:
        raise NsbenchError(f"{path}: bad IDX magic number {got_magic} (expected {magic})")
    dims = struct.unpack(f">{ndim}i", raw[4 : 4 + 4 * ndim])
    n = int(np.prod(dims))
    body = raw[4 + 4 * ndim :]
    if len(body) != n:
        raise NsbenchError(f"{path}: IDX body holds {len(body)} bytes, header {tuple(dims)} needs {n}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _complete(d: Path) -> bool:
    return all((d / name).exists() for split in FILES.values() for name in split[:2])


def find_dir() -> Path | None:
    """The folder holding the four IDX files: $NSBENCH_FASHION_MNIST when set (it must be complete), else Debian's."""
    env = os.environ.get("NSBENCH_FASHION_MNIST")
    if env:
        if not _complete(Path(env)):
            raise NsbenchError(f"NSBENCH_FASHION_MNIST={env}: missing the four Fashion-MNIST IDX .gz files")
        return Path(env)
    return DEBIAN_DIR if _complete(DEBIAN_DIR) else None


def load_split(split: str, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 for `train` or `test`."""
    if split not in FILES:
        raise NsbenchError(f"fashion-mnist: unknown split {split!r}; valid: train, test")
    directory = directory or find_dir()
    if directory is None:
        return _load_from_hub(split)
    img_name, lbl_name, expected = FILES[split]
    images = read_idx(directory / img_name, IMAGES_MAGIC, 3)
    labels = read_idx(directory / lbl_name, LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise NsbenchError(f"{directory / img_name}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise NsbenchError(f"{directory / lbl_name}: {len(labels)} labels for {len(images)} images")
    if len(images) != expected:
        raise NsbenchError(f"{directory / img_name}: {len(images)} images, Fashion-MNIST {split} has {expected}")
    if labels.max() >= len(CLASSES):
        raise NsbenchError(f"{directory / lbl_name}: label {labels.max()} out of range 0-9")
    return images, labels.astype(np.int64)


def _load_from_hub(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import datasets

        ds = datasets.load_dataset(HF_NAME, split=split)
        images = np.stack([np.asarray(im, dtype=np.uint8) for im in ds["image"]])
        return images, np.asarray(ds["label"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any hub failure becomes the one-line error below
        raise NsbenchError(
            f"Fashion-MNIST not found: install Debian's package (apt-get install dataset-fashion-mnist) "
            f"or make the HF hub reachable for {HF_NAME} ({type(e).__name__})"
        ) from None
