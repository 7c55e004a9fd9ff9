"""-P: DATASET-P sequences for any dataset, and the official ImageNet-P MP4s.

The generators follow the parameters of the reference CIFAR-P generator (hendrycks/robustness
ImageNet-P/create_p/make_cifar_p.py, written for 32x32 images); pixel-sized parameters scale with size / 32.
Motion blur uses imagecorruptions' kernel in place of ImageMagick's. Frame counts: 31 (the first frame clean for
the noise sequences), motion_blur 21, translate 2 * shift + 2 with shift = 7 at 32 px.
Difficulty 2 / 3 of the noise perturbations raises the noise level as the reference's `_2` / `_3` sets do.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..data.sources import Source
from ..utils import NsbenchError
from . import cache as K
from .corruptions import base_checksums, pick_indices, run_tasks, verify_set, write_clean_set

log = logging.getLogger(__name__)

# Reference noise levels per difficulty (make_cifar_p.py: the active level and the two commented harder ones).
GAUSSIAN_STD = {1: 0.02, 2: 0.04, 3: 0.06}
SHOT_LAMBDA = {1: 700, 2: 400, 3: 200}
SPECKLE_STD = {1: 0.05, 2: 0.07, 3: 0.1}


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def _u8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255)


def _affine(img: np.ndarray, angle=0.0, translate=(0, 0), scale=1.0, shear=0.0) -> np.ndarray:
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    out = TF.affine(Image.fromarray(img), angle=angle, translate=list(translate), scale=scale, shear=[shear],
                    interpolation=InterpolationMode.BILINEAR)
    return np.asarray(out)


def _motion(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    from imagecorruptions.corruptions import _motion_blur

    return _motion_blur(x, radius=int(round(radius)), sigma=sigma, angle=angle)


def _zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = img[top : top + ch, top : top + ch]
    z = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    t = (z.shape[0] - h) // 2
    return z[t : t + h, t : t + h]


def sequence(img: np.ndarray, name: str, difficulty: int, rng: np.random.Generator) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 of perturbation `name` applied to one uint8 HWC image."""
    h, w = img.shape[:2]
    s = h / 32.0
    x = _f(img)
    if name == "gaussian_noise":
        std = GAUSSIAN_STD[difficulty]
        frames = [img] + [_u8(x + std * rng.standard_normal(x.shape)) for _ in range(30)]
    elif name == "shot_noise":
        lam = SHOT_LAMBDA[difficulty]
        frames = [img] + [_u8(rng.poisson(x * lam) / lam) for _ in range(30)]
    elif name == "speckle_noise":
        std = SPECKLE_STD[difficulty]
        frames = [img] + [_u8(x + x * rng.normal(size=x.shape, scale=std)) for _ in range(30)]
    elif name == "motion_blur":
        frames = [np.uint8(np.clip(_motion(img, 6 * s, 1.8 * s, (i - 20) * 9), 0, 255)) for i in range(21)]
    elif name == "zoom_blur":
        avg, frames = x.copy(), [img]
        for i in range(1, 31):
            avg += _f(_affine(img, scale=1 + 0.004 * i))
            frames.append(_u8(avg / (i + 1)))
    elif name == "snow":
        layer = rng.normal(size=(h, w), loc=0.05, scale=0.3)
        layer = _zoom(layer[..., None].astype(np.float32), 2)
        layer = np.where(layer < 0.5, 0, layer)
        layer = np.uint8(np.clip(layer.squeeze(), 0, 1) * 255)
        gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
        base = 0.85 * x + 0.15 * np.maximum(x, gray * 1.5 + 0.5)
        frames = []
        for i in range(31):
            moving = _motion(layer.astype(np.float32), 10 * s, 2 * s, i * 4 - 150) / 255.0
            moving = np.round(moving * 255) / 255.0
            moving = moving[..., None]
            frames.append(_u8(base + moving + np.rot90(moving, k=2)))
    elif name == "brightness":
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        frames = []
        for i in range(31):
            z = hsv.copy()
            z[..., 2] = np.clip(z[..., 2] + (i - 15) * 1.5 / 100.0, 0, 1)
            frames.append(_u8(cv2.cvtColor(z, cv2.COLOR_HSV2RGB)))
    elif name == "translate":
        k = max(1, int(round(7 * s)))
        frames = [_affine(img, translate=(i - k, 0)) for i in range(2 * k + 2)]
    elif name == "rotate":
        frames = [_affine(img, angle=i - 15) for i in range(31)]
    elif name == "shear":
        frames = [_affine(img, shear=i - 15) for i in range(31)]
    elif name == "scale":
        frames = [_affine(img, scale=(i * 2 + 70) / 100.0) for i in range(31)]
    elif name == "tilt":
        frames = []
        f = np.sqrt(w**2 + h**2)
        P1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
        T = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
        P2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
        for i in range(31):
            phi = theta = np.deg2rad(0.75 * (i - 15))
            RX = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0], [0, np.sin(theta), np.cos(theta), 0], [0, 0, 0, 1]])
            RY = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0], [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
            frames.append(cv2.warpPerspective(img, P2 @ T @ RX @ RY @ P1, (w, h)))
    elif name == "gaussian_blur":
        frames = [np.uint8(np.clip(cv2.GaussianBlur(img, (0, 0), (0.3 + 0.015 * i) * s), 0, 255)) for i in range(31)]
    elif name == "spatter":
        raise NsbenchError("perturbation 'spatter' is not generated by nsbench; use the official ImageNet-P")
    else:
        raise NsbenchError(f"unknown perturbation {name!r}")
    return np.stack([np.ascontiguousarray(fr, dtype=np.uint8).reshape(h, w, 3) for fr in frames])


def _build_one(args) -> tuple[str, int, str]:
    folder, clean_path, name, difficulty, base_seed, indices = args
    clean = K.load_array(Path(clean_path))
    seqs = [sequence(np.asarray(clean[k]), name, difficulty,
                     np.random.default_rng(K.seed_for(base_seed, name, difficulty, int(indices[k]))))
            for k in range(len(clean))]
    path = Path(folder) / f"{name}-d{difficulty}.npy"
    K.save_array(path, np.stack(seqs))
    return name, difficulty, K.array_sha(path)


def build_p(source: Source, size: int, perturbations: list[str], difficulty: int, limit: int | None, seed: int,
            cache_dir: Path, workers: int | None = None) -> tuple[Path, dict]:
    """Build (or reuse) DATASET-P; return its folder and manifest."""
    idx = pick_indices(len(source), limit, seed)
    spec = {"kind": "P", "source": source.name, "fingerprint": source.fingerprint(), "size": size, "seed": seed,
            "n": len(idx), "generator": "cifar-p-params-v1"}
    folder = cache_dir / "sets" / f"P-{K.key_of(spec)}"
    manifest = verify_set(folder, K.read_manifest(folder), "sequences") or {}
    have = {(c["perturbation"], c["difficulty"]): c for c in manifest.get("sequences", [])}
    want = {(p, difficulty) for p in perturbations}
    if want <= set(have):
        return folder, manifest
    kept = write_clean_set(folder, source, idx, size)
    todo = [(str(folder), str(folder / "clean.npy"), p, d, seed, kept) for p, d in sorted(want - set(have))]
    log.info("building %d DATASET-P perturbations of %d sequences in %s", len(todo), len(kept), folder)
    for name, d, sha in run_tasks(_build_one, todo, workers, "building -P"):
        have[(name, d)] = {"perturbation": name, "difficulty": d, "file": f"{name}-d{d}.npy", "sha256": sha}
    manifest = {**spec, **base_checksums(folder), "n": int(len(kept)),
                "sequences": sorted(have.values(), key=lambda d: (d["perturbation"], d["difficulty"]))}
    K.write_manifest(folder, manifest)
    return folder, manifest


# --------------------------------------------------------------------------------------- official ImageNet-P

def read_video(path: Path) -> np.ndarray:
    """All frames of an MP4 as uint8 RGB (F, H, W, 3), decoded with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise NsbenchError(f"{path}: no frames could be decoded")
    return np.stack(frames)


def official_folder(perturbation: str, difficulty: int) -> str:
    """The ImageNet-P folder of a perturbation: noise difficulties 2 and 3 live in <name>_2 / <name>_3."""
    return perturbation if difficulty == 1 or "noise" not in perturbation else f"{perturbation}_{difficulty}"


def scan_imagenet_p(root: str | Path, perturbation: str, difficulty: int, classes: list[str]) -> list[tuple[Path, int]]:
    """(video path, label) pairs of <root>/<perturbation>[_d]/<wnid>/*.mp4."""
    root = Path(root)
    name = official_folder(perturbation, difficulty)
    folder = root / name
    if not folder.is_dir():
        raise NsbenchError(f"{root}: no {name}/ folder (ImageNet-P layout <perturbation>/<wnid>/<image>.mp4)")
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for wdir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if wdir.name not in index:
            raise NsbenchError(f"{wdir}: class folder not among the model's classes")
        out += [(v, index[wdir.name]) for v in sorted(wdir.glob("*.mp4"))]
    if not out:
        raise NsbenchError(f"{folder}: no .mp4 sequences found")
    return out
