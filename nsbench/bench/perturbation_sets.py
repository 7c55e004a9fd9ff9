"""-P: DATASET-P sequences for any dataset, and the official ImageNet-P MP4s.

Built sets follow the parameters of the reference generator calibrated nearest the image size (the thresholds -C
uses): hendrycks/robustness ImageNet-P/create_p/make_cifar_p.py (CIFAR-10-P, 32 px) up to 48 px,
make_tinyimagenet_p.py (Tiny-ImageNet-P, 64 px) up to 128 px, make_imagenet_p.py (ImageNet-P, 224 px) above.
Pixel-sized parameters (blur radii and sigmas, the translation) scale with size / the generator's own size, so they
are the reference's own at 32, 64 and 224 px. Difficulty 2 / 3 of the noise perturbations raises the noise level as
the reference's `_2` / `_3` sets do.

Where nsbench does not do what the reference does:
- motion blur (motion_blur, snow) uses imagecorruptions' numpy kernel in place of ImageMagick's;
- snow's layer is zoomed with OpenCV's bilinear resize where the reference uses scipy's zoom (order 1);
- gaussian_blur uses OpenCV's kernel (about 3 sigma wide on uint8) where the reference calls skimage's gaussian
  with truncate=7 (6 for ImageNet-P);
- brightness converts to HSV with OpenCV (float32) where the reference uses skimage (float64);
- the Tiny-ImageNet-P and ImageNet-P generators move the resized, uncropped image and then centre-crop it (so
  content from outside the crop slides in); a built set holds only the square crop, so uncovered borders are black;
- Tiny-ImageNet-P's motion blur runs on the full-resolution image before resizing to 64 px; here it runs on the
  64 px image with the same radius and sigma;
- the reference's frames are stored as H.264 MP4s (CIFAR-10-P as .npy); built frames stay lossless uint8;
- spatter is not generated (use the official ImageNet-P).
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..data.sources import Source
from ..utils import NsbenchError
from . import cache
from ..data.splits import subsample
from .corruption_sets import base_checksums, run_tasks, verify_set, write_clean_set

log = logging.getLogger(__name__)

# calibration -> perturbation -> parameters at the generator's own size (NATIVE), copied from hendrycks/robustness
# ImageNet-P/create_p/make_cifar_p.py (commit 3d6c46d), make_tinyimagenet_p.py and make_imagenet_p.py (commit
# e0377d4): each file is one module-level loop with a `<Name> Code` block per perturbation (active or commented out;
# difficulties 2 / 3 are the commented `_2` / `_3` variants in the noise blocks). The same in all three and so not
# tabled: zoom_blur's scale 1 + 0.004 i, rotate's and shear's i - 15 degrees (31 frames each), snow's threshold 0.5,
# blend 0.85 and motion angle 4 i - 150; gaussian_blur's truncate (7, 7, 6) is not used (see above).
#   gaussian_noise: std per difficulty; shot_noise: Poisson lambda per difficulty; speckle_noise: std per difficulty
#   motion_blur: (frames, radius, sigma, degrees per frame), angle (i - frames + 1) * step
#   snow: (layer mean, layer std, layer zoom, motion radius, motion sigma)
#   brightness: V shift per frame in percent, (i - 15) * step / 100
#   translate: (shift, frames), i - shift pixels for i in range(frames)
#   tilt: degrees per frame, (i - 15) * step about both axes
#   scale: (percent per frame, first frame's percent)
#   gaussian_blur: (sigma of the first frame, sigma per frame)
CIFAR_P = {  # make_cifar_p.py: its module-level loop, one `<Name> Code` block per perturbation (no functions)
    "gaussian_noise": {1: 0.02, 2: 0.04, 3: 0.06},
    "shot_noise": {1: 700, 2: 400, 3: 200},
    "speckle_noise": {1: 0.05, 2: 0.07, 3: 0.1},
    "motion_blur": (21, 6, 1.8, 9),
    "snow": (0.05, 0.3, 2, 10, 2),
    "brightness": 1.5,
    "translate": (7, 16),
    "tilt": 0.75,
    "scale": (2, 70),
    "gaussian_blur": (0.3, 0.015),
}
TINY_P = {  # make_tinyimagenet_p.py: its module-level loop, one `<Name> Code` block per perturbation
    "gaussian_noise": {1: 0.025, 2: 0.05, 3: 0.075},
    "shot_noise": {1: 500, 2: 250, 3: 125},
    "speckle_noise": {1: 0.05, 2: 0.1, 3: 0.15},
    "motion_blur": (31, 14, 3, 5),
    "snow": (0.05, 0.28, 2, 10, 2.5),
    "brightness": 2,
    "translate": (15, 31),
    "tilt": 1,
    "scale": (2.5, 40),
    "gaussian_blur": (0.35, 0.014),
}
IMAGENET_P = {  # make_imagenet_p.py: its module-level loop, one `<Name> Code` block per perturbation
    "gaussian_noise": {1: 0.03, 2: 0.05, 3: 0.08},
    "shot_noise": {1: 300, 2: 120, 3: 60},
    "speckle_noise": {1: 0.05, 2: 0.10, 3: 0.15},
    "motion_blur": (31, 10, 3, 4),
    "snow": (0.05, 0.3, 3, 14, 4),
    "brightness": 2,
    "translate": (20, 41),
    "tilt": 1,
    "scale": (2.5, 40),
    "gaussian_blur": (0.25, 0.035),
}
TABLES = {"cifar-10-p": CIFAR_P, "tiny-imagenet-p": TINY_P, "imagenet-p": IMAGENET_P}
NATIVE = {"cifar-10-p": 32, "tiny-imagenet-p": 64, "imagenet-p": 224}
SOURCES = {name: f"hendrycks/robustness ImageNet-P/create_p/{f}" for name, f in
           (("cifar-10-p", "make_cifar_p.py"), ("tiny-imagenet-p", "make_tinyimagenet_p.py"),
            ("imagenet-p", "make_imagenet_p.py"))}


def resolution(size: int, calibration: str) -> dict:
    """How a built -P set meets the model's input size (meta.json; issue 34, item 3, as -C's): sequences made at that
    size, the pixel-sized parameters scaled by size / the generator's own size (`sequence`)."""
    return {"corrupted_at": size, "spatial_scale": size / NATIVE[calibration],
            "parameters": f"{calibration}'s lengths in pixels times {size} / {NATIVE[calibration]}"}


