"""`nsbench export` (nsbench/timm_export.py): plain timm gives identical logits; a write that fails (a file size
limit, a read-only filesystem) is one line."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import ENV, error_lines, tiny_checkpoint
from nsbench.cli import main


def test_export_to_timm_gives_identical_logits_in_plain_timm(tiny_run, tmp_path):
    import timm

    from nsbench.checkpoint import load_checkpoint

    ckpt = tiny_run / "iter1.pt"
    assert main(["export", str(ckpt), "--to", "timm", "--out", str(tmp_path / "exp")]) == 0
    cfg = json.loads((tmp_path / "exp" / "config.json").read_text())
    ours, meta = load_checkpoint(ckpt)
    x = torch.rand(6, 3, 32, 32)
    mean = torch.tensor(cfg["pretrained_cfg"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["pretrained_cfg"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = ours(x)
        plain = timm.create_model(cfg["architecture"], pretrained=True, **cfg["model_args"],
                                  pretrained_cfg_overlay=dict(file=str(tmp_path / "exp" / "model.safetensors"),
                                                              num_classes=cfg["num_classes"])).eval()
        assert torch.equal(plain((x - mean) / std), want)
        local = timm.create_model(f"local-dir:{tmp_path / 'exp'}", pretrained=True).eval()
        assert torch.equal(local((x - mean) / std), want)
    assert cfg["label_names"] == meta["classes"] and cfg["nsbench"]["iteration"] == 1


# every writer's failure is one line naming the file and the cause (issue 21, probe 7)

@pytest.mark.usefixtures("fresh_log_handlers")
def test_export_under_a_file_size_limit_is_one_line_naming_the_safetensors_file(tmp_path):
    """safetensors' Rust writer fails for real (RLIMIT_FSIZE, as on a full disk) with a SafetensorError."""
    ckpt = tiny_checkpoint(tmp_path / "m.pt", list("abcd"))
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))
        from nsbench.cli import main
        sys.exit(main(["export", {str(ckpt)!r}, "--out", {str(tmp_path / 'exp')!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    (line,) = error_lines(proc.stderr)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert line == f"nsbench: error: {tmp_path / 'exp' / 'model.safetensors'}: cannot write (File too large)", line
    assert [p.name for p in (tmp_path / "exp").iterdir()] == []  # no temporary left


@pytest.mark.usefixtures("fresh_log_handlers")
def test_export_into_a_read_only_filesystem_is_one_line(tmp_path, monkeypatch, capsys):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", list("abcd"))
    real = os.mkdir

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", read_only)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "ro" / "new")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'ro' / 'new'}: cannot create the folder (Read-only file system)", line
