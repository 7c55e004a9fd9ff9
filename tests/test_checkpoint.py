"""Checkpoints (nsbench/checkpoint.py): a round trip gives identical logits; crafted pickles, foreign files and broken
metadata are refused in one line; a failing write names the file."""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import ENV
from nsbench.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from nsbench.models import ModelSpec, build_model
from nsbench.utils import NsbenchError, file_sha256


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    spec = ModelSpec("test_efficientnet", num_classes=5, drop_rate=0.2, kwargs={"channel_multiplier": 1.25})
    model = build_model(spec).eval()
    x = torch.rand(4, 3, 32, 32)
    sha = save_checkpoint(tmp_path / "m.pt", model, spec, classes=list("abcde"), iteration=2, parent_sha256="ab" * 32,
                          config={"seed": 1}, metrics={"val_top1": 50.0})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(model(x), loaded(x))
    assert meta["sha256"] == sha == file_sha256(tmp_path / "m.pt")
    assert meta["iteration"] == 2 and meta["parent_sha256"] == "ab" * 32 and meta["classes"] == list("abcde")
    assert meta["model"]["kwargs"] == {"channel_multiplier": 1.25} and "torch" in meta["versions"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    for name, write in [("zip.pt", lambda p: torch.save({"state_dict": _Payload(marker)}, p)),
                        ("raw.pkl", lambda p: p.write_bytes(pickle.dumps(_Payload(marker))))]:
        path = tmp_path / name
        write(path)
        assert not marker.exists()
        with pytest.raises(NsbenchError) as e:
            load_checkpoint(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert not marker.exists(), "loading executed the pickled payload"


def test_non_checkpoint_files_get_one_line_errors(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    for name, msg in [("text.pt", "not an nsbench checkpoint"), ("plain.pt", "no 'nsbench-checkpoint' tag"),
                      ("missing.pt", "file not found")]:
        with pytest.raises(NsbenchError, match=msg):
            read_checkpoint(tmp_path / name)


def test_a_failing_torch_write_is_one_line_naming_the_file(tmp_path):
    """A real failing write: the child may write at most 64 KiB per file (RLIMIT_FSIZE), so torch.save of a
    checkpoint fails inside torch's own C++ writer, which reports neither the file nor the cause (as on a full
    disk)."""
    code = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        from nsbench.checkpoint import save_checkpoint
        from nsbench.models import ModelSpec, build_model
        from nsbench.utils import NsbenchError
        spec = ModelSpec("test_resnet", num_classes=4)
        try:
            save_checkpoint({str(tmp_path / 'iter0.pt')!r}, build_model(spec), spec, classes=list("abcd"), iteration=0,
                            parent_sha256=None, config=None, metrics=None)
        except NsbenchError as e:
            print(e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'iter0.pt'))}: cannot write \(the file size limit .*\)\n",
                        proc.stdout), proc.stdout
    assert list(tmp_path.iterdir()) == []


def _tagged(path: Path, meta, state=None) -> Path:
    torch.save({"format": "nsbench-checkpoint", "format_version": 1, "meta": json.dumps(meta),
                "state_dict": {"w": torch.zeros(2)} if state is None else state}, path)
    return path


