"""What the harness scores, as an EvalModel: a model taking [0, 1] NCHW images plus what the harness must know
(label, classes, input size, a hash that keys the cache, metadata for meta.json).

Sources: an nsbench checkpoint; `timm:NAME` or `torchvision:NAME`, with the hub's weights or a local state dict
(`.safetensors`, or a torch file read with weights_only=True); any `nn.Module` through the Python API.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_checkpoint, safe_load
from .hub import timm_pretrained, torchvision_pretrained
from ..models import NormalizedModel
from ..runs import model_label
from ..utils import NsbenchError, file_sha256

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class EvalModel:
    model: nn.Module
    label: str
    sha256: str
    classes: list[str]
    input_size: int
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def dataset(self) -> dict | None:
        return self.meta.get("dataset")


def load_eval_model(ref: str, label: str | None = None, *, checkpoint: str | Path | None = None,
                    classes: list[str] | int | None = None, input_size: int | None = None) -> EvalModel:
    """An nsbench checkpoint path, `timm:NAME` or `torchvision:NAME` (hub weights, or `checkpoint=` a local
    state dict); `classes` is a list of names or a count (default: the 1,000 ImageNet classes); `input_size`
    replaces the model's own (a checkpoint's training size, a timm model's pretrained config, torchvision's 224).
    A model given local weights is labelled after the weights' file unless `label` says otherwise."""
    if input_size is not None and input_size <= 0:
        raise NsbenchError(f"input size must be positive, got {input_size}")
    if ref.startswith(("timm:", "torchvision:")):
        kind, name = ref.split(":", 1)
        if label is None and checkpoint is not None:
            label = Path(checkpoint).stem  # two weights of one architecture must not share a label (or a folder)
        em = _timm_model(name, label, checkpoint, classes, input_size) if kind == "timm" else \
            _torchvision_model(name, label, checkpoint, classes)
    else:
        if checkpoint is not None or classes is not None:
            raise NsbenchError(f"{ref}: --checkpoint and --num-classes/--classes apply to timm:NAME and "
                               f"torchvision:NAME only")
        path = Path(ref)
        model, meta = load_checkpoint(path)
        meta["model"]["input_size_from"] = "the checkpoint (its training size)"
        em = EvalModel(model, label or model_label(path), meta["sha256"], meta["classes"],
                       meta["model"]["input_size"], meta, path)
    return with_input_size(em, input_size)


def with_input_size(em: EvalModel, input_size: int | None) -> EvalModel:
    """`em` scored at `input_size` when given (chosen by the user, so taken as given and recorded so); its own size
    is kept as `own_input_size`, which keys its cached cells."""
    if input_size is None:
        return em
    model = em.meta.setdefault("model", {})
    model.setdefault("own_input_size", em.input_size)
    model.update(input_size=int(input_size), input_size_from="given (--input-size / input_size=)")
    em.input_size = int(input_size)
    return em


