"""Built robustness sets live in a cache folder with a manifest and a fingerprint, so every model sees identical
images; a set is complete once its manifest exists (written last, atomically)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..utils import atomic_path, file_sha256, read_json, write_json


def default_cache_dir() -> Path:
    return Path(os.environ.get("NSBENCH_CACHE", Path.home() / ".cache" / "nsbench"))


def key_of(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_array(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def load_array(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def array_sha(path: Path) -> str:
    return file_sha256(path)[:16]


_VERIFIED: set[tuple] = set()  # (path, size, mtime_ns, sha) already checked by this process


def damaged(folder: Path, files: dict[str, str | None]) -> list[str]:
    """The files of a built set that are missing or whose checksum differs from the manifest's (None: unchecked).
    Each file is hashed once per process; a file rewritten since is hashed again."""
    bad = []
    for name, want in files.items():
        path = folder / name
        if not path.is_file():
            bad.append(name)
            continue
        if want is None:
            continue
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, want)
        if key in _VERIFIED:
            continue
        if array_sha(path) != want:
            bad.append(name)
        else:
            _VERIFIED.add(key)
    return bad


def read_manifest(folder: Path) -> dict | None:
    m = folder / "manifest.json"
    return read_json(m) if m.exists() else None


def write_manifest(folder: Path, manifest: dict) -> None:
    write_json(folder / "manifest.json", manifest)


def seed_for(*parts) -> int:
    """A stable 32-bit seed from any parts (names, indices): the same image always gets the same noise."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")