@pytest.mark.parametrize("meta,state,expect", [
    ([1, 2], None, r"metadata is corrupt \(a list"),
    ({"classes": ["a"]}, None, r"no 'model' mapping"),
    ({"model": {"arch": "test_resnet", "num_classes": 2, "input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]},
      "classes": ["a"]}, None, r"1 class names for model.num_classes=2"),
    ({"model": {"arch": "test_resnet", "num_classes": "two", "input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]},
      "classes": ["a", "b"]}, None, r"model.num_classes: expected int"),
    ({"model": {"arch": "test_resnet", "num_classes": 2, "input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]},
      "classes": ["a", "b"]}, {"w": "not a tensor"}, r"state_dict is not a mapping of tensors"),
    ({"model": {"arch": "test_resnet", "num_classes": 2, "input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1],
                "bogus": 1}, "classes": ["a", "b"]}, None, r"metadata is corrupt \(model: TypeError"),
])
def test_tagged_checkpoints_with_broken_metadata_fail_in_one_line(tmp_path, meta, state, expect):
    path = _tagged(tmp_path / "bad.pt", meta, state)
    with pytest.raises(NsbenchError, match=expect) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


# hostile pickles name what was blocked (issue 13, probe 12)

class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_refusal_names_the_blocked_global(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "nsbench-checkpoint", "payload": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(NsbenchError, match=r"refused to load.*GLOBAL posix\.system") as e:
        read_checkpoint(tmp_path / "evil.pt")
    assert "\n" not in str(e.value) and not marker.exists()


@pytest.mark.usefixtures("fresh_log_handlers")
def test_torch_iostream_error_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """At one free-space level torch's writer fails with libstdc++'s bare `basic_ios::clear: iostream error`."""
    from nsbench.utils import atomic_path

    def full(obj, f, *a, **k):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(NsbenchError, match=r"^.*iter0\.pt: cannot write \((No space left on device|the write was cut "
                                           r"short: disk full or quota exceeded\? \(basic_ios::clear: iostream error\))\)$"):
        with atomic_path(tmp_path / "iter0.pt") as tmp:
            torch.save({"a": 1}, tmp)
    assert list(tmp_path.iterdir()) == []


# ---- issue 31: what a round trip keeps, what a refusal names, and the first line of a build failure


def test_round_trip_keeps_the_config_and_writes_an_empty_one_for_none(tmp_path):
    spec = ModelSpec("test_resnet", num_classes=2)
    model = build_model(spec)
    save_checkpoint(tmp_path / "a.pt", model, spec, classes=["a", "b"], iteration=0, parent_sha256=None,
                    config={"data": {"source": "folder:x"}, "seed": 3}, metrics=None)
    save_checkpoint(tmp_path / "b.pt", model, spec, classes=["a", "b"], iteration=0, parent_sha256=None,
                    config=None, metrics=None)
    assert read_checkpoint(tmp_path / "a.pt")[0]["config"] == {"data": {"source": "folder:x"}, "seed": 3}
    assert read_checkpoint(tmp_path / "b.pt")[0]["config"] == {}


_MODEL = {"arch": "test_resnet", "num_classes": 2, "input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]}


@pytest.mark.parametrize("classes", [[0, 1], "ab"], ids=["ints", "string"])
def test_class_names_that_are_not_a_list_of_strings_are_refused(tmp_path, classes):
    path = _tagged(tmp_path / "bad.pt", {"model": _MODEL, "classes": classes})
    with pytest.raises(NsbenchError, match=r"classes: expected a list of names"):
        read_checkpoint(path)


def _torch_refusal(path: Path) -> list[str]:
    """The non-empty lines of torch's own weights_only refusal of `path`."""
    with pytest.raises(pickle.UnpicklingError) as e:
        torch.load(path, map_location="cpu", weights_only=True)
    return [ln.strip() for ln in str(e.value).splitlines() if ln.strip()]


def test_a_long_blocked_global_is_named_in_its_first_300_characters(tmp_path):
    path = tmp_path / "global.pkl"
    path.write_bytes(b"\x80\x02cmymodule\n" + b"Klass" * 60 + b"\n.")  # GLOBAL mymodule.KlassKlass...: not allowed
    (line,) = [ln for ln in _torch_refusal(path) if "GLOBAL mymodule.Klass" in ln]
    assert len(line) > 301
    with pytest.raises(NsbenchError) as e:
        read_checkpoint(path)
    assert str(e.value) == f"{path}: refused to load: it holds objects beyond weights ({line[:300]})"


def test_a_refusal_without_a_global_names_torchs_reason_not_its_advice(tmp_path):
    """A SETITEM on a list: torch's message is its advice (lines naming weights_only / torch.load) around one line of
    reason; that line is what the error names."""
    path = tmp_path / "setitem.pkl"
    path.write_bytes(b"\x80\x02]K\x00K\x01s.")  # [] then list[0] = 1
    reason = "Can only SETITEM for dict, collections.OrderedDict, collections.Counter, but got <class 'list'>"
    assert reason in _torch_refusal(path)
    with pytest.raises(NsbenchError) as e:
        read_checkpoint(path)
    assert str(e.value) == f"{path}: refused to load: it holds objects beyond weights ({reason})"


def test_a_refusal_whose_every_line_is_advice_names_its_first_line(tmp_path):
    """REDUCE on the string "torch.load": torch's reason names torch.load too, so every line reads as advice; the
    error then names the first, cut at 300 characters."""
    path = tmp_path / "reduce.pkl"
    path.write_bytes(b"\x80\x02X" + len(b"torch.load").to_bytes(4, "little") + b"torch.load)R.")
    lines = _torch_refusal(path)
    assert all("weights_only" in ln or "torch.load" in ln for ln in lines) and len(lines[0]) > 301
    with pytest.raises(NsbenchError) as e:
        read_checkpoint(path)
    assert str(e.value) == f"{path}: refused to load: it holds objects beyond weights ({lines[0][:300]})"


def test_a_model_that_cannot_be_built_is_named_by_the_first_160_characters_of_why(tmp_path):
    pool = "z" * 200
    path = _tagged(tmp_path / "pool.pt", {"model": {**_MODEL, "kwargs": {"global_pool": pool}}, "classes": ["a", "b"]})
    with pytest.raises(NsbenchError) as e:
        load_checkpoint(path)
    why = f"Invalid pool type: {pool}"  # timm's one-line refusal (layers/adaptive_avgmax_pool.py)
    assert str(e.value) == f"{path}: checkpoint metadata describes a model that cannot be built ({why[:160]})"
