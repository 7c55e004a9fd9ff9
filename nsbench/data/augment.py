"""Training noise on whole uint8 batches, per sample, on whatever device the batch lives on.

One implementation for every device: on a GPU the batch is augmented after the transfer, on a CPU in the loader
(workers, or the main process when there are none). Every random draw (which op each image takes, its magnitude,
sign, shift, flip, Cutout centre) comes from a CPU generator seeded by (seed, epoch, step), so the same step gives
the same pixels wherever it runs and however many workers load it.

Ops follow PIL's pixel semantics (what timm's RandAugment applies to PIL images, and what the released code's
RandAugment does in TF): every op maps uint8 to uint8; geometric ops sample the source at PIL's pixel-centre
coordinates (`Geometry.c` affine_transform: x_in = a*(x+0.5) + b*(y+0.5) + c), nearest-neighbour exactly as PIL
(on the CPU, in float64) or bilinear; enhancements blend with PIL's degenerate images and truncate as
`Image.blend` does. The op strengths per level are those of the tf table below and timm's `auto_augment.py`
(timm); tests compare each op against PIL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

# ------------------------------------------------------------------ the released code's RandAugment on timm's ops
#
# google-research/noisystudent randaugment.py (distort_image_with_randaugment) and timm's auto_augment.py share the
# level scale: an op's strength is level / 10 of its reference strength (`_MAX_LEVEL = 10.` there,
# `_LEVEL_DENOM = 10.` in timm) and both extrapolate past 10 when allowed (the code's scripts use up to 27). Per op:
#   Rotate    level/10 x 30 degrees, random sign          timm 'Rotate'      (same formula)
#   ShearX/Y  level/10 x 0.3, random sign                 timm 'ShearX/Y'    (same formula)
#   TranslateX/Y level/10 x translate_const px, random sign  timm 'TranslateX/Y' (absolute; hparam translate_const)
#   Color, Contrast, Brightness, Sharpness: factor level/10 x 1.8 + 0.1   timm's non-"Increasing" ops (same)
#   Posterize bits int(level/10 x 4)                      timm 'Posterize'   (same; >= 8 bits is a no-op in timm)
#   Solarize  threshold int(level/10 x 256)               timm 'Solarize'    (same; capped at 256 = no-op)
#   SolarizeAdd int(level/10 x 110) added below 128       timm caps the addition at 128 (differs above level 11.6)
#   AutoContrast, Equalize, Invert                        timm's ops of the same names
#   Cutout    square of half-side int(level/10 x cutout_const), fill 128   `cutout` below (timm has none)
# The chosen op is always applied (the code draws a probability but none of its ops takes it), the magnitude is
# fixed (no noise), empty pixels are filled with 128 (replace_value) and resampling is nearest-neighbour (the
# tf.contrib.image transforms' default). This module implements these ops on whole batches, pixel-equal to PIL's
# (tests/data/test_augment.py). Remaining differences from TF: Contrast's degenerate image is the mean of a 256-bin
# histogram in TF and PIL's grey mean here; resampling coordinates follow PIL's pixel centres.
TF_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
          "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "SolarizeAdd")
TF_FILL = 128  # randaugment.py distort_image_with_randaugment: replace_value = [128] * 3
TF_TRANSLATE_CONST = 100  # randaugment.py distort_image_with_randaugment(translate_const=100)
TF_CUTOUT_CONST = 40  # randaugment.py distort_image_with_randaugment(cutout_const=40)
TF_LEVEL_DENOM = 10.0  # randaugment.py _MAX_LEVEL

# timm auto_augment.py `_RAND_TRANSFORMS` (the ops of `rand-m*-n*`); each applied with probability 0.5
TIMM_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
TIMM_PROB = 0.5  # timm AugmentOp default prob, what rand_augment_transform uses
TIMM_TRANSLATE_PCT = 0.45  # timm _translate_rel_level_to_arg: hparams translate_pct default
SIGNED = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel"}


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The CPU generator of one training step's augmentation draws."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, step]).generate_state(1, np.uint64)[0] >> 1))
    return g


# ------------------------------------------------------------------------------------------------ pixel ops
def _trunc8(x: torch.Tensor) -> torch.Tensor:
    """PIL's float -> uint8: clip to [0, 255], then truncate (Blend.c / ImageEnhance)."""
    return x.clamp_(0, 255).floor_()


