"""Hub weights for `timm:NAME` / `torchvision:NAME`, offline-aware and failing fast.

Without a network, huggingface_hub retries for about 50 s before timm reports anything. Here the hub is probed
once (a 3 s TCP connect, in a thread so a hanging DNS lookup cannot stall it) unless HF_HUB_OFFLINE says offline;
without a hub, weights already in the local cache are used, and missing ones fail at once in one line.
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from ..utils import NsbenchError

PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "ON", "YES", "TRUE")


def offline_by_env() -> bool:
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds."""
    u = urlparse(url)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    ok = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def hf_online() -> bool:
    if offline_by_env():
        return False
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


def timm_cached_file(name: str) -> str | None:
    """The local HF cache's copy of timm model `name`'s weights, if any (model.safetensors or pytorch_model.bin)."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return None
    repo, _, revision = repo.partition("@")
    for fname in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(repo, fname, revision=revision or None)
        if isinstance(path, str) and Path(path).is_file():
            return path
    return None


def timm_pretrained(name: str, num_classes: int):
    """timm.create_model(name, pretrained=True): from the hub when it answers, else from the local cache, else a
    one-line error within seconds."""
    import timm

    overlay = None
    if not hf_online():
        cached = timm_cached_file(name)
        if cached is None:
            why = "HF_HUB_OFFLINE is set" if offline_by_env() else "the HF hub did not answer within " \
                                                                    f"{PROBE_TIMEOUT_S:.0f} s"
            raise NsbenchError(f"timm:{name}: pretrained weights are not in the local HF cache and {why}; pass "
                               f"--checkpoint PATH, or run once with the hub reachable")
        overlay = dict(file=cached)
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
    except Exception as e:  # noqa: BLE001 - hub errors, missing weights, ...
        raise NsbenchError(f"timm:{name}: cannot load pretrained weights ({type(e).__name__}); the HF hub must be "
                           f"reachable, or pass --checkpoint PATH") from None


def torchvision_pretrained(name: str, builder):
    """builder(weights="DEFAULT"): torch.hub's cached file when present, else the download when it answers, else a
    one-line error within seconds."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if not cached.is_file() and not reachable(weights.url):
        raise NsbenchError(f"torchvision:{name}: pretrained weights are not in torch's hub cache ({cached.parent}) "
                           f"and {urlparse(weights.url).hostname} did not answer within {PROBE_TIMEOUT_S:.0f} s; pass "
                           f"--checkpoint PATH")
    try:
        return builder(weights="DEFAULT")
    except Exception as e:  # noqa: BLE001 - download failures
        raise NsbenchError(f"torchvision:{name}: cannot load pretrained weights ({type(e).__name__}); the network "
                           f"must be reachable, or pass --checkpoint PATH") from None
