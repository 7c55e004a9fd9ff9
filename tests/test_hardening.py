"""Probes for issue 13's fault classes: each test reproduces one fault (a kill point, a full disk, a crafted file, a
bad value) and asserts the hardened behaviour. Numbered as in the issue; 5 and 6 (cache, results) live elsewhere."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import make_image, tiny_recipe
from nsbench.checkpoint import load_checkpoint, read_checkpoint, safe_load
from nsbench.cli import main
from nsbench.config import OptimConfig, RuntimeConfig, load_train_config
from nsbench.data import fashion_mnist
from nsbench.data.loaders import ImageDataset
from nsbench.data.sources import ArraySource, open_source
from nsbench.models import ModelSpec, build_model
from nsbench.training import driver
from nsbench.training.stage import StageConfig, train_stage
from nsbench.utils import NsbenchError, file_sha256, write_json

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


class Killed(BaseException):
    """Stands for a kill -9 at a chosen point: nothing after it runs, no handler catches it."""


def _teacher_only(tiny_folder, **extra) -> dict:
    return tiny_recipe(f"folder:{tiny_folder}", iterations=0, teacher_optim={"epochs": 1}, **extra)


def _killed_pid_temp(folder: Path) -> Path:
    """A child process starts an atomic write into `folder` and is SIGKILLed mid-write; return the temp it left."""
    code = textwrap.dedent(f"""
        import os, signal
        from nsbench.utils import atomic_path
        with atomic_path({str(folder / 'big.bin')!r}) as tmp:
            tmp.write_bytes(b"x" * 100000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    (left,) = [p for p in folder.iterdir() if p.name.startswith(".big.bin")]
    return left


def _dead_lock(folder: Path) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".nsbench.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "what": "killed"}))


# ---- 1 + 11: a kill between iterK.pt and summary.json; temp files of killed writers -------------------------

def test_resume_reconciles_a_checkpoint_written_but_not_recorded(tiny_folder, tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_teacher_only(tiny_folder)))
    out = tmp_path / "run"
    real = driver.write_json

    def kill_at_summary(path, obj):
        if Path(path).name == "summary.json":
            raise Killed()
        real(path, obj)

    monkeypatch.setattr(driver, "write_json", kill_at_summary)
    with pytest.raises(Killed):
        main(["train", "--recipe", str(recipe), "--out", str(out)])
    monkeypatch.setattr(driver, "write_json", real)
    assert (out / "iter0.pt").exists() and not (out / "summary.json").exists()
    _dead_lock(out)  # what a kill -9 leaves: a lock naming a dead process
    sha = file_sha256(out / "iter0.pt")
    stale = _killed_pid_temp(out / "iter0")
    live = out / f".keep.tmp-{os.getpid()}-abc"
    live.write_bytes(b"a write in progress")

    assert main(["train", "--resume", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["iterations"]
    assert entry["iteration"] == 0 and entry["sha256"] == sha == file_sha256(out / "iter0.pt")  # not retrained
    assert entry["val_top1"] == load_checkpoint(out / "iter0.pt")[1]["metrics"]["val_top1"]
    assert not (out / "iter0" / "state.pt").exists()
    assert list(pd.read_csv(out / "history.csv").iteration) == [0]
    assert not stale.exists() and live.exists()  # 11: only temporaries of dead writers are removed


def test_resume_retrains_an_unrecorded_checkpoint_that_is_damaged(tiny_folder, tmp_path):
    cfg = load_train_config(_teacher_only(tiny_folder))
    out = tmp_path / "run"
    driver.train(cfg, out)
    (out / "summary.json").unlink()
    data = (out / "iter0.pt").read_bytes()
    (out / "iter0.pt").write_bytes(data[: len(data) // 2])
    summary = driver.train(cfg, out, resume=True)
    assert [e["iteration"] for e in summary["iterations"]] == [0]
    assert (out / "iter0.pt.damaged").exists()
    read_checkpoint(out / "iter0.pt")  # a whole checkpoint again


def test_temporaries_of_killed_writers_are_recognised_and_only_theirs_removed(tmp_path):
    from nsbench.utils import clean_stale_temps

    stale = _killed_pid_temp(tmp_path)
    assert re.fullmatch(r"\.big\.bin\.tmp-\d+-\w+", stale.name) and stale.stat().st_size == 100000
    live = tmp_path / f".other.tmp-{os.getpid()}-abc"
    live.write_bytes(b"a write in progress")
    assert clean_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


# ---- 2: 16-bit images --------------------------------------------------------------------------------------

def _grey16(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (32, 32)).astype(np.uint16)


def test_16_bit_pngs_scale_to_uint8_in_every_source(tmp_path):
    from PIL import Image

    import pyarrow as pa
    import pyarrow.parquet as pq

    imgs = [_grey16(i) for i in range(4)]
    expect = [np.round(a / 257.0) for a in imgs]
    for c in range(2):
        d = tmp_path / "folder" / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(imgs[2 * c + i]).save(d / f"{i}.png")
    assert Image.open(d / "0.png").mode.startswith("I")
    folder = open_source(f"folder:{tmp_path / 'folder'}", "train")
    for i in range(4):
        got = folder.load(i)
        assert got.dtype == np.uint8 and got.shape == (32, 32, 3)
        assert np.abs(got[..., 0].astype(float) - expect[i]).max() <= 1

    blobs = []
    for a in imgs:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": blobs, "label": [0, 0, 1, 1]}), tmp_path / "pq" / "part-0.parquet")
    parquet = open_source(f"parquet:{tmp_path / 'pq'}", "train")
    assert np.abs(parquet.load(3).astype(float) - expect[3]).max() <= 1

    arr = ArraySource("u16", np.stack(imgs), np.zeros(4), ["a"])
    assert arr.images.dtype == np.uint8 and np.abs(arr.load(1)[..., 0].astype(float) - expect[1]).max() <= 1


# ---- 3: a checkpoint scored on a dataset with other classes --------------------------------------------------

def test_sources_with_other_classes_than_the_model_are_refused(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    monkeypatch.setattr(fashion_mnist, "load_split", lambda split: (rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
                                                                    np.arange(20) % 10))
    four = ["class0", "class1", "class2", "class3"]
    with pytest.raises(NsbenchError, match=r"10 classes \(T-shirt.*model's 4 classes \(class0"):
        open_source("fashion-mnist", "test", classes=four)
    assert open_source("fashion-mnist", "test", classes=list(fashion_mnist.CLASSES)).classes == list(fashion_mnist.CLASSES)

    buf = io.BytesIO()
    Image.fromarray(make_image(0, rng)).save(buf, format="PNG")
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": [buf.getvalue()] * 10, "label": list(range(10))}), tmp_path / "pq" / "a.parquet")
    with pytest.raises(NsbenchError, match=r"labels go up to 9 \(10 classes\) but the model has 4 classes"):
        open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=four)

    import datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y", "z", "w"])})
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(make_image(0, rng))] * 4, "label": [0, 1, 2, 3]},
                                    features=feats)
    ds.save_to_disk(tmp_path / "hf")
    with pytest.raises(NsbenchError, match=r"4 classes \(x, y, z, w\) differ from the model's 4 classes \(class0"):
        open_source(f"hf:{tmp_path / 'hf'}", "train", classes=four)
    assert open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["x", "y", "z", "w"]).classes == ["x", "y", "z", "w"]