def calibration_for(size: int) -> str:
    """The -P generator calibrated nearest the image size, by -C's thresholds: CIFAR-10-P up to 48 px,
    Tiny-ImageNet-P up to 128 px, ImageNet-P above."""
    from .calibrated import calibration_for as c_calibration

    return c_calibration(size)[: -len("-c")] + "-p"


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def _u8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255)


def _affine(img: np.ndarray, angle=0.0, translate=(0, 0), scale=1.0, shear=0.0) -> np.ndarray:
    from torchvision.transforms import functional
    from torchvision.transforms import InterpolationMode

    out = functional.affine(Image.fromarray(img), angle=angle, translate=list(translate), scale=scale, shear=[shear],
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


def tilt_matrix(h: int, w: int, degrees: float) -> np.ndarray:
    """The tilt frame's homography: rotate about the x and y axes by `degrees`, project at focal length
    sqrt(w^2 + h^2) (make_imagenet_p.py's tilt block)."""
    f = np.sqrt(w**2 + h**2)
    p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    a = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0, 0], [0, np.cos(a), -np.sin(a), 0], [0, np.sin(a), np.cos(a), 0], [0, 0, 0, 1]])
    ry = np.array([[np.cos(a), 0, -np.sin(a), 0], [0, 1, 0, 0], [np.sin(a), 0, np.cos(a), 0], [0, 0, 0, 1]])
    return p2 @ t @ rx @ ry @ p1


def sequence(img: np.ndarray, name: str, difficulty: int, rng: np.random.Generator,
             calibration: str = "auto") -> np.ndarray:
    """Frames (F, H, W, 3) uint8 of perturbation `name` applied to one uint8 HWC image, with the parameters of the
    reference generator `calibration` (auto: calibrated for the image size)."""
    h, w = img.shape[:2]
    if h != w:  # built sets are square (write_clean_set); the reference's clipped_zoom crops a square too
        raise NsbenchError(f"-P sequences are built from square images, not {h}x{w}")
    calibration = calibration_for(h) if calibration == "auto" else calibration
    c = TABLES[calibration].get(name)
    s = h / float(NATIVE[calibration])
    x = _f(img)
    if name == "gaussian_noise":
        std = c[difficulty]
        frames = [img] + [_u8(x + std * rng.standard_normal(x.shape)) for _ in range(30)]
    elif name == "shot_noise":
        lam = c[difficulty]
        frames = [img] + [_u8(rng.poisson(x * lam) / lam) for _ in range(30)]
    elif name == "speckle_noise":
        std = c[difficulty]
        frames = [img] + [_u8(x + x * rng.normal(size=x.shape, scale=std)) for _ in range(30)]
    elif name == "motion_blur":
        n, radius, sigma, step = c
        frames = [np.uint8(np.clip(_motion(img, radius * s, sigma * s, (i - (n - 1)) * step), 0, 255))
                  for i in range(n)]
    elif name == "zoom_blur":
        avg, frames = x.copy(), [img]
        for i in range(1, 31):
            avg += _f(_affine(img, scale=1 + 0.004 * i))
            frames.append(_u8(avg / (i + 1)))
    elif name == "snow":
        loc, scale, zoom, radius, sigma = c
        layer = rng.normal(size=(h, w), loc=loc, scale=scale)
        layer = _zoom(layer[..., None].astype(np.float32), zoom)
        layer = np.where(layer < 0.5, 0, layer)
        layer = np.uint8(np.clip(layer.squeeze(), 0, 1) * 255)
        gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
        base = 0.85 * x + 0.15 * np.maximum(x, gray * 1.5 + 0.5)
        frames = []
        for i in range(31):
            moving = _motion(layer.astype(np.float32), radius * s, sigma * s, i * 4 - 150) / 255.0
            moving = np.round(moving * 255) / 255.0
            moving = moving[..., None]
            frames.append(_u8(base + moving + np.rot90(moving, k=2)))
    elif name == "brightness":
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        frames = []
        for i in range(31):
            z = hsv.copy()
            z[..., 2] = np.clip(z[..., 2] + (i - 15) * c / 100.0, 0, 1)
            frames.append(_u8(cv2.cvtColor(z, cv2.COLOR_HSV2RGB)))
    elif name == "translate":
        shift, n = c
        k = max(1, int(round(shift * s)))
        frames = [_affine(img, translate=(i - k, 0)) for i in range(2 * k + n - 2 * shift)]
    elif name == "rotate":
        frames = [_affine(img, angle=i - 15) for i in range(31)]
    elif name == "shear":
        frames = [_affine(img, shear=i - 15) for i in range(31)]
    elif name == "scale":
        step, first = c
        frames = [_affine(img, scale=(i * step + first) / 100.0) for i in range(31)]
    elif name == "tilt":
        frames = [cv2.warpPerspective(img, tilt_matrix(h, w, c * (i - 15)), (w, h)) for i in range(31)]
    elif name == "gaussian_blur":
        first, step = c
        frames = [cv2.GaussianBlur(img, (0, 0), (first + step * i) * s) for i in range(31)]  # uint8 in, uint8 out
    elif name == "spatter":
        raise NsbenchError("perturbation 'spatter' is not generated by nsbench; use the official ImageNet-P")
    else:
        raise NsbenchError(f"unknown perturbation {name!r}")
    return np.stack([np.ascontiguousarray(fr, dtype=np.uint8).reshape(h, w, 3) for fr in frames])


