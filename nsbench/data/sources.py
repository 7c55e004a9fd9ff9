"""Image sources: one interface over in-memory arrays, image folders and HF datasets.

A source yields uint8 HWC images (1 or 3 channels) and integer labels (-1 when unknown). Opening a source reads
only its index (paths, labels), never every image, so ImageNet-sized folders open in seconds.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils import NsbenchError
from . import fashion_mnist

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class UnreadableImage(Exception):
    """Raised by `Source.load` for an image that cannot be decoded; loaders skip and count it."""


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def array_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit (uint16, or int32 holding 0..65535) pixel values -> uint8 by scaling 65535 -> 255; uint8 unchanged."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in "ui" and arr.dtype.itemsize >= 2:  # any byte order (I;16B reads as >u2)
        return ((np.clip(arr.astype(np.float64), 0, 65535) / 257.0) + 0.5).astype(np.uint8)
    return arr


def pil_to_uint8(im, keep_grey: bool = True) -> np.ndarray:
    """A PIL image -> uint8 HWC (L kept as grey when `keep_grey`, everything else RGB).

    PIL's convert("RGB") clips 16-bit greys (modes I;16*, I) at 255, so a 16-bit PNG would decode near-white;
    those are scaled from 0..65535 instead."""
    if im.mode in SIXTEEN_BIT_MODES:
        grey = array_to_uint8(np.asarray(im))
        return grey if keep_grey else np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "RGB" or (keep_grey and im.mode == "L"):
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


class Source:
    """Base class. Subclasses set `classes`, `labels` (np.int64, -1 = unknown) and implement `load`."""

    name: str
    classes: list[str]
    labels: np.ndarray
    kind: str = "generic"  # "small" sources are padded, "natural" ones resized + centre-cropped

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def load_batch(self, idx: np.ndarray) -> np.ndarray | None:
        """A stacked uint8 NHWC batch when the source can do it without decoding files, else None."""
        return None

    def encoded(self, i: int) -> bytes | None:
        """Image i's JPEG bytes, undecoded (for decoding on the GPU), or None when it is not a JPEG file."""
        return None

    def fingerprint(self) -> str:
        raise NotImplementedError


class ArraySource(Source):
    """Images held in memory as one uint8 array (N, H, W) or (N, H, W, C)."""

    kind = "small"

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, classes: Sequence[str]):
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype.kind == "u" and images.dtype.itemsize == 2:  # 16-bit images: keep the top 8 bits' worth of range, not a clip at 255
            images = array_to_uint8(images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise NsbenchError(f"{name}: expected uint8 images of shape (N, H, W[, C]), got {images.dtype} {images.shape}")
        self.name, self.images, self.labels, self.classes = name, images, np.asarray(labels, np.int64), list(classes)

    def load(self, i: int) -> np.ndarray:
        return self.images[i]

    def load_batch(self, idx: np.ndarray) -> np.ndarray:
        return self.images[idx]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).data)
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]


