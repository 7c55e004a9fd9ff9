"""Typed configuration: dataclasses, YAML recipes and dotted overrides.

Unknown keys are rejected with a message that lists the valid ones, so a typo in a recipe never silently
falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .utils import DEVICE, NsbenchError


@dataclass
class DataConfig:
    source: str = "fashion-mnist"  # fashion-mnist | hf:ORG/NAME | folder:PATH | imagenet:PATH
    train_split: str = "train"
    val_split: str = "test"  # used for the per-epoch validation column only, never for model selection
    labels_per_class: int | None = 100  # None: every training image is labeled
    unlabeled: str | None = None  # a separate unlabeled source (labels ignored); None: the rest of train
    unlabeled_limit: int | None = None  # cap the unlabeled pool (seeded subset)
    val_limit: int | None = None
    image_size: int = 32  # square side after padding / resizing
    image_column: str = "image"  # for hf: sources
    label_column: str = "label"
    # loader processes; auto: none on machines of 2 cores or fewer, else the cores per local GPU less one (or the
    # cores less one without a GPU), at most 16 (nsbench/data/loaders.py auto_workers)
    num_workers: int | str = "auto"
    # where JPEGs are decoded for training and pseudo-labeling: auto = on the GPU when running on CUDA on natural
    # images (for training, with random-resized crops), workers then only read bytes (nsbench/data/decode.py); else
    # by the loader workers; cpu; device. Scoring always decodes as the reference pipeline does (PIL, CPU).
    decode: str = "auto"


@dataclass
class ModelConfig:
    arch: str = "tinynet_e"  # any timm.create_model name
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth
    pretrained: bool = False  # start from timm's pretrained weights (needs them in the HF cache or the hub)
    kwargs: dict = field(default_factory=dict)  # passed through to timm.create_model


@dataclass
class OptimConfig:
    epochs: int = 10
    batch_size: int = 128  # labeled images per batch
    optimizer: str = "adamw"  # adamw | sgd | rmsprop
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # 0 disables the EMA of weights (timm ModelEmaV3)
    # The released code's EMA ramp (main.py: tf.train.ExponentialMovingAverage(decay=moving_average_decay,
    # num_updates=global_step)): the decay of update n is min(ema_decay, (1 + n) / (10 + n)), n the optimizer steps
    # done (TF moving_averages.py). false: ema_decay from the third step on, the first two copy the weights (timm).
    ema_warmup: bool = False
    # Labeled images per step that ema_decay is meant for (the released code: --train_batch_size 4096). A step of
    # batch_size x ranks images then decays by ema_decay ** (images / ema_reference_batch), so the average spans
    # as many images as the code's at any batch (the ramp's n counted the same way). 0: ema_decay per step.
    ema_reference_batch: int = 0
    grad_clip: float = 0.0  # 0 disables clipping
    eval_every: int = 1  # validate every N epochs (the last epoch always)


@dataclass
class PseudoConfig:
    soft: bool = True  # soft targets (probabilities) or hard (argmax) labels
    temperature: float = 1.0  # softmax temperature applied to the teacher's logits
    threshold: float = 0.3  # drop images whose top probability is below this
    balance: bool = True  # per-class balancing to `per_class` images
    per_class: int | str = "mean"  # an int, or mean | median | max | min of the filtered per-class counts
    topk: int | None = None  # keep top-k probabilities (None: all classes when <= 100, else 10)
    batch_size: int = 512
    # Label smoothing of *hard* pseudo-labels (soft targets are used as they are). 0.1 as the released code:
    # main.py computes the unlabeled loss with softmax_cross_entropy(label_smoothing=FLAGS.label_smoothing),
    # flag default 0.1.
    label_smoothing: float = 0.1
    # Which probabilities the confidence filter reads. untempered (the released code): predict_label.py stores
    # softmax(logits) and filter_unlabel.py compares its top probability with --min_threshold; the temperature
    # only shapes the training targets (main.py raises the stored probabilities to 1/teacher_softmax_temp).
    # tempered: filter on softmax(logits / temperature). The two agree when temperature is 1.
    filter_on: str = "untempered"  # untempered | tempered


@dataclass
class NoiseConfig:
    randaugment: bool = True
    ra_layers: int = 2  # RandAugment N
    ra_magnitude: int = 9  # RandAugment M, the level on the code's scale (its per-size scripts: 6-27; 9: timm's usual)
    ra_magnitude_std: float = 0.0  # magnitude noise (timm's mstd); 0: fixed, as the code's randaugment.py
    flip: bool = False  # horizontal flip of small (padded) images; natural images: see natural_crop
    random_crop_pad: int = 0  # pad-and-crop translation of small (padded) images, in pixels
    # RandAugment implementation. tf (default): the released code's RandAugment (randaugment.py) on timm's ops:
    # its 15 ops plus Cutout, the chosen op always applied, the magnitude fixed and on its scale (level / 10,
    # `_MAX_LEVEL = 10.`, not clipped at 10: the scripts use up to 27), grey fill 128, nearest-neighbour
    # resampling. timm: timm's `rand-m{M}-n{N}-mstd{S}` (each op applied with probability 0.5, magnitude
    # clipped to 10, relative translation). ra_magnitude means the same level on both (timm's
    # `_LEVEL_DENOM = 10`); see nsbench/data/augment.py for the mapping and its remaining differences.
    ra_ops: str = "tf"  # tf | timm
    # tf ops: translation (and Cutout half-size) at magnitude 10, in pixels. None: the code's values, 100 (and
    # 40) for natural images (randaugment.py distort_image_with_randaugment defaults), image_size // 8 for small
    # images (preprocessing.py _cifar10_preprocess_for_train).
    ra_translate_const: int | None = None
    # Natural (not small padded) images in training: inception = random-resized crop (area 8-100 %, aspect 3/4-4/3,
    # bicubic; preprocessing.py _random_crop) + horizontal flip (preprocessing.py _flip), the ImageNet standard;
    # center = the deterministic resize + centre crop of evaluation. Small padded images never take it.
    natural_crop: str = "inception"  # inception | center


@dataclass
class NSConfig:
    iterations: int = 3
    unlabeled_ratio: int = 3  # pseudo-labeled images per labeled image in each student batch
    unlabeled_loss_weight: float = 1.0  # an extra factor on the pseudo-labeled term, on top of loss_weighting
    # ratio (the released code): main.py's data_loss = (lab_loss * lab_bsz + unl_loss * unl_bsz) / lab_bsz, i.e.
    # labeled mean + unlabeled_ratio x pseudo-labeled mean (every image weighs the same). paper: the paper's
    # equation, labeled mean + pseudo-labeled mean. Default ratio, so that recipes reproduce the released code.
    loss_weighting: str = "ratio"  # ratio | paper
    # The student's budget is counted as the paper and the code count it: student_optim.epochs passes over the
    # *labeled* set (main.py: steps_per_epoch = num_train_images / train_batch_size), each step also taking
    # unlabeled_ratio x batch_size pseudo-labeled images. at-least-teacher (default): a student whose epochs give
    # fewer optimizer steps or images than its teacher trained gets more epochs, up to the teacher's budget (the
    # released scripts train students 2x (B0-B4) or 1x (B5-B7) the supervised 350 epochs, never fewer).
    # epochs: exactly student_optim.epochs; fewer steps than the teacher is warned about (train.log, summary.json).
    student_budget: str = "at-least-teacher"  # at-least-teacher | epochs
    init_from_teacher: bool = False  # the paper starts each student from scratch
    allow_smaller_student: bool = False


@dataclass
class RuntimeConfig:
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # channels-last weights and inputs (faster convolutions on CPU and GPU)
    sync_bn: bool = True  # under DDP on GPUs, batch statistics across ranks (the paper's cross-replica BN); CPU: n/a
    threads: int | None = None  # torch.set_num_threads on CPU (None: leave torch's default)
    tensorboard: bool = False  # training curves under RUN/tensorboard/ (needs the tensorboard extra)


@dataclass
class TrainConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    teacher: ModelConfig = field(default_factory=ModelConfig)
    students: list[ModelConfig] = field(default_factory=lambda: [ModelConfig()])
    teacher_optim: OptimConfig = field(default_factory=OptimConfig)
    student_optim: OptimConfig = field(default_factory=OptimConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    ns: NSConfig = field(default_factory=NSConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def student_for(self, iteration: int) -> ModelConfig:
        """The student of iteration i >= 1 (the last listed student repeats)."""
        return self.students[min(iteration - 1, len(self.students) - 1)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads YAML 1.2 floats such as 1e-3 and 5E+2 as numbers (YAML 1.1, and so PyYAML,
    wants a dot and a signed exponent, and reads `lr: 1e-3` as the string '1e-3')."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _numeric_string(value: str) -> Any:
    """'1e-3' (a quoted number, or one that reached us as text) -> 0.001; anything else stays as it was."""
    try:
        return float(value.strip().replace("_", "")) if value.strip() else value
    except ValueError:
        return value


CHOICES = {
    ("pseudo", "filter_on"): ("untempered", "tempered"),
    ("noise", "ra_ops"): ("tf", "timm"),
    ("noise", "natural_crop"): ("inception", "center"),
    ("ns", "loss_weighting"): ("ratio", "paper"),
    ("ns", "student_budget"): ("at-least-teacher", "epochs"),
}


def check_choices(cfg: TrainConfig) -> None:
    """One-line NsbenchError for a value outside its key's choices (the Noisy Student keys above)."""
    for (section, key), valid in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in valid:
            raise NsbenchError(f"{section}.{key}: {value!r} is not one of {', '.join(valid)}")
    if not 0.0 <= cfg.pseudo.label_smoothing < 1.0:
        raise NsbenchError(f"pseudo.label_smoothing: {cfg.pseudo.label_smoothing} is outside [0, 1)")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except NsbenchError as e:
                errors.append(str(e))
        raise NsbenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise NsbenchError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise NsbenchError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, item, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise NsbenchError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise NsbenchError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NsbenchError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            value = _numeric_string(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NsbenchError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise NsbenchError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and ill-typed values."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise NsbenchError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(names)}")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}" if where != "config" else k) for k, v in data.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = tree
    for i, k in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, k, keys[: i + 1])]
        else:
            if k not in node or node[k] is None:
                node[k] = {}
            node = node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[_list_index(node, last, keys)] = value
    else:
        node[last] = value