def _build_one(args) -> tuple[str, int, str]:
    folder, clean_path, name, difficulty, base_seed, indices, calibration = args
    clean = cache.load_array(Path(clean_path))
    seqs = [sequence(np.asarray(clean[k]), name, difficulty,
                     np.random.default_rng(cache.seed_for(base_seed, name, difficulty, int(indices[k]))), calibration)
            for k in range(len(clean))]
    path = Path(folder) / f"{name}-d{difficulty}.npy"
    cache.save_array(path, np.stack(seqs))
    return name, difficulty, cache.array_sha(path)


def build_p(source: Source, size: int, perturbations: list[str], difficulty: int, limit: int | None, seed: int,
            cache_dir: Path, workers: int | None = None, calibration: str = "auto") -> tuple[Path, dict]:
    """Build (or reuse) DATASET-P; return its folder and manifest. `calibration` auto picks the reference generator
    calibrated for the image size: CIFAR-10-P (~32 px), Tiny-ImageNet-P (~64 px) or ImageNet-P (224 px)."""
    calibration = calibration_for(size) if calibration == "auto" else calibration
    if calibration not in TABLES:
        raise NsbenchError(f"unknown -P calibration {calibration!r}; valid: auto, {', '.join(TABLES)}")
    idx = subsample(len(source), limit, seed)
    spec = {"kind": "P", "source": source.name, "fingerprint": source.fingerprint(), "size": size, "seed": seed,
            "n": len(idx), "generator": "cifar-p-params-v1"}
    # every set built before calibrations existed used CIFAR-10-P's parameters (scaled by size / 32) and keeps its
    # key; the other calibrations get a new one, so such a set at 64 or 224 px is never taken for theirs
    if calibration != "cifar-10-p":
        spec["generator"] = f"{calibration}-params-v1"
    folder = cache_dir / "sets" / f"P-{cache.key_of(spec)}"
    manifest = verify_set(folder, cache.read_manifest(folder), "sequences") or {}
    have = {(c["perturbation"], c["difficulty"]): c for c in manifest.get("sequences", [])}
    want = {(p, difficulty) for p in perturbations}
    about = {"calibration": calibration, "calibration_source": SOURCES[calibration]}
    if manifest and want <= set(have):  # (on the fly asks for no sequence: the clean images alone)
        return folder, {**manifest, **about}
    kept = write_clean_set(folder, source, idx, size)
    todo = [(str(folder), str(folder / "clean.npy"), p, d, seed, kept, calibration)
            for p, d in sorted(want - set(have))]
    log.info("building %d DATASET-P perturbations of %d sequences in %s", len(todo), len(kept), folder)
    for name, d, sha in run_tasks(_build_one, todo, workers, "building -P"):
        have[(name, d)] = {"perturbation": name, "difficulty": d, "file": f"{name}-d{d}.npy", "sha256": sha}
    manifest = {**spec, **about, **base_checksums(folder), "n": int(len(kept)),
                "sequences": sorted(have.values(), key=lambda d: (d["perturbation"], d["difficulty"]))}
    cache.write_manifest(folder, manifest)
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