class FileSource(Source):
    """Image files with labels from their class folder (ImageFolder layout); decoded lazily with PIL."""

    kind = "natural"

    def __init__(self, name: str, paths: list[Path], labels: np.ndarray, classes: list[str]):
        self.name, self.paths, self.labels, self.classes = name, paths, np.asarray(labels, np.int64), classes

    def load(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                return pil_to_uint8(im, keep_grey=False)
        except Exception as e:  # noqa: BLE001 - corrupt files of any kind are skipped, not fatal
            raise UnreadableImage(f"{path}: {type(e).__name__}: {e}") from None

    def as_shipped(self, probes: int = 16) -> "FileSource":
        """Mark the files to be scored as shipped ("as-is": official robustness sets, never resized) at the size most
        of them have (the headers of up to `probes` files, evenly spaced): a file of another size is then skipped and
        counted by the loader, never stacked with the rest."""
        from collections import Counter

        from PIL import Image

        self.kind = "as-is"
        sizes = Counter()
        for k in np.unique(np.linspace(0, len(self.paths) - 1, min(probes, len(self.paths))).astype(int)):
            try:
                with Image.open(self.paths[k]) as im:
                    sizes[(im.height, im.width)] += 1
            except Exception:  # noqa: BLE001 - an unreadable file is the loader's to skip and count
                continue
        self.shipped_size = sizes.most_common(1)[0][0] if sizes else None
        return self

    def encoded(self, i: int) -> bytes | None:
        path = self.paths[i]
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UnreadableImage(f"{path}: {type(e).__name__}: {e}") from None
        return data if data[:3] == b"\xff\xd8\xff" else None

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p, y in zip(self.paths, self.labels):
            st = p.stat() if p.exists() else None
            h.update(f"{p.name}|{y}|{st.st_size if st else -1}\n".encode())
        return h.hexdigest()[:16]


class HFSource(Source):
    """A map-style HF `datasets.Dataset` with an image column and an optional label column."""

    kind = "generic"

    def __init__(self, name: str, ds, image_column: str, label_column: str | None, classes: list[str] | None):
        cols = ds.column_names
        if image_column not in cols:
            raise NsbenchError(f"{name}: no image column {image_column!r}; columns: {', '.join(cols)}")
        self.name, self.ds, self.image_column = name, ds, image_column
        if label_column and label_column in cols:
            feat = ds.features.get(label_column)
            names = getattr(feat, "names", None)
            # a column of class names maps by the model's classes (`classes`) when given, else by the sorted names
            self.labels, words = label_ids(list(ds[label_column]), None if names else classes, name)
            self.classes = list(names or words or [str(i) for i in range(int(self.labels.max(initial=-1)) + 1)])
            self.named = bool(names or words)
        else:
            self.labels = np.full(len(ds), -1, dtype=np.int64)
            self.classes = list(classes or [])
            self.named = False
        self._fp = getattr(ds, "_fingerprint", None) or name

    def load(self, i: int) -> np.ndarray:
        try:
            im = self.ds[int(i)][self.image_column]
            arr = pil_to_uint8(im) if hasattr(im, "convert") else array_to_uint8(np.asarray(im))
        except Exception as e:  # noqa: BLE001
            raise UnreadableImage(f"{self.name}[{i}]: {type(e).__name__}: {e}") from None
        if arr.dtype != np.uint8:
            raise UnreadableImage(f"{self.name}[{i}]: image dtype {arr.dtype}, expected uint8")
        return arr

    def fingerprint(self) -> str:
        return hashlib.sha256(str(self._fp).encode()).hexdigest()[:16]


def label_ids(values: list, classes: list[str] | None, where: str) -> tuple[np.ndarray, list[str] | None]:
    """A label column as class ids (-1 where missing) and, for a column of class names, the names it maps by:
    the model's `classes` when given (a name not among them is a one-line error), else the sorted names found."""
    words = [v for v in values if isinstance(v, (str, bytes))]
    if not words:
        try:
            return np.asarray([-1 if v is None else v for v in values], dtype=np.int64), None
        except (TypeError, ValueError, OverflowError):
            bad = next(v for v in values if v is not None and not isinstance(v, (int, np.integer)))
            raise NsbenchError(f"{where}: label {bad!r} is neither a class id nor a class name") from None
    text = [v.decode() if isinstance(v, bytes) else v for v in values]
    vocab = list(classes) if classes else sorted({v for v in text if isinstance(v, str)})
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({v for v in text if isinstance(v, str) and v not in index})
    if unknown:
        raise NsbenchError(f"{where}: label {unknown[0]!r} is not among the model's {len(vocab)} classes "
                           f"({_preview(vocab)})")
    if any(v is not None and not isinstance(v, str) for v in text):
        raise NsbenchError(f"{where}: the label column mixes class names and numbers")
    return np.asarray([-1 if v is None else index[v] for v in text], dtype=np.int64), vocab


class ParquetSource(Source):
    """Parquet image shards (the layout HF `datasets` and most pipelines write): an `image` column of encoded bytes
    (binary, or a struct with a `bytes` field) and an optional `label` column of class ids or class names.

    Opening reads only the footers and the label column; images are decoded on demand from one row group at a
    time (a small LRU cache), so a set far larger than memory streams through in order. A damaged row group (the
    footer intact) is skipped and counted like an unreadable file: its rows raise UnreadableImage.
    """

    kind = "natural"

    def __init__(self, name: str, files: list[Path], image_column: str, label_column: str, classes: list[str] | None):
        import pyarrow.parquet as pq

        self.name, self.files, self.image_column = name, files, image_column
        self._groups: list[tuple[int, int]] = []  # (file number, row group)
        self._bad: dict[int, str] = {}  # row group -> why it cannot be read
        sizes, labels = [], []
        for fi, f in enumerate(files):
            try:
                pf = pq.ParquetFile(f)
            except Exception as e:  # noqa: BLE001
                raise NsbenchError(f"{f}: not a readable Parquet file ({type(e).__name__})") from None
            cols = pf.schema_arrow.names
            if image_column not in cols:
                raise NsbenchError(f"{f}: no image column {image_column!r}; columns: {', '.join(cols)}")
            has_label = label_column in cols
            for g in range(pf.num_row_groups):
                self._groups.append((fi, g))
                n = pf.metadata.row_group(g).num_rows
                sizes.append(n)
                try:
                    labels += (pf.read_row_group(g, columns=[label_column]).column(0).to_pylist() if has_label
                               else [None] * n)
                except Exception as e:  # noqa: BLE001 - a damaged row group: its rows are skipped when loaded
                    self._bad[len(self._groups) - 1] = f"{f} row group {g}: {type(e).__name__}: {e}"
                    labels += [None] * n
        if self._bad:
            log.warning("%s: %d damaged row group(s) skipped (%s)", name, len(self._bad),
                        next(iter(self._bad.values())))
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.labels, words = label_ids(labels, classes, name)
        known = self.labels[self.labels >= 0]
        self.classes = list(classes or words or [str(i) for i in range(int(known.max()) + 1 if len(known) else 0)])
        self._cache: dict[int, list] = {}

    def _group(self, g: int) -> list:
        import pyarrow.parquet as pq

        if g in self._bad:
            raise UnreadableImage(self._bad[g])
        if g not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            fi, rg = self._groups[g]
            try:
                col = pq.ParquetFile(self.files[fi]).read_row_group(rg, columns=[self.image_column]).column(0)
                self._cache[g] = col.to_pylist()
            except Exception as e:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid, ... for damaged pages
                self._bad[g] = f"{self.files[fi]} row group {rg}: {type(e).__name__}: {e}"
                raise UnreadableImage(self._bad[g]) from None
        return self._cache[g]

    def _bytes(self, i: int) -> bytes:
        """Image i's encoded bytes; UnreadableImage when its row group is damaged (every row of it is skipped)."""
        g = int(np.searchsorted(self._starts, i, side="right") - 1)
        cell = self._group(g)[i - self._starts[g]]
        return cell.get("bytes") if isinstance(cell, dict) else cell

    def encoded(self, i: int) -> bytes | None:
        data = self._bytes(i)
        return data if isinstance(data, bytes) and data[:3] == b"\xff\xd8\xff" else None

    def load(self, i: int) -> np.ndarray:
        import io

        from PIL import Image

        data = self._bytes(i)
        try:
            with Image.open(io.BytesIO(data)) as im:
                return pil_to_uint8(im)
        except Exception as e:  # noqa: BLE001
            raise UnreadableImage(f"{self.name}[{i}]: {type(e).__name__}: {e}") from None

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{int(st.st_mtime)}\n".encode())
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]


