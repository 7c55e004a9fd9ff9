"""Hub weights offline (bench/hub.py; docs/install.md): `timm:NAME` without a network uses weights already in the
HF cache, otherwise fails within seconds honouring HF_HUB_OFFLINE; the probe is a 3 s TCP connect in a thread;
`torchvision:NAME` uses torch's hub cache. No test touches the network: the HF and torch caches are fabricated in
tmp_path and the socket is replaced."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from nsbench.bench import hub
from nsbench.utils import NsbenchError


def fake_hf_cache(monkeypatch, tmp_path, repo: str, fname: str, commit: str = "0123abcd") -> Path:
    """The HF hub cache layout (huggingface_hub's docs, "Understand caching"): models--ORG--NAME/refs/main holds the
    commit, snapshots/COMMIT/FILE the file."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    root = tmp_path / "hf" / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    (root / "snapshots" / commit).mkdir(parents=True)
    return root / "snapshots" / commit / fname


def test_timm_weights_in_the_hf_cache_load_offline_with_their_values(monkeypatch, tmp_path):
    import timm
    from safetensors.torch import save_file

    from nsbench.bench.eval_model import load_eval_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: pytest.fail("probed the network although offline"))
    # timm's pretrained config of test_resnet names the hub repo timm/test_resnet.r160_in1k
    path = fake_hf_cache(monkeypatch, tmp_path, "timm/test_resnet.r160_in1k", "model.safetensors")
    net = timm.create_model("test_resnet")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    save_file(net.state_dict(), str(path))
    assert hub.timm_cached_file("test_resnet") == str(path)
    em = load_eval_model("timm:test_resnet")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(em.model.net(x), net.eval()(x))


def test_timm_cached_file_falls_back_to_pytorch_model_bin(monkeypatch, tmp_path):
    path = fake_hf_cache(monkeypatch, tmp_path, "timm/test_resnet.r160_in1k", "pytorch_model.bin")
    path.write_bytes(b"weights")
    assert hub.timm_cached_file("test_resnet") == str(path)


@pytest.mark.parametrize("value, offline", [("1", True), ("true", True), ("ON", True), ("yes", True),
                                            ("0", False), ("", False), (None, False)])
def test_hf_hub_offline_values(monkeypatch, value, offline):
    """huggingface_hub's truthy values: 1, ON, YES, TRUE in any case; TRANSFORMERS_OFFLINE counts the same."""
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    if value is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline_by_env() is offline
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if value is not None:
        monkeypatch.setenv("TRANSFORMERS_OFFLINE", value)
    assert hub.offline_by_env() is offline


def test_an_unanswering_hub_fails_at_once_naming_the_3_s_probe(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=0 and no answer: the error names the probe (3 s, as the module's docs say), not the variable."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    fake_hf_cache(monkeypatch, tmp_path, "timm/other", "model.safetensors")  # an empty cache for test_resnet
    probes = []
    monkeypatch.setattr(hub, "reachable", lambda url, *a, **k: probes.append(url) or False)
    with pytest.raises(NsbenchError, match=r"^timm:test_resnet: pretrained weights are not in the local HF cache and "
                                           r"the HF hub did not answer within 3 s;"):
        hub.timm_pretrained("test_resnet", 1000)
    assert probes == ["https://huggingface.co"]


class FakeSocket:
    def close(self):
        pass


def test_probe_connects_to_the_urls_port_with_a_3_s_timeout(monkeypatch):
    calls = []
    monkeypatch.setattr(hub.socket, "create_connection", lambda addr, timeout: calls.append((addr, timeout)) or FakeSocket())
    assert hub.reachable("https://huggingface.co/api") is True
    assert hub.reachable("http://mirror.example/x") is True
    assert hub.reachable("http://mirror.example:8080/x", timeout=0.5) is True
    assert calls == [(("huggingface.co", 443), 3.0), (("mirror.example", 80), 3.0), (("mirror.example", 8080), 0.5)]

    def refused(addr, timeout):
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(hub.socket, "create_connection", refused)
    assert hub.reachable("https://huggingface.co") is False


def test_probe_waits_for_a_slow_connect_within_its_timeout_and_no_longer(monkeypatch):
    """A connect that answers inside the timeout counts; a hanging one (a DNS lookup the socket timeout does not
    cover) is given up half a second after the timeout."""
    release = threading.Event()

    def slow(addr, timeout):
        time.sleep(0.2)
        return FakeSocket()

    monkeypatch.setattr(hub.socket, "create_connection", slow)
    assert hub.reachable("https://huggingface.co", timeout=0.3) is True

    def hanging(addr, timeout):
        release.wait(10)
        raise OSError("gave up")

    monkeypatch.setattr(hub.socket, "create_connection", hanging)
    t0 = time.monotonic()
    assert hub.reachable("https://huggingface.co", timeout=0.05) is False
    assert time.monotonic() - t0 < 1.0  # 0.05 + 0.5 s
    release.set()


def test_a_hanging_probe_is_left_in_a_daemon_thread(monkeypatch):
    """The probe that has not answered is still running when reachable() returns: in a daemon thread, which the
    interpreter does not wait for at exit (the child process below shows the exit itself)."""
    release = threading.Event()

    def hanging(addr, timeout):
        release.wait(10)
        raise OSError("gave up")

    monkeypatch.setattr(hub.socket, "create_connection", hanging)
    before = set(threading.enumerate())
    try:
        assert hub.reachable("https://huggingface.co", timeout=0.01) is False
        left = [t for t in threading.enumerate() if t not in before]
        assert len(left) == 1 and left[0].daemon
    finally:
        release.set()


def test_a_hanging_probe_does_not_keep_the_process_alive(tmp_path):
    code = ("import socket, time; from nsbench.bench import hub\n"
            "hub.socket.create_connection = lambda *a, **k: time.sleep(60)\n"
            "print(hub.reachable('https://huggingface.co', timeout=0.01))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False"


# ---- torchvision:NAME: torch's hub cache, else the download when it answers, else one line

def test_torchvision_weights_in_torchs_hub_cache_are_used_without_probing(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    # torchvision's resnet18 DEFAULT weights: https://download.pytorch.org/models/resnet18-f37072fd.pth
    (tmp_path / "torch" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"cached")
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: pytest.fail("probed although the weights are cached"))
    built = []
    assert hub.torchvision_pretrained("resnet18", lambda weights: built.append(weights) or "net") == "net"
    assert built == ["DEFAULT"]


def test_torchvision_weights_missing_download_when_the_host_answers_else_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    probes = []
    monkeypatch.setattr(hub, "reachable", lambda url, *a, **k: probes.append(url) or True)
    assert hub.torchvision_pretrained("resnet18", lambda weights: "net") == "net"
    assert probes == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    monkeypatch.setattr(hub, "reachable", lambda url, *a, **k: False)
    with pytest.raises(NsbenchError) as e:
        hub.torchvision_pretrained("resnet18", lambda weights: pytest.fail("built without weights"))
    assert str(e.value).startswith(f"torchvision:resnet18: pretrained weights are not in torch's hub cache "
                                   f"({tmp_path / 'torch' / 'checkpoints'}) and download.pytorch.org did not answer "
                                   f"within 3 s;")
