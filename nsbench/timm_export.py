"""Export an nsbench checkpoint so that plain timm loads it: `model.safetensors` + timm's `config.json`.

    timm.create_model("local-dir:DIR", pretrained=True)        # timm >= 1.0.16 reads config.json itself
    timm.create_model(cfg["architecture"], pretrained=True, **cfg["model_args"],
                      pretrained_cfg_overlay=dict(file="DIR/model.safetensors", **cfg["pretrained_cfg"]))

(the overlay must carry num_classes: timm drops a classifier whose size differs from the config's). The exported
weights are the bare timm network: inputs are normalised by the caller with config.json's mean/std (nsbench
normalises inside its wrapper), so the logits are identical.

Preprocessing: config.json's `nsbench.preprocessing` says what nsbench did to the dataset's images, and the
pretrained_cfg is chosen so that timm's own `create_transform(**resolve_data_config(model=m))` does the same.
Small images (Fashion-MNIST's 28 px for a 32 px model) are zero-padded by nsbench; timm's eval transform is
Resize(floor(size / crop_pct)) + CenterCrop(size), and torchvision's CenterCrop zero-pads an image smaller than the
crop (torchvision.transforms.functional.center_crop), while Resize to an image's own size returns it unchanged. So
crop_pct = size / (side + 0.5) makes timm resize 28 px images to 28 (a no-op) and pad them to 32, as nsbench does
(the 0.5 keeps floor() off the float rounding of size / (size / side)).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .checkpoint import read_checkpoint
from .models import ModelSpec, build_model
from .utils import NsbenchError, atomic_path, make_dir, write_text

log = logging.getLogger(__name__)


def export_timm(ckpt: str | Path, out: str | Path) -> Path:
    """Write out/model.safetensors and out/config.json for checkpoint `ckpt`; return `out`."""
    from safetensors.torch import save_file

    meta, state = read_checkpoint(ckpt)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: exists and is not a folder")
    spec = ModelSpec.from_dict(meta["model"])
    net_state = {k[len("net."):]: v.contiguous() for k, v in state.items() if k.startswith("net.")}
    if not net_state:
        raise NsbenchError(f"{ckpt}: no network weights in the checkpoint")
    net = build_model(spec).net
    missing = set(net.state_dict()) ^ set(net_state)
    if missing:
        raise NsbenchError(f"{ckpt}: weights do not match {spec.arch} (e.g. {sorted(missing)[0]})")
    pre = dict(net.pretrained_cfg) if isinstance(getattr(net, "pretrained_cfg", None), dict) else {}
    size = spec.input_size
    model_args = {"in_chans": spec.in_chans, **spec.kwargs}
    preprocessing = _preprocessing(meta, size)
    pretrained_cfg = {
        "input_size": [spec.in_chans, size, size], "mean": list(spec.mean), "std": list(spec.std),
        "crop_pct": preprocessing.pop("_crop_pct", None) or (1.0 if size <= 64 else pre.get("crop_pct", 0.875)),
        "crop_mode": "center",
        "interpolation": pre.get("interpolation", "bicubic"), "num_classes": spec.num_classes,
        "classifier": pre.get("classifier"), "first_conv": pre.get("first_conv"),
        "license": "apache-2.0", "tag": "nsbench",
    }
    config = {"architecture": spec.arch, "num_classes": spec.num_classes,
              "num_features": int(getattr(net, "num_features", 0)) or None, "global_pool": pre.get("global_pool"),
              "label_names": list(meta["classes"]), "model_args": model_args, "pretrained_cfg": pretrained_cfg,
              "nsbench": {"iteration": meta.get("iteration"), "parent_sha256": meta.get("parent_sha256"),
                          "metrics": meta.get("metrics"), "source": str(ckpt), "preprocessing": preprocessing}}
    make_dir(out)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(net_state, str(tmp), metadata={"format": "pt"})
    write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out


def _preprocessing(meta: dict, size: int) -> dict:
    """What nsbench does to the training data's images at `size` (from a few of its validation images), and the
    timm crop_pct that reproduces it (key `_crop_pct`, taken out by the caller)."""
    from .data import open_source
    from .data.sources import image_sizes
    from .data.transforms import SMALL_IMAGE_MAX

    ds = meta.get("dataset") or {}
    data = (meta.get("config") or {}).get("data", {})
    out = {"image_size": size, "inputs": "RGB (grey repeated), float [0, 1], normalised with mean/std",
           "source": ds.get("source"), "timm_transform": "timm.data.create_transform(**timm.data.resolve_data_config("
           "model=m)) on RGB PIL images"}
    try:
        src = open_source(ds["source"], ds.get("val_split") or "test", data.get("image_column", "image"),
                          data.get("label_column", "label"))
        sizes = image_sizes(src)
    except Exception as e:  # noqa: BLE001 - data not on this machine: say so, export anyway
        log.warning("export: cannot read the training data (%s) to record its image size; config.json gives "
                    "timm's default resize for it", str(e).splitlines()[0] if str(e) else type(e).__name__)
        return {**out, "source_image_size": None, "resize": "unknown (the data was not readable at export)"}
    if not sizes:
        return {**out, "source_image_size": None, "resize": "unknown (no readable image)"}
    h, w = sizes[len(sizes) // 2]
    out["source_image_size"] = [h, w]
    if h == w and h < size <= SMALL_IMAGE_MAX and all(s == (h, w) for s in sizes):
        top, bottom = (size - h) // 2, size - h - (size - h) // 2
        return {**out, "resize": f"zero-padded {h} -> {size} ({top} px before, {bottom} after, each axis)",
                "_crop_pct": size / (h + 0.5)}
    if h == w == size:
        return {**out, "resize": "none (images are already the input size)"}
    return {**out, "resize": "resize shorter side to floor(size / crop_pct), centre crop"}