def _short(names: list[str], k: int = 4) -> str:
    """A list of names shortened for one line: the first k, then how many more."""
    names = [str(n) for n in names]
    return ", ".join(names[:k]) + (f", ... ({len(names) - k} more)" if len(names) > k else "")


def scan_folder(root: Path, name: str, classes: list[str] | None = None) -> FileSource:
    """ImageFolder layout: root/<class>/**/<image>. Classes sorted by folder name unless given."""
    if not root.is_dir():
        raise NsbenchError(f"{root}: not a folder")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise NsbenchError(f"{root}: no class folders inside")
    classes = classes or found
    index = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    unknown = [c for c in found if c not in index]
    if unknown:  # both sides named: the data's folders against the model's classes (its checkpoint or --classes)
        raise NsbenchError(f"{root}: class folder(s) {_short(unknown)} not among the model's {len(classes)} classes "
                           f"({_short(classes)}); the data has {len(found)} ({_short(found)})")
    for c in found:
        for dirpath, _, files in os.walk(root / c):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTS):
                    paths.append(Path(dirpath) / f)
                    labels.append(index[c])
    if not paths:
        raise NsbenchError(f"{root}: no images found (extensions: {', '.join(IMAGE_EXTS)})")
    return FileSource(name, paths, np.asarray(labels), classes)


