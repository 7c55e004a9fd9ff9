"""Training noise on whole uint8 batches, per sample, on whatever device the batch lives on.

One implementation for every device: on a GPU the batch is augmented after the transfer, on a CPU in the loader
(workers, or the main process when there are none). Every random draw (which op each image takes, its magnitude,
sign, shift, flip, Cutout centre) comes from a CPU generator seeded by (seed, epoch, step), so the same step gives
the same pixels wherever it runs and however many workers load it.

Ops follow PIL's pixel semantics (what timm's RandAugment applies to PIL images, and what the released code's
RandAugment does in TF): every op maps uint8 to uint8; geometric ops sample the source at PIL's pixel-centre
coordinates (`Geometry.c` affine_transform: x_in = a*(x+0.5) + b*(y+0.5) + c), nearest-neighbour exactly as PIL
(on the CPU, in float64) or bilinear; enhancements blend with PIL's degenerate images and truncate as
`Image.blend` does. The op strengths per level are those of `transforms.py` (tf) and timm's `auto_augment.py`
(timm); tests compare each op against PIL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import TF_CUTOUT_CONST, TF_FILL, TF_LEVEL_DENOM, TF_OPS, TF_TRANSLATE_CONST

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


def brightness(x, factor):
    return _blend(torch.zeros_like(x), x, factor)


def color(x, factor):
    return _blend(_grey(x).expand_as(x), x, factor)


def contrast(x, factor):
    # ImageEnhance.Contrast: the mean of the greyscale histogram, int(mean + 0.5)
    mean = torch.floor(_grey(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    return _blend(mean.expand_as(x), x, factor)


_SMOOTH = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0  # PIL ImageFilter.SMOOTH


def sharpness(x, factor):
    # ImageEnhance.Sharpness: degenerate = SMOOTH filter (rounded), the one-pixel border kept as is
    c = x.shape[1]
    k = _SMOOTH.to(x.device, x.dtype).expand(c, 1, 3, 3)
    smooth = torch.floor(F.conv2d(x, k, groups=c) + 0.5)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, factor)


def autocontrast(x, _=None):
    # ImageOps.autocontrast(cutoff=0): per channel lut[i] = int(i * 255 / (hi - lo) - lo * scale), clipped
    dt = torch.float64 if x.device.type == "cpu" else torch.float32  # PIL's lut is computed in double
    lo = x.amin(dim=(2, 3), keepdim=True).to(dt)
    hi = x.amax(dim=(2, 3), keepdim=True).to(dt)
    scale = 255.0 / (hi - lo).clamp_min(1)
    out = _trunc8(x.to(dt) * scale - lo * scale).to(x.dtype)
    return torch.where(hi > lo, out, x)


def equalize(x, _=None):
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(x.to(torch.uint8)).to(x.dtype)  # per image and channel, PIL's ImageOps.equalize


def invert(x, _=None):
    return 255 - x


def posterize(x, bits):
    bits = bits.view(-1, 1, 1, 1).to(x.device)
    keep = torch.bitwise_left_shift(torch.full_like(bits, 255), (8 - bits).clamp(0, 8)) & 255
    out = (x.to(torch.int32) & keep).to(x.dtype)
    return torch.where(bits >= 8, x, out)


def solarize(x, threshold):
    return torch.where(x >= threshold.view(-1, 1, 1, 1), 255 - x, x)


def solarize_add(x, add, threshold: int = 128):
    return torch.where(x < threshold, (x + add.view(-1, 1, 1, 1)).clamp_max(255), x)


def affine(x: torch.Tensor, matrix: torch.Tensor, fill: float, mode: str = "nearest") -> torch.Tensor:
    """PIL's Image.transform(AFFINE, (a, b, c, d, e, f)) per image: output (x, y) samples the input at
    (a (x+0.5) + b (y+0.5) + c, d (x+0.5) + e (y+0.5) + f); outside the image: `fill`. matrix: [n, 6]."""
    n, c, h, w = x.shape
    dt = torch.float64 if x.device.type == "cpu" else torch.float32  # PIL computes in double
    m = matrix.to(x.device, dt)
    ys = torch.arange(h, device=x.device, dtype=dt) + 0.5
    xs = torch.arange(w, device=x.device, dtype=dt) + 0.5
    gx = m[:, 0, None, None] * xs[None, None, :] + m[:, 1, None, None] * ys[None, :, None] + m[:, 2, None, None]
    gy = m[:, 3, None, None] * xs[None, None, :] + m[:, 4, None, None] * ys[None, :, None] + m[:, 5, None, None]
    if mode == "nearest":
        ix, iy = gx.floor().long(), gy.floor().long()  # Geometry.c COORD: negative -> outside
        ok = (gx >= 0) & (gy >= 0) & (ix < w) & (iy < h)
        flat = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
        out = torch.gather(x.reshape(n, c, h * w), 2, flat).view(n, c, h, w)
        return torch.where(ok[:, None], out, torch.full_like(out, fill))
    # bilinear: grid_sample at the same coordinates (align_corners=False puts pixel centres where PIL does), edge
    # pixels repeated past the border (PIL's BILINEAR_HEAD), `fill` where the point itself is outside (as nearest)
    grid = torch.stack([gx / w * 2 - 1, gy / h * 2 - 1], dim=-1).to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ok = ((gx >= 0) & (gy >= 0) & (gx < w) & (gy < h))[:, None]
    return torch.where(ok, _trunc8(out + 1e-3), torch.full_like(out, fill))  # PIL truncates; 1e-3: float error


def _rotation(deg: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """PIL Image.rotate's inverse matrix about the centre (w/2, h/2), cos/sin rounded to 15 digits as PIL does."""
    a = -np.radians(deg.double().numpy())
    cos, sin = np.round(np.cos(a), 15), np.round(np.sin(a), 15)
    cx, cy = w / 2, h / 2
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return torch.from_numpy(np.stack([cos, sin, c, -sin, cos, f], 1))