def _grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's convert("L") of RGB, [n, 1, h, w]: (r 19595 + g 38470 + b 7471 + 0x8000) >> 16; grey stays."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _trunc8(degenerate + factor.view(-1, 1, 1, 1) * (x - degenerate))


def color(x, factor):
    if x.shape[1] == 1:  # the blend of a grey image with itself
        return x
    return _blend(_grey(x).expand_as(x), x, factor)


_SMOOTH = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0  # PIL ImageFilter.SMOOTH


def sharpness(x, factor):
    # ImageEnhance.Sharpness: degenerate = SMOOTH filter (rounded), the one-pixel border kept as is
    c = x.shape[1]
    k = _SMOOTH.to(x.device, x.dtype).expand(c, 1, 3, 3)
    smooth = torch.floor(functional.conv2d(x, k, groups=c) + 0.5)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, factor)


# Point ops: each image's (and channel's) 256-entry table, [n, c, 1, 256], computed by applying the op's pixel
# formula to `t`, the identity table shaped like an image row; `x` supplies the statistics (mean, range, histogram)
# of the ops that need them. One gather then applies any mix of them to a batch (`apply_lut`).
def _table(x: torch.Tensor) -> torch.Tensor:
    return torch.arange(256, device=x.device, dtype=x.dtype).expand(len(x), x.shape[1], 1, 256)


def apply_lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    return torch.gather(lut.reshape(n, c, 256), 2, x.reshape(n, c, -1).long()).view_as(x)


def brightness_lut(x, t, factor):
    return _blend(torch.zeros_like(t), t, factor)