# ---- 4: NaN loss ------------------------------------------------------------------------------------------------

def test_training_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_state(tmp_path):
    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2, ["a", "b"])
    model = build_model(ModelSpec("test_resnet", num_classes=2))
    calls = []

    def poison(module, args, output):  # finite for the first epoch (2 steps), NaN from the second epoch on
        calls.append(1)
        return output * float("nan") if len(calls) > 2 else output

    model.register_forward_hook(poison)
    state = tmp_path / "state.pt"
    with pytest.raises(NsbenchError, match=r"^it0 epoch 2/3 step 1/2: the training loss is nan \(not finite\).*"
                                           r"after epoch 1\) stays in .*state\.pt"):
        train_stage(model, StageConfig(name="it0", optim=OptimConfig(epochs=3, batch_size=8, warmup_epochs=0),
                    runtime=RuntimeConfig(device="cpu", channels_last=False), labeled=ImageDataset(src, np.arange(16), 32),
                    pseudo=None, ratio=0, unlabeled_weight=1.0, val=None, device=torch.device("cpu"),
                    state_path=state, seed=0))
    st = safe_load(state)
    assert st["epoch"] == 0 and all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN never reached the weights


# ---- 7: two runs into one folder ---------------------------------------------------------------------------------

def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    from nsbench.lock import LOCK_NAME, run_lock

    with run_lock(tmp_path, what="first"):
        with pytest.raises(NsbenchError, match=rf"in use by first \(pid {os.getpid()} on "):
            with run_lock(tmp_path, what="second"):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    _dead_lock(tmp_path)
    with run_lock(tmp_path, what="after a kill") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_second_train_into_one_out_is_refused_in_one_line(tiny_folder, tmp_path, capsys):
    from nsbench.lock import run_lock

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_teacher_only(tiny_folder)))
    with run_lock(tmp_path / "run", what="nsbench train (train)"):
        assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use by nsbench train (train) (pid" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


# ---- 8: 1e-3 ------------------------------------------------------------------------------------------------------

def test_exponent_floats_are_numbers_on_the_cli_and_in_recipes(tmp_path):
    assert load_train_config({}, ["teacher_optim.lr=1e-3"]).teacher_optim.lr == 1e-3
    recipe = tmp_path / "r.yaml"
    recipe.write_text("student_optim:\n  lr: 5E-4\n  weight_decay: 1e-5\n")
    cfg = load_train_config(recipe)
    assert cfg.student_optim.lr == 5e-4 and cfg.student_optim.weight_decay == 1e-5
    assert load_train_config({"teacher_optim": {"lr": "2e-3"}}).teacher_optim.lr == 2e-3


# ---- 9: range checks when the config loads -----------------------------------------------------------------------

@pytest.mark.parametrize("override,key", [
    ("teacher_optim.batch_size=0", "teacher_optim.batch_size"), ("student_optim.batch_size=-4", "student_optim.batch_size"),
    ("teacher_optim.epochs=0", "teacher_optim.epochs"), ("ns.unlabeled_ratio=0", "ns.unlabeled_ratio"),
    ("teacher_optim.lr=-0.1", "teacher_optim.lr"), ("student_optim.optimizer=lamb", "student_optim.optimizer"),
    ("data.image_size=0", "data.image_size"), ("students=[]", "students"), ("teacher.drop_rate=2", "teacher.drop_rate"),
    ("runtime.device=tpu", "runtime.device"), ("pseudo.threshold=1.5", "pseudo.threshold"),
    ("pseudo.threshold=-1", "pseudo.threshold"), ("pseudo.temperature=0", "pseudo.temperature"),
    ("pseudo.per_class=0", "pseudo.per_class"), ("pseudo.per_class=avg", "pseudo.per_class"),
    ("data.labels_per_class=0", "data.labels_per_class"), ("ns.iterations=-1", "ns.iterations"),
])
def test_bad_train_values_are_refused_when_the_config_loads(override, key):
    with pytest.raises(NsbenchError, match=rf"^recipe: {re.escape(key)}: "):
        load_train_config({}, [override])


@pytest.mark.parametrize("override,key", [
    ("perturbations.perturbations=[blur]", "perturbations.perturbations"), ("fgsm.pgd_steps=0", "fgsm.pgd_steps"),
    ("batch_size=0", "batch_size"), ("clean.limit=0", "clean.limit"), ("corruptions.limit=-1", "corruptions.limit"),
    ("fgsm.eps_255=[300]", "fgsm.eps_255"), ("fgsm.pgd_alpha_255=0", "fgsm.pgd_alpha_255"),
    ("natural_adversarial.ref_epochs=0", "natural_adversarial.ref_epochs"),
    ("perturbations.calibration=cifar-10-c", "perturbations.calibration"),
])
def test_bad_suite_values_are_refused_when_the_suite_loads(override, key):
    from nsbench.bench.suite import load_suite

    with pytest.raises(NsbenchError, match=rf"quick.yaml: {re.escape(key)}: "):
        load_suite(ROOT / "suites" / "quick.yaml", [override])


# ---- 10: one line instead of a traceback -------------------------------------------------------------------------

def test_disk_full_at_the_rename_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(NsbenchError, match=r"summary\.json: cannot write \(No space left on device\)$"):
        write_json(tmp_path / "summary.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # no temporary left behind


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


def test_out_pointing_at_a_file_is_one_line(tiny_folder, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_teacher_only(tiny_folder)))
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nsbench: error: --out {tmp_path / 'afile'}: exists and is not a folder"


# ---- 12: hostile pickles name what was blocked -------------------------------------------------------------------

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


# ---- 13: dependencies ---------------------------------------------------------------------------------------------

def test_dependencies_pin_no_vulnerable_requests_and_one_opencv():
    tomllib = pytest.importorskip("tomllib")

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=~!\[ ]", d)[0].lower() for d in deps]
    assert "torchattacks" not in names
    assert sum(n in ("opencv-python", "opencv-python-headless") for n in names) == 1


def _torchattacks():
    try:
        import torchattacks
    except ImportError:
        ref = Path(sys.prefix) / "reference-libs"  # where the Makefile puts it, outside the environment's packages
        if not (ref / "torchattacks").is_dir():
            pytest.skip("torchattacks (the reference implementation) is not installed")
        sys.path.append(str(ref))
        import torchattacks
    return torchattacks


def test_attacks_need_no_torchattacks(monkeypatch):
    from nsbench.bench.attacks import adversarial

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # any import of it now fails
    model = build_model(ModelSpec("test_resnet", num_classes=3)).train()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    adv = adversarial(model, x, y, 4.0, "pgd", steps=2, alpha_255=1.0)
    assert 0 < (adv - x).abs().max() <= 4 / 255 + 1e-6 and model.training  # mode restored


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attacks_equal_torchattacks(attack):
    ta = _torchattacks()
    from nsbench.bench.attacks import adversarial

    model = build_model(ModelSpec("test_resnet", num_classes=3, drop_rate=0.5)).train()
    x, y = torch.rand(6, 3, 32, 32), torch.randint(0, 3, (6,))
    ours = adversarial(model, x, y, 8.0, attack, steps=3, alpha_255=2.0, seed=5)
    if attack == "fgsm":
        atk = ta.FGSM(model, eps=8 / 255)
    else:
        torch.manual_seed(5)
        atk = ta.PGD(model, eps=8 / 255, alpha=2 / 255, steps=3, random_start=True)
    atk.set_model_training_mode(model_training=False)
    theirs = atk(x, y)
    assert (ours - x).abs().max() > 0 and torch.equal(ours, theirs)


# ---- 14: LICENSE and --version -----------------------------------------------------------------------------------

def test_license_file_and_version(capsys):
    tomllib = pytest.importorskip("tomllib")

    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nsbench {version}"


# ---- 15: only rank 0 speaks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("rank", ["0", "1"])
def test_non_zero_ranks_keep_input_errors_to_rank_0(tmp_path, monkeypatch, capsys, rank):
    """An input error found before the ranks meet is found by every rank: rank 0 alone reports it."""
    import logging

    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "level", logger.level)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--out", str(tmp_path / "x"), "teacher_optim.batch_size=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("teacher_optim.batch_size: must be >= 1") == (1 if rank == "0" else 0)
    assert err.strip() == "" or len(err.strip().splitlines()) == 1