def _unit(n: int) -> torch.Tensor:
    m = torch.zeros(n, 6, dtype=torch.float64)
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
        """The draws for n images as steps (op, rows, argument), their tensors queued on `up` (all on the CPU)."""
        p = self.draw(n, gen)
        h, w = int(hw[0]), int(hw[1])
        geometric = [k for k, name in enumerate(self.names) if name in SIGNED]
        steps = []
        for layer in range(self.layers):
            op, apply, m, sign = p["op"][:, layer], p["apply"][:, layer], p["magnitude"][:, layer], p["sign"][:, layer]
            # the geometric ops as one resampling of every image that drew one (a matrix each)
            sel = apply & torch.isin(op, torch.tensor(geometric))
            if sel.any():
                rows = sel.nonzero().squeeze(1)
                mat = self.matrices(op[rows], m[rows], sign[rows], (h, w))
                steps.append(("affine", up.add(rows), up.add(mat), self.fill, self.mode))
            for k, name in enumerate(self.names):
                if k in geometric:
                    continue
                sel = (op == k) & apply
                if not sel.any():
                    continue
                rows = sel.nonzero().squeeze(1)
                v = self.level(name, m[rows], sign[rows], (h, w))
                if name == "Cutout":
                    where = p["where"][rows, layer]
                    cy = (where[:, 0] * h).floor().long().clamp_max(h - 1)
                    cx = (where[:, 1] * w).floor().long().clamp_max(w - 1)
                    v = torch.stack([cy, cx, v.long()], 1)
                steps.append((name, up.add(rows), up.add(v) if v is not None else None, self.fill, self.mode))
        return steps

    def matrices(self, op: torch.Tensor, m: torch.Tensor, sign: torch.Tensor, hw) -> torch.Tensor:
        """PIL's inverse affine matrix [n, 6] of each image's geometric op."""
        h, w = int(hw[0]), int(hw[1])
        mat = _unit(len(op))
        for k in op.unique().tolist():
            name, rows = self.names[k], op == k
            v = self.level(name, m[rows], sign[rows], (h, w))
            if name == "Rotate":
                mat[rows] = _rotation(v, w, h)
            else:
                col = {"ShearX": 1, "ShearY": 3, "TranslateX": 2, "TranslateXRel": 2}.get(name, 5)
                mat[rows, col] = v
        return mat

    def level(self, name: str, m: torch.Tensor, sign: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Each op's argument at level m (level / 10 of its reference strength), as timm / randaugment.py."""
        t = m / TF_LEVEL_DENOM
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
            return (t * 4).floor().long()
        if name == "Solarize":
            return (t * 256).floor()
        if name == "SolarizeAdd":
            return (t * 110).floor()
        if name == "Cutout":
            return (t * self.cutout_const).floor().long()
        return None  # AutoContrast, Equalize, Invert take no argument


OPS = {"AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert, "Posterize": posterize,
       "Brightness": brightness, "Color": color, "Contrast": contrast, "Sharpness": sharpness,
       "Solarize": solarize, "SolarizeAdd": solarize_add}


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
    step. On the CPU nothing moves; geometry stays in float64 there (PIL computes in double)."""

    def __init__(self):
        self.ints: list[torch.Tensor] = []
        self.floats: list[torch.Tensor] = []

    def add(self, t: torch.Tensor) -> tuple[str, int]:
        if t.dtype.is_floating_point:
            self.floats.append(t)
            return "f", len(self.floats) - 1
        self.ints.append(t.long())
        return "i", len(self.ints) - 1

    def send(self, device: torch.device):
        out: dict[str, list] = {}
        for kind, ts, dt in (("i", self.ints, torch.int64),
                             ("f", self.floats, torch.float64 if device.type == "cpu" else torch.float32)):
            if not ts:
                continue
            flat = torch.cat([t.reshape(-1).to(dt) for t in ts])
            if device.type == "cuda":
                flat = flat.pin_memory().to(device, non_blocking=True)
            out[kind] = [v.view(t.shape) for v, t in zip(torch.split(flat, [t.numel() for t in ts]), ts)]
        return lambda handle: out[handle[0]][handle[1]]


def run(x: torch.Tensor, steps: list, get) -> torch.Tensor:
    """Apply planned steps to a uint8 batch on its device; each step's rows are a device index tensor."""
    out = x.float()
    for name, rows, arg, fill, mode in steps:
        idx = get(rows) if rows is not None else None
        sub = out[idx] if idx is not None else out
        a = get(arg) if arg is not None else None
        if name in ("affine", "shift"):
            res = affine(sub, a, fill, mode)
        elif name == "flip":
            res = torch.where(a.bool()[:, None, None, None], sub.flip(3), sub)
        elif name == "Cutout":
            res = cutout(sub, a, fill)
        else:
            res = OPS[name](sub, a.to(sub.dtype) if a is not None and a.dtype.is_floating_point else a)
        if idx is None:
            out = res
        else:
            out[idx] = res
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
            d = torch.randint(-self.shift, self.shift + 1, (n, 2), generator=gen) * small[:, None]
            mat = _unit(n)
            mat[:, 2], mat[:, 5] = -d[:, 1].double(), -d[:, 0].double()  # output (y, x) <- input (y - dy, x - dx)
            steps.append(("shift", None, up.add(mat), 0.0, "nearest"))
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