def contrast_lut(x, t, factor):
    # ImageEnhance.Contrast: the mean of the greyscale histogram, int(mean + 0.5)
    mean = torch.floor(_grey(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    return _blend(mean.expand_as(t), t, factor)


def autocontrast_lut(x, t, _=None):
    # ImageOps.autocontrast(cutoff=0): per channel lut[i] = int(i * 255 / (hi - lo) - lo * scale), clipped
    # PIL computes the table in double, with a true division: torch's scalar / tensor multiplies by a reciprocal,
    # one unit in the last place off, which puts one table entry in nine a grey level below PIL's
    dt = torch.float32 if x.device.type == "mps" else torch.float64  # 256 entries: double costs nothing on a GPU
    lo = x.amin(dim=(2, 3), keepdim=True).to(dt)
    hi = x.amax(dim=(2, 3), keepdim=True).to(dt)
    scale = torch.full_like(hi, 255.0) / (hi - lo).clamp_min(1)
    out = _trunc8(t.to(dt) * scale - lo * scale).to(x.dtype)
    return torch.where(hi > lo, out, t)


def equalize_lut(x, t, _=None):
    # ImageOps.equalize per channel: step = (pixels - count of the last used level) // 255; none: identity; else
    # lut[i] = (step // 2 + pixels below level i) // step, clipped to 255 (Image.point's uint8 table)
    n, c = x.shape[:2]
    v = x.reshape(n * c, -1).long()
    hist = torch.zeros(n * c, 256, dtype=torch.int64, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    last = 255 - (hist > 0).flip(1).int().argmax(1, keepdim=True)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last)) // 255
    below = hist.cumsum(1) - hist
    lut = ((step // 2 + below) // step.clamp_min(1)).clamp_max(255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device))
    return lut.view(n, c, 1, 256).to(t.dtype)


def invert_lut(x, t, _=None):
    return 255 - t


def posterize_lut(x, t, bits):
    bits = bits.view(-1, 1, 1, 1).to(t.device)
    keep = torch.bitwise_left_shift(torch.full_like(bits, 255), (8 - bits).clamp(0, 8)) & 255
    return torch.where(bits >= 8, t, (t.to(torch.int32) & keep).to(t.dtype))


def solarize_lut(x, t, threshold):
    return torch.where(t >= threshold.view(-1, 1, 1, 1), 255 - t, t)


def solarize_add_lut(x, t, add, threshold: int = 128):
    return torch.where(t < threshold, (t + add.view(-1, 1, 1, 1)).clamp_max(255), t)


POINT_OPS = {"AutoContrast": autocontrast_lut, "Equalize": equalize_lut, "Invert": invert_lut,
             "Posterize": posterize_lut, "Solarize": solarize_lut, "SolarizeAdd": solarize_add_lut,
             "Brightness": brightness_lut, "Contrast": contrast_lut}
NEEDS_PIXELS = {"AutoContrast", "Equalize", "Contrast"}  # point ops whose table depends on the image


def affine(x: torch.Tensor, matrix, fill: float, mode: str = "nearest") -> torch.Tensor:
    """PIL's Image.transform(AFFINE, (a, b, c, d, e, f)) per image: output (x, y) samples the input at
    (a (x+0.5) + b (y+0.5) + c, d (x+0.5) + e (y+0.5) + f); outside the image: `fill`. matrix: [n, 6]."""
    n, c, h, w = x.shape
    if mode != "nearest":
        return _affine_bilinear(x, matrix, fill)
    dt = torch.float64 if x.device.type == "cpu" else torch.float32  # PIL computes in double: floor() picks its pixel
    m = torch.as_tensor(matrix).to(x.device, dt)
    ys = torch.arange(h, device=x.device, dtype=dt) + 0.5
    xs = torch.arange(w, device=x.device, dtype=dt) + 0.5
    gx = m[:, 0, None, None] * xs[None, None, :] + m[:, 1, None, None] * ys[None, :, None] + m[:, 2, None, None]
    gy = m[:, 3, None, None] * xs[None, None, :] + m[:, 4, None, None] * ys[None, :, None] + m[:, 5, None, None]
    ix, iy = gx.floor_().long(), gy.floor_().long()  # Geometry.c COORD: negative -> outside
    ok = (ix >= 0) & (iy >= 0) & (ix < w) & (iy < h)
    flat = (iy.clamp_(0, h - 1) * w).add_(ix.clamp_(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, flat).view(n, c, h, w)
    return out.masked_fill_(~ok[:, None], fill)


def _affine_bilinear(x: torch.Tensor, matrix, fill: float) -> torch.Tensor:
    """affine() with bilinear sampling, in float32 on every device (within a grey level of PIL's fixed-point
    arithmetic anyway): grid_sample at PIL's coordinates (align_corners=False puts pixel centres where PIL does),
    edge pixels repeated past the border (PIL's BILINEAR_HEAD), `fill` where the point itself is outside."""
    n, c, h, w = x.shape
    m = torch.as_tensor(matrix).to(x.device, torch.float32)
    ys = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5)[None, :, None]
    xs = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5)[None, None, :]
    gx = m[:, 0, None, None] * xs + m[:, 1, None, None] * ys + m[:, 2, None, None]
    gy = m[:, 3, None, None] * xs + m[:, 4, None, None] * ys + m[:, 5, None, None]
    outside = ((gx < 0) | (gy < 0) | (gx >= w) | (gy >= h))[:, None]
    grid = torch.stack([gx.mul_(2 / w).sub_(1), gy.mul_(2 / h).sub_(1)], dim=-1)
    out = functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _trunc8(out.add_(1e-3)).masked_fill_(outside, fill)  # PIL truncates; 1e-3: float error


def shift(x: torch.Tensor, d: torch.Tensor, fill: float = 0.0, pad: int | None = None) -> torch.Tensor:
    """Pad-and-crop: output (y, x) = input (y - dy, x - dx) per image, `fill` where that falls outside; d: [n, 2]
    integer (dy, dx), |d| <= pad. Each image's crop is one window of the padded batch (two copies in all)."""
    n, c, h, w = x.shape
    d = d.to(x.device, torch.int64)
    if pad is None:
        pad = int(d.abs().max()) if len(d) else 0
    # [n, c, 2p+1, 2p+1, h, w]
    windows = functional.pad(x, (pad, pad, pad, pad), value=fill).unfold(2, h, 1).unfold(3, w, 1)
    return windows[torch.arange(n, device=x.device), :, pad - d[:, 0], pad - d[:, 1]]


def _rotation(deg, w: int, h: int) -> np.ndarray:
    """PIL Image.rotate's inverse matrix about the centre (w/2, h/2), cos/sin rounded to 15 digits as PIL does."""
    a = -np.radians(np.asarray(deg, dtype=np.float64))
    cos, sin = np.round(np.cos(a), 15), np.round(np.sin(a), 15)
    cx, cy = w / 2, h / 2
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return np.stack([cos, sin, c, -sin, cos, f], 1)


def _unit(n: int) -> np.ndarray:
    m = np.zeros((n, 6))
    m[:, 0] = m[:, 4] = 1
    return m


# ------------------------------------------------------------------------------------------------ RandAugment
@dataclass
class BatchRandAugment:
    """RandAugment with each image drawing its own ops: `layers` times, an op chosen uniformly from the set, applied
    with probability `prob`, at magnitude m (+ Gaussian noise of `magnitude_std`, clipped to [0, magnitude_max]).

    ops="tf": the released code's randaugment.py (15 ops + Cutout, always applied, fill 128, nearest, magnitude on
    its scale without the clip at 10). ops="timm": timm's `rand-m{M}-n{N}-mstd{S}` (prob 0.5, clipped at 10,
    relative translation of up to 45 %, fill 0; bilinear where timm draws bilinear or bicubic per call)."""

    magnitude: float
    layers: int
    ops: str = "tf"
    magnitude_std: float = 0.0
    translate_const: int = TF_TRANSLATE_CONST  # tf TranslateX/Y at level 10, pixels
    cutout_const: int = TF_CUTOUT_CONST  # tf Cutout half-side at level 10, pixels

    def __post_init__(self):
        if self.ops not in ("tf", "timm"):
            raise ValueError(f"ops must be tf or timm, got {self.ops!r}")
        self.names = TF_OPS + ("Cutout",) if self.ops == "tf" else TIMM_OPS
        self.prob = 1.0 if self.ops == "tf" else TIMM_PROB
        self.fill = float(TF_FILL) if self.ops == "tf" else 0.0
        self.mode = "nearest" if self.ops == "tf" else "bilinear"
        self.magnitude_max = max(float(self.magnitude), TF_LEVEL_DENOM) * 3 if self.ops == "tf" else TF_LEVEL_DENOM
        self._point = np.array([k for k, name in enumerate(self.names) if name in POINT_OPS])

    def draw(self, n: int, gen: torch.Generator) -> dict:
        """Every random choice for n images, [n, layers] each (CPU tensors)."""
        shape = (n, self.layers)
        mag = torch.full(shape, float(self.magnitude), dtype=torch.float64)
        if self.magnitude_std > 0:
            mag = mag + self.magnitude_std * torch.randn(shape, generator=gen, dtype=torch.float64)
        return {
            "op": torch.randint(len(self.names), shape, generator=gen),
            "apply": torch.rand(shape, generator=gen, dtype=torch.float64) < self.prob,
            "magnitude": mag.clamp(0.0, self.magnitude_max),
            "sign": torch.where(torch.rand(shape, generator=gen) < 0.5, 1.0, -1.0).double(),
            "where": torch.rand(shape + (2,), generator=gen, dtype=torch.float64),  # Cutout centre, as a fraction
        }

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """uint8 [n, c, h, w] -> uint8, each image with its own ops."""
        if self.layers <= 0 or len(x) == 0:
            return x
        up = Upload()
        steps = self.plan(len(x), x.shape[2:], gen, up)
        return run(x, steps, up.send(x.device))

    def plan(self, n: int, hw, gen: torch.Generator, up: "Upload") -> list:
        """The draws for n images as steps (op, rows, argument), their arrays queued on `up`. The bookkeeping runs in
        numpy: dozens of tiny selections a step cost a fraction of what they cost as torch calls."""
        p = {k: v.numpy() for k, v in self.draw(n, gen).items()}
        h, w = int(hw[0]), int(hw[1])
        geometric = np.array([k for k, name in enumerate(self.names) if name in SIGNED])
        steps = []
        for layer in range(self.layers):
            op, apply, m, sign = p["op"][:, layer], p["apply"][:, layer], p["magnitude"][:, layer], p["sign"][:, layer]
            is_geo = np.isin(op, geometric)
            # the geometric ops as one resampling of every image that drew one (a matrix each)
            rows = np.flatnonzero(apply & is_geo)
            if len(rows):
                mat = self.matrices(op[rows], m[rows], sign[rows], (h, w))
                steps.append(("affine", up.add(rows), up.add(mat), self.fill, self.mode))
            # the point ops as one table lookup of every image that drew one; each image takes one op per layer,
            # so the groups are disjoint and their order within the layer does not matter
            rest = apply & ~is_geo
            point_rows = np.flatnonzero(rest & np.isin(op, self._point))
            tables = []
            for k in np.unique(op[rest]).tolist():  # in the order of self.names
                name = self.names[k]
                rows = np.flatnonzero(rest & (op == k))
                v = self.level(name, m[rows], sign[rows], (h, w))
                if name == "Cutout":
                    where = p["where"][rows, layer]
                    cy = np.minimum(np.floor(where[:, 0] * h).astype(np.int64), h - 1)
                    cx = np.minimum(np.floor(where[:, 1] * w).astype(np.int64), w - 1)
                    v = np.stack([cy, cx, v], 1)
                v = up.add(v) if v is not None else None
                if name in POINT_OPS:  # its images' positions among point_rows
                    tables.append((name, up.add(np.searchsorted(point_rows, rows)), v))
                else:
                    steps.append((name, up.add(rows), v, self.fill, self.mode))
            if tables:
                steps.append(("point", up.add(point_rows), tables, self.fill, self.mode))
        return steps

    def matrices(self, op: np.ndarray, m: np.ndarray, sign: np.ndarray, hw) -> np.ndarray:
        """PIL's inverse affine matrix [n, 6] of each image's geometric op."""
        h, w = int(hw[0]), int(hw[1])
        mat = _unit(len(op))
        for k in np.unique(op).tolist():
            name, rows = self.names[k], op == k
            v = self.level(name, m[rows], sign[rows], (h, w))
            if name == "Rotate":
                mat[rows] = _rotation(v, w, h)
            else:
                col = {"ShearX": 1, "ShearY": 3, "TranslateX": 2, "TranslateXRel": 2}.get(name, 5)
                mat[rows, col] = v
        return mat

    def level(self, name: str, m: np.ndarray, sign: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
        """Each op's argument at level m (level / 10 of its reference strength), as timm / randaugment.py."""
        t = np.asarray(m, dtype=np.float64) / TF_LEVEL_DENOM
        sign = np.asarray(sign, dtype=np.float64)
        if name == "Rotate":
            return t * 30 * sign
        if name in ("ShearX", "ShearY"):
            return t * 0.3 * sign
        if name in ("TranslateX", "TranslateY"):
            return t * self.translate_const * sign
        if name == "TranslateXRel":
            return t * TIMM_TRANSLATE_PCT * size[1] * sign
        if name == "TranslateYRel":
            return t * TIMM_TRANSLATE_PCT * size[0] * sign
        if name in ("Color", "Contrast", "Brightness", "Sharpness"):
            return t * 1.8 + 0.1
        if name == "Posterize":
            return np.floor(t * 4).astype(np.int64)
        if name == "Solarize":
            return np.floor(t * 256)
        if name == "SolarizeAdd":
            return np.floor(t * 110)
        if name == "Cutout":
            return np.floor(t * self.cutout_const).astype(np.int64)
        return None  # AutoContrast, Equalize, Invert take no argument


OPS = {"Color": color, "Sharpness": sharpness}  # the ops that are neither geometric nor point ops (and Cutout)


def cutout(x: torch.Tensor, box: torch.Tensor, fill: float) -> torch.Tensor:
    """randaugment.py cutout: a (2p x 2p) square at a pixel centre, clipped to the image; box [n, 3]: (cy, cx, p)."""
    _, _, h, w = x.shape
    cy, cx, half = box[:, 0, None], box[:, 1, None], box[:, 2, None]
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    rows = (ys >= cy - half) & (ys < cy + half)
    cols = (xs >= cx - half) & (xs < cx + half)
    inside = rows[:, :, None] & cols[:, None, :] & (half > 0)[:, :, None]
    return torch.where(inside[:, None], torch.full_like(x, fill), x)


class Upload:
    """The small CPU tensors of one batch's draws (rows, levels, matrices), sent to the batch's device as one
    pinned, asynchronous copy per dtype: one blocking copy each would stall the device's queue dozens of times a
    step. On the CPU nothing moves, and levels and matrices stay in float64 (nearest resampling floors PIL's double
    coordinates)."""

    def __init__(self):
        self.ints: list[torch.Tensor] = []
        self.floats: list[torch.Tensor] = []

    def add(self, t) -> tuple[str, int]:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point:
            self.floats.append(t)
            return "f", len(self.floats) - 1
        self.ints.append(t.long())
        return "i", len(self.ints) - 1

    def send(self, device: torch.device):
        if device.type == "cpu":  # already where they are used: ints are int64 (add), floats become float64
            out = {"i": self.ints, "f": [t.double() for t in self.floats]}
            return lambda handle: out[handle[0]][handle[1]]
        out: dict[str, list] = {}
        for kind, ts, dt in (("i", self.ints, torch.int64), ("f", self.floats, torch.float32)):
            if not ts:
                continue
            flat = torch.cat([t.reshape(-1).to(dt) for t in ts])
            if device.type == "cuda":
                flat = flat.pin_memory()
            flat = flat.to(device, non_blocking=device.type == "cuda")  # asynchronous from pinned memory only
            out[kind] = [v.view(t.shape) for v, t in zip(torch.split(flat, [t.numel() for t in ts]), ts)]
        return lambda handle: out[handle[0]][handle[1]]


def run(x: torch.Tensor, steps: list, get) -> torch.Tensor:
    """Apply planned steps to a uint8 batch on its device; each step's rows are a device index tensor."""

    def arg(handle, dtype):
        a = get(handle) if handle is not None else None
        return a.to(dtype) if a is not None and a.dtype.is_floating_point else a

    out = x.float()
    for name, rows, a, fill, mode in steps:
        idx = get(rows) if rows is not None else None
        sub = out.index_select(0, idx) if idx is not None else out
        if name == "affine":
            res = affine(sub, get(a), fill, mode)
        elif name == "shift":
            res = shift(sub, get(a), fill, pad=mode)
        elif name == "flip":
            res = torch.where(get(a).bool()[:, None, None, None], sub.flip(3), sub)
        elif name == "Cutout":
            res = cutout(sub, get(a), fill)
        elif name == "point":  # one table per image, filled by each op for its images
            t = _table(sub)
            lut = t.clone()
            for op, pos, v in a:
                pos = get(pos)
                pixels = sub.index_select(0, pos) if op in NEEDS_PIXELS else None
                lut.index_copy_(0, pos, POINT_OPS[op](pixels, t[: len(pos)], arg(v, sub.dtype)))
            res = apply_lut(sub, lut)
        else:
            res = OPS[name](sub, arg(a, sub.dtype))
        if idx is None:
            out = res
        else:
            out.index_copy_(0, idx, res)
    return out.to(torch.uint8)


# ------------------------------------------------------------------------------------------------ the whole noise
@dataclass
class BatchAugment:
    """The student's input noise on a uint8 batch: per-image pad-and-crop shift and flip (small padded images; natural
    images had their random-resized crop and flip when they were decoded), then RandAugment."""

    randaugment: BatchRandAugment | None = None
    flip: bool = False
    shift: int = 0  # random_crop_pad: translation by up to this many pixels, zeros filling

    def __call__(self, x: torch.Tensor, gen: torch.Generator, natural: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [n, c, h, w] -> uint8; `natural` [n] bool marks images already cropped and flipped at decoding,
        which take only RandAugment."""
        n = len(x)
        if n == 0 or not self.active:
            return x
        small = torch.ones(n, dtype=torch.bool) if natural is None else ~natural.cpu()
        up, steps = Upload(), []
        if self.shift:
            d = torch.randint(-self.shift, self.shift + 1, (n, 2), generator=gen) * small[:, None]  # (dy, dx)
            steps.append(("shift", None, up.add(d), 0.0, self.shift))  # the pad, in the step's mode slot
        if self.flip:
            steps.append(("flip", None, up.add((torch.rand(n, generator=gen) < 0.5) & small), 0.0, None))
        if self.randaugment is not None:
            steps += self.randaugment.plan(n, x.shape[2:], gen, up)
        return run(x, steps, up.send(x.device))

    @property
    def active(self) -> bool:
        return bool(self.shift or self.flip or self.randaugment is not None)


def batch_augment(size: int, randaugment: bool, layers: int, magnitude: float, magnitude_std: float,
                  flip: bool = False, random_crop_pad: int = 0, *, ops: str = "tf", translate_const: int | None = None,
                  natural: bool = False) -> BatchAugment:
    """The batch noise of a recipe's `noise` section (see NoiseConfig). Translation / Cutout sizes at level 10 for
    tf ops: `translate_const`, else 100 / 40 px for natural images (randaugment.py defaults) and size // 8 for small
    ones (preprocessing.py _cifar10_preprocess_for_train)."""
    ra = None
    if randaugment and layers > 0:
        if translate_const is not None:
            tc = cc = translate_const
        elif natural:
            tc, cc = TF_TRANSLATE_CONST, TF_CUTOUT_CONST
        else:
            tc = cc = max(1, size // 8)
        ra = BatchRandAugment(magnitude, layers, ops=ops, magnitude_std=magnitude_std, translate_const=tc,
                              cutout_const=cc)
    return BatchAugment(ra, flip=flip, shift=random_crop_pad)


def to_float(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 NCHW (1 or 3 channels) -> float [0, 1] with 3 channels, on x's device."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(torch.float32, memory_format=fmt).div_(255.0)