def _list_index(node: list, key: str, path: list[str]) -> int:
    try:
        idx = int(key)
        node[idx]
        return idx
    except (ValueError, IndexError):
        raise NsbenchError(f"override {'.'.join(path)}: no list item {key!r} (list has {len(node)})") from None


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise NsbenchError(f"override {text!r}: expected KEY=VALUE, e.g. ns.iterations=3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=YamlLoader) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader)
    except FileNotFoundError:
        raise NsbenchError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise NsbenchError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NsbenchError(f"{path}: expected a mapping at the top level")
    return data


def build_config(cls: type, base: dict, overrides: list[str] = (), where: str = "config") -> Any:
    """`base` (a recipe's mapping) + dotted `overrides` -> a validated dataclass instance."""
    tree = dataclasses.asdict(cls())
    _deep_update(tree, base)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    return from_dict(cls, tree, where)


def _deep_update(tree: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(tree.get(k), dict) and k != "kwargs":
            _deep_update(tree[k], v)
        else:
            tree[k] = v


def load_train_config(recipe: str | Path | dict, overrides: list[str] = ()) -> TrainConfig:
    base = recipe if isinstance(recipe, dict) else load_yaml(recipe)
    where = "recipe" if isinstance(recipe, dict) else str(recipe)
    try:
        cfg = build_config(TrainConfig, base, overrides)
        validate_train_config(cfg)
    except NsbenchError as e:
        raise NsbenchError(f"{where}: {e}") from None
    return cfg


# ---- range checks: every value is checked when the config loads, before any data is read or model trained ----

def check_range(where: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False, optional: bool = False) -> None:
    """Raise a one-line NsbenchError unless lo <= value <= hi (open ends when asked); None passes if `optional`."""
    if value is None and optional:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise NsbenchError(f"{where}: must be a finite number, got {value!r}")
    ok = (lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or (value < hi if hi_open else value <= hi))
    if not ok:
        left = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        right = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        raise NsbenchError(f"{where}: must be {' and '.join(x for x in (left, right) if x)}, got {value!r}")


def check_choice(where: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise NsbenchError(f"{where}: unknown value {value!r}; valid: {', '.join(map(str, choices))}")


OPTIMIZERS = ("adamw", "sgd", "rmsprop")
PER_CLASS_STATS = ("mean", "median", "max", "min")


def validate_optim(o: OptimConfig, where: str) -> None:
    check_range(f"{where}.epochs", o.epochs, lo=1)
    check_range(f"{where}.batch_size", o.batch_size, lo=1)
    check_choice(f"{where}.optimizer", o.optimizer, OPTIMIZERS)
    check_range(f"{where}.lr", o.lr, lo=0, lo_open=True)
    check_range(f"{where}.weight_decay", o.weight_decay, lo=0)
    check_range(f"{where}.momentum", o.momentum, lo=0, hi=1, hi_open=True)
    check_range(f"{where}.warmup_epochs", o.warmup_epochs, lo=0)
    check_range(f"{where}.label_smoothing", o.label_smoothing, lo=0, hi=1, hi_open=True)
    check_range(f"{where}.ema_decay", o.ema_decay, lo=0, hi=1, hi_open=True)
    check_range(f"{where}.ema_reference_batch", o.ema_reference_batch, lo=0)
    for key in ("ema_warmup", "ema_reference_batch"):
        if getattr(o, key) and o.ema_decay == 0:
            raise NsbenchError(f"{where}.{key}: shapes the EMA, which ema_decay 0 turns off; set ema_decay > 0")
    check_range(f"{where}.grad_clip", o.grad_clip, lo=0)
    check_range(f"{where}.eval_every", o.eval_every, lo=1)


def validate_model(m: ModelConfig, where: str) -> None:
    if not m.arch.strip():
        raise NsbenchError(f"{where}.arch: must name a model, got {m.arch!r}")
    check_range(f"{where}.drop_rate", m.drop_rate, lo=0, hi=1, hi_open=True)
    check_range(f"{where}.drop_path_rate", m.drop_path_rate, lo=0, hi=1, hi_open=True)


def validate_train_config(cfg: TrainConfig) -> None:
    """Range checks of every TrainConfig value; raises a one-line NsbenchError naming the key."""
    from .data.sources import SourceSpec

    d = cfg.data
    for key in ("source", "unlabeled"):
        spec = getattr(d, key)
        if spec is not None:
            try:
                SourceSpec.parse(spec)
            except NsbenchError as e:
                raise NsbenchError(f"data.{key}: {e}") from None
    check_range("data.labels_per_class", d.labels_per_class, lo=1, optional=True)
    check_range("data.unlabeled_limit", d.unlabeled_limit, lo=1, optional=True)
    check_range("data.val_limit", d.val_limit, lo=1, optional=True)
    check_range("data.image_size", d.image_size, lo=1)
    if d.decode not in ("auto", "cpu", "device"):
        raise NsbenchError(f"data.decode: expected auto, cpu or device, got {d.decode!r}")
    if d.num_workers != "auto":
        if isinstance(d.num_workers, bool) or not isinstance(d.num_workers, int):
            raise NsbenchError(f"data.num_workers: expected an integer or auto, got {d.num_workers!r}")
        check_range("data.num_workers", d.num_workers, lo=0)
    validate_model(cfg.teacher, "teacher")
    if not cfg.students:
        raise NsbenchError("students: must list at least one student model")
    for i, m in enumerate(cfg.students):
        validate_model(m, f"students.{i}")
    validate_optim(cfg.teacher_optim, "teacher_optim")
    validate_optim(cfg.student_optim, "student_optim")
    p = cfg.pseudo
    check_range("pseudo.temperature", p.temperature, lo=0, lo_open=True)
    check_range("pseudo.threshold", p.threshold, lo=0, hi=1)
    if isinstance(p.per_class, str):
        check_choice("pseudo.per_class", p.per_class, PER_CLASS_STATS)
    else:
        check_range("pseudo.per_class", p.per_class, lo=1)
    check_range("pseudo.topk", p.topk, lo=1, optional=True)
    check_range("pseudo.batch_size", p.batch_size, lo=1)
    n = cfg.noise
    check_range("noise.ra_layers", n.ra_layers, lo=0)
    check_range("noise.ra_magnitude", n.ra_magnitude, lo=0)
    check_range("noise.ra_magnitude_std", n.ra_magnitude_std, lo=0)
    check_range("noise.random_crop_pad", n.random_crop_pad, lo=0)
    check_range("ns.iterations", cfg.ns.iterations, lo=0)
    check_range("ns.unlabeled_ratio", cfg.ns.unlabeled_ratio, lo=1)
    check_range("ns.unlabeled_loss_weight", cfg.ns.unlabeled_loss_weight, lo=0)
    if not DEVICE.match(cfg.runtime.device):
        raise NsbenchError(f"runtime.device: unknown device {cfg.runtime.device!r}; valid: auto, cpu, cuda, cuda:N, mps")
    check_range("runtime.threads", cfg.runtime.threads, lo=1, optional=True)