def test_a_rank_failing_alone_is_named_and_other_ranks_do_not_log(monkeypatch, capsys):
    import logging

    import nsbench.cli as cli

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setattr(cli, "_joined_group", lambda: True)
    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    seen = {}

    def fail(args):
        seen["info"] = logger.isEnabledFor(logging.INFO)
        raise NsbenchError("shard 3: device lost")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser(), fail))
    assert cli.main(["ls"]) == 2
    assert seen == {"info": False}
    assert capsys.readouterr().err.strip() == "nsbench: error: [rank 3] shard 3: device lost"


def _with_handler(parser, fn):
    parser.set_defaults(handler=fn)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(handler=fn)
    return parser


@pytest.mark.slow
def test_under_torchrun_each_line_is_printed_once(tiny_folder, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_teacher_only(tiny_folder)))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                           "nsbench", "train", "--recipe", str(recipe), "--out", str(tmp_path / "run")],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    for line in ("iteration 0: supervised teacher", "iter0 epoch 1/1 loss", "iteration 0: val top-1"):
        assert text.count(line) == 1, (line, text[-3000:])


def test_run_lock_waits_for_a_live_holder_when_asked(tmp_path):
    import threading

    from nsbench.lock import run_lock

    order = []
    with run_lock(tmp_path, what="first"):
        t = threading.Thread(target=lambda: _take(tmp_path, order))
        t.start()
        t.join(0.3)
        order.append("first releases")
    t.join()
    assert order == ["first releases", "second holds"]


def _take(folder, order):
    from nsbench.lock import run_lock

    with run_lock(folder, what="second", wait=True, poll=0.05):
        order.append("second holds")
