"""What `nsbench eval` scores: an nsbench checkpoint or a timm model name (`timm:NAME`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..checkpoint import load_checkpoint
from ..models import NormalizedModel
from ..utils import NsbenchError


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


def load_eval_model(ref: str, label: str | None = None) -> EvalModel:
    if ref.startswith("timm:"):
        return _timm_model(ref[5:], label)
    path = Path(ref)
    model, meta = load_checkpoint(path)
    return EvalModel(model, label or path.stem, meta["sha256"], meta["classes"], meta["model"]["input_size"], meta, path)


def _timm_model(name: str, label: str | None) -> EvalModel:
    import hashlib

    import timm
    from timm.data import ImageNetInfo, resolve_data_config

    if not timm.is_model(name):
        raise NsbenchError(f"timm:{name}: unknown timm model")
    try:
        net = timm.create_model(name, pretrained=True)
    except Exception as e:  # noqa: BLE001 - hub unreachable, missing weights, ...
        raise NsbenchError(f"timm:{name}: cannot load pretrained weights ({type(e).__name__}); the HF hub must be reachable") from None
    cfg = resolve_data_config({}, model=net)
    wrapped = NormalizedModel(net, cfg["mean"], cfg["std"]).eval()
    classes = list(ImageNetInfo().label_names()) if net.num_classes == 1000 else [str(i) for i in range(net.num_classes)]
    tag = getattr(net, "pretrained_cfg", {}).get("tag", "") if isinstance(getattr(net, "pretrained_cfg", None), dict) else ""
    sha = hashlib.sha256(f"timm:{name}:{tag}:{timm.__version__}".encode()).hexdigest()
    meta = {"model": {"arch": name, "input_size": cfg["input_size"][-1], "mean": list(cfg["mean"]), "std": list(cfg["std"])},
            "role": "timm-pretrained", "iteration": None, "timm_version": timm.__version__}
    return EvalModel(wrapped, label or name, sha, classes, cfg["input_size"][-1], meta)