@dataclass
class SourceSpec:
    scheme: str  # fashion-mnist | hf | folder | imagenet | parquet
    target: str

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        if text == "fashion-mnist":
            return cls("fashion-mnist", "")
        scheme, sep, target = text.partition(":")
        if not sep or scheme not in ("hf", "folder", "imagenet", "parquet") or not target:
            raise NsbenchError(
                f"data source {text!r}: expected fashion-mnist, hf:ORG/NAME, folder:PATH, imagenet:PATH or parquet:PATH"
            )
        return cls(scheme, target)


def open_source(
    spec: str,
    split: str,
    image_column: str = "image",
    label_column: str = "label",
    classes: list[str] | None = None,
) -> Source:
    """Open split `split` of the source named by `spec` (see SourceSpec)."""
    s = SourceSpec.parse(spec)
    name = f"{spec}[{split}]"
    if s.scheme == "fashion-mnist":
        images, labels = fashion_mnist.load_split(split)
        return check_classes(ArraySource(name, images, labels, fashion_mnist.CLASSES), classes, named=True)
    if s.scheme in ("folder", "imagenet"):
        root = Path(s.target).expanduser()
        if not root.exists():
            raise NsbenchError(f"{root}: folder not found")
        split_dir = root / split
        if not split_dir.is_dir():
            raise NsbenchError(f"{root}: no {split!r} split folder (expected {split_dir}/<class>/<image>)")
        return scan_folder(split_dir, name, classes)
    if s.scheme == "parquet":
        root = Path(s.target).expanduser()
        if not root.is_dir():
            raise NsbenchError(f"{root}: folder not found")
        base = root / split if (root / split).is_dir() else root
        if base == root and split != "train" and any(p.is_dir() for p in root.iterdir()):
            raise NsbenchError(f"{root}: no {split!r} split folder of Parquet shards")
        files = sorted(base.glob("*.parquet"))
        if not files:
            raise NsbenchError(f"{base}: no .parquet shards found")
        return check_classes(ParquetSource(name, files, image_column, label_column, classes), classes, named=False)
    src = _open_hf(s.target, split, name, image_column, label_column, classes)
    return check_classes(src, classes, named=src.named)


def check_classes(src: Source, classes: list[str] | None, *, named: bool) -> Source:
    """A source opened for a model with `classes` must have the same classes (names when the source names them,
    else no label beyond the model's count); then it takes the model's names. One-line NsbenchError otherwise."""
    if classes is None:
        return src
    classes = list(classes)
    own = list(src.classes)
    if named and own != classes:
        raise NsbenchError(f"{src.name}: its {len(own)} classes ({_preview(own)}) differ from the model's "
                           f"{len(classes)} classes ({_preview(classes)})")
    known = src.labels[src.labels >= 0]
    n_labels = int(known.max()) + 1 if len(known) else 0
    if not named and n_labels > len(classes):
        raise NsbenchError(f"{src.name}: labels go up to {n_labels - 1} ({n_labels} classes) but the model has "
                           f"{len(classes)} classes ({_preview(classes)})")
    src.classes = classes
    return src


def _preview(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _open_hf(target: str, split: str, name: str, image_column: str, label_column: str, classes) -> HFSource:
    import datasets

    try:
        if Path(target).is_dir() and (Path(target) / "dataset_info.json").exists():
            ds = datasets.load_from_disk(target)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(target, split=split)
    except Exception as e:  # noqa: BLE001 - network, missing split, bad repo all become one line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NsbenchError(f"hf:{target}: cannot load split {split!r} ({msg})") from None
    return HFSource(name, ds, image_column, label_column, classes)


def image_sizes(source, n: int = 8) -> list[tuple[int, int]]:
    """(height, width) of up to `n` images spread evenly over `source`; unreadable ones are skipped."""
    total = len(source)
    sizes = []
    for i in np.unique(np.linspace(0, max(total - 1, 0), num=min(n, total)).astype(int)):
        try:
            img = source.load(int(i))
        except Exception:  # noqa: BLE001 - an unreadable image is the data path's business (skipped and counted)
            continue
        sizes.append((int(img.shape[0]), int(img.shape[1])))
    return sizes