def from_module(module: nn.Module, *, classes: list[str] | int, input_size: int, mean=None, std=None,
                label: str | None = None, meta: dict | None = None) -> EvalModel:
    """Wrap any nn.Module. Give `mean` and `std` when it expects normalised inputs (they are applied inside);
    leave both None when it takes [0, 1] images itself."""
    if (mean is None) != (std is None):
        raise NsbenchError("give both mean and std (the model normalises inputs) or neither (it takes [0, 1] images)")
    names = _class_names(classes)
    net = NormalizedModel(module, mean, std) if mean is not None else module
    h = hashlib.sha256(type(module).__qualname__.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update("\n".join(names).encode())
    inputs = "normalised inside by the given mean/std" if mean is not None else "model takes [0, 1] images"
    info = {"model": {"arch": type(module).__name__, "input_size": int(input_size),
                      "input_size_from": "given (input_size=)",
                      "mean": None if mean is None else list(mean), "std": None if std is None else list(std)},
            "role": "module", "iteration": None, "inputs": inputs,
            "n_params": sum(p.numel() for p in module.parameters()), **_classes_from(classes), **(meta or {})}
    return EvalModel(net.eval(), label or type(module).__name__.lower(), h.hexdigest(), names, int(input_size), info)


def read_class_file(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise NsbenchError(f"{path}: cannot read the class list ({type(e).__name__})") from None
    if not names:
        raise NsbenchError(f"{path}: the class list is empty (one class name per line)")
    if len(set(names)) != len(names):
        raise NsbenchError(f"{path}: the class list repeats a name")
    return names


def _classes_from(classes: list[str] | int | None) -> dict:
    """Recorded so that the harness knows a bare count (`--num-classes N`): such a model's outputs are matched to
    the dataset's own classes in their order (torchvision ImageFolder's: sorted folder names), not by name."""
    return {"classes_from": "count"} if isinstance(classes, int) and classes != 1000 else {}


def _class_names(classes: list[str] | int | None) -> list[str]:
    if classes is None or classes == 1000:
        from timm.data import ImageNetInfo

        return list(ImageNetInfo().label_names())
    if isinstance(classes, int):
        if classes < 1:
            raise NsbenchError(f"number of classes must be >= 1, got {classes}")
        return [str(i) for i in range(classes)]
    return [str(c) for c in classes]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from `.safetensors` or a torch file (weights_only=True), unwrapped from the usual
    containers ({'state_dict': ...}, {'model': ...}) and DataParallel's `module.` prefix."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise NsbenchError(f"{path}: file not found")
        try:
            sd = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - header / size errors of any kind
            raise NsbenchError(f"{path}: not a readable safetensors file ({type(e).__name__})") from None
    else:
        sd = safe_load(path)
        if isinstance(sd, dict) and sd.get("format") == "nsbench-checkpoint":
            raise NsbenchError(f"{path}: an nsbench checkpoint; pass it as the model itself, not as --checkpoint")
        for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
            if isinstance(sd, dict) and isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise NsbenchError(f"{path}: not a state dict of tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _load_weights(net: nn.Module, path: str | Path, ref: str) -> None:
    sd = read_state_dict(path)
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        hint = " (is --num-classes right?)" if "size mismatch" in str(e) else ""
        raise NsbenchError(f"{path}: weights do not fit {ref}{hint}: {str(e).splitlines()[1].strip()[:200]}") from None


def _timm_model(name: str, label, checkpoint, classes, input_size: int | None = None) -> EvalModel:
    """A timm model at its pretrained config's input size; a config that is not square (timm has some, e.g.
    3x1024x768) is refused unless `input_size` gives the one side nsbench scores at."""
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(name):
        raise NsbenchError(f"timm:{name}: unknown timm model")
    names = _class_names(classes)
    if checkpoint is None:
        net = timm_pretrained(name, len(names))
        tag = (getattr(net, "pretrained_cfg", None) or {}).get("tag", "")
        sha = hashlib.sha256(f"timm:{name}:{tag}:{timm.__version__}".encode()).hexdigest()
    else:
        net = timm.create_model(name, pretrained=False, num_classes=len(names))
        _load_weights(net, checkpoint, f"timm:{name}")
        sha = file_sha256(checkpoint)
    cfg = resolve_data_config({}, model=net)
    _, h, w = cfg["input_size"]
    if h != w and input_size is None:
        raise NsbenchError(f"timm:{name}: its pretrained config's input size is {h}x{w}, not square; nsbench scores "
                           f"square images: give the side with --input-size")
    em = _wrapped(net, f"timm:{name}", label or name, sha, names, int(w) if h == w else input_size, cfg["mean"], cfg["std"],
                  checkpoint, crop_pct=cfg.get("crop_pct"), interpolation=cfg.get("interpolation"))
    em.meta["model"]["input_size_from"] = "the timm model's pretrained config"
    em.meta.update(_classes_from(classes))
    return em


def _torchvision_model(name: str, label, checkpoint, classes) -> EvalModel:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise NsbenchError(f"torchvision:{name}: unknown torchvision model") from None
    names = _class_names(classes)
    if checkpoint is None:
        if len(names) != 1000:
            raise NsbenchError(f"torchvision:{name}: hub weights predict 1,000 classes; pass --checkpoint for {len(names)}")
        net = torchvision_pretrained(name, builder)
        sha = hashlib.sha256(f"torchvision:{name}:DEFAULT:{torchvision.__version__}".encode()).hexdigest()
    else:
        net = builder(weights=None, num_classes=len(names))
        _load_weights(net, checkpoint, f"torchvision:{name}")
        sha = file_sha256(checkpoint)
    # torchvision's ImageNet models: Resize(256) + CenterCrop(224), bilinear, ImageNet mean/std
    em = _wrapped(net, f"torchvision:{name}", label or name, sha, names, 224, IMAGENET_MEAN, IMAGENET_STD, checkpoint,
                  crop_pct=0.875, interpolation="bilinear")
    em.meta["model"]["input_size_from"] = "torchvision's ImageNet default (224)"
    em.meta.update(_classes_from(classes))
    return em


def _wrapped(net, ref, label, sha, names, size, mean, std, checkpoint, **pre) -> EvalModel:
    meta = {"model": {"arch": ref, "input_size": size, "mean": list(mean), "std": list(std), **pre},
            "role": "pretrained" if checkpoint is None else "state-dict", "iteration": None,
            "weights": str(checkpoint) if checkpoint else "hub", "n_params": sum(p.numel() for p in net.parameters())}
    return EvalModel(NormalizedModel(net, mean, std).eval(), label, sha, names, size, meta,
                     Path(checkpoint) if checkpoint else None)
