"""Export an nsbench checkpoint so that plain timm loads it: `model.safetensors` + timm's `config.json`.

    timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file="DIR/model.safetensors"), **model_args)
    timm.create_model("local-dir:DIR", pretrained=True)        # timm >= 1.0.16 reads config.json itself

The exported weights are the bare timm network: inputs are normalised by the caller with config.json's mean/std
(nsbench normalises inside its wrapper), so the logits are identical.
"""
from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import read_checkpoint
from .models import ModelSpec, build_model
from .utils import NsbenchError, atomic_path, make_dir, write_text


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
    pretrained_cfg = {
        "input_size": [spec.in_chans, size, size], "mean": list(spec.mean), "std": list(spec.std),
        "crop_pct": 1.0 if size <= 64 else pre.get("crop_pct", 0.875), "crop_mode": "center",
        "interpolation": pre.get("interpolation", "bicubic"), "num_classes": spec.num_classes,
        "classifier": pre.get("classifier"), "first_conv": pre.get("first_conv"),
        "license": "apache-2.0", "tag": "nsbench",
    }
    config = {"architecture": spec.arch, "num_classes": spec.num_classes,
              "num_features": int(getattr(net, "num_features", 0)) or None, "global_pool": pre.get("global_pool"),
              "label_names": list(meta["classes"]), "model_args": model_args, "pretrained_cfg": pretrained_cfg,
              "nsbench": {"iteration": meta.get("iteration"), "parent_sha256": meta.get("parent_sha256"),
                          "metrics": meta.get("metrics"), "source": str(ckpt)}}
    make_dir(out)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(net_state, str(tmp), metadata={"format": "pt"})
    write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    return out
