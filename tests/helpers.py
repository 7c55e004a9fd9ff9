"""What tests share: tiny images, folders, recipes and suites; a pixel oracle for fabricated official sets;
pseudo-label stores and the id teacher of the value tests; a tiny study; damaged inputs and one-line errors.
Imported by name (`from helpers import make_image`): tests/ is on pytest's pythonpath (pyproject.toml)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image
from torch import nn

from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.suite import SuiteConfig
from nsbench.checkpoint import save_checkpoint
from nsbench.config import OptimConfig, PseudoConfig, RuntimeConfig
from nsbench.data.loaders import ImageDataset
from nsbench.data.sources import ArraySource
from nsbench.models import ModelSpec, build_model
from nsbench.training import selection, store
from nsbench.training.label import LabelConfig, label_unlabeled, teacher_batches
from nsbench.training.selection import select_pseudo_labels
from nsbench.training.stage import StageConfig, train_stage
from nsbench.training.store import column, shard_paths
from nsbench.utils import read_json


# ---- tiny images, folders, recipes and suites

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def make_image(cls: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A learnable 32x32 RGB image: class c lights one quadrant (c % 4) in one colour family (c // 4)."""
    img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    h = size // 2
    y, x = (cls % 4) // 2 * h, (cls % 4) % 2 * h
    colour = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]][cls // 4 % 3], np.uint8)
    img[y : y + h, x : x + h] = np.clip(colour.astype(int) + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8)
    return img


def write_folder(root: Path, n_classes: int, per_class: dict[str, int], seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(n_classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(make_image(c, rng)).save(d / f"{i:04d}.png")
    return root


def tiny_recipe(source: str, iterations: int = 2, **extra) -> dict:
    recipe = {
        "seed": 0,
        "data": {"source": source, "labels_per_class": 8, "val_split": "test", "image_size": 32},
        "teacher": {"arch": "test_efficientnet", "drop_rate": 0.1, "drop_path_rate": 0.1},
        "students": [{"arch": "test_efficientnet", "drop_rate": 0.2, "drop_path_rate": 0.1,
                      "kwargs": {"channel_multiplier": 1.0}}],
        "teacher_optim": {"epochs": 2, "batch_size": 16, "lr": 0.003, "warmup_epochs": 0},
        "student_optim": {"epochs": 1, "batch_size": 16, "lr": 0.003, "warmup_epochs": 0},
        "pseudo": {"threshold": 0.0, "batch_size": 64},
        "noise": {"ra_layers": 1, "ra_magnitude": 5},
        "ns": {"iterations": iterations, "unlabeled_ratio": 2},
        "runtime": {"device": "cpu"},
    }
    for k, v in extra.items():
        recipe[k] = {**recipe.get(k, {}), **v} if isinstance(v, dict) else v
    return recipe


TINY_SUITE = [
    "corruptions.limit=8", "corruptions.severities=[1,2]", "corruptions.corruptions=[gaussian_noise,impulse_noise,fog,speckle_noise]",
    "perturbations.limit=4", "perturbations.perturbations=[gaussian_noise,translate,rotate]",
    "natural_adversarial.references=[{arch: test_resnet, seed: 0}]", "natural_adversarial.ref_epochs=1",
    "natural_adversarial.ref_train_limit=32", "fgsm.limit=16", "fgsm.eps_255=[0,4]",
]


# ---- a pixel oracle for fabricated official sets: class k is encoded in an image's pixels

def synsets() -> list[str]:
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


class PixelOracle(nn.Module):
    """Class id read from the grey level at pixel (0, 0); optionally a decoy with the top logit on class 0."""

    def __init__(self, classes: list[int], n: int = 1000, decoy: int | None = 0):
        super().__init__()
        self.classes, self.n, self.decoy = classes, n, decoy
        self.seen_shapes = []

    def forward(self, x):
        self.seen_shapes.append(tuple(x.shape[1:]))
        k = (x[:, 0, 0, 0] * 255 / 40).floor().long().clamp(0, len(self.classes) - 1)
        out = torch.zeros(len(x), self.n)
        out[torch.arange(len(x)), torch.as_tensor(self.classes)[k]] = 10.0
        if self.decoy is not None:
            out[:, self.decoy] = 100.0
        return out


def oracle_model(oracle, classes) -> EvalModel:
    return EvalModel(oracle, "oracle", "0" * 64, classes, 64, {"model": {"arch": "oracle"}})


def encoded_image(k: int, size: int = 64) -> np.ndarray:
    """A flat grey image of level 40k + 20: lossy JPEG / MP4 coding keeps it within the oracle's bin."""
    return np.full((size, size, 3), 40 * k + 20, np.uint8)


def ctx_for(tmp_path, oracle, size=64):
    em = oracle_model(oracle, synsets())
    em.input_size = size
    return EvalContext(em, SuiteConfig(name="t"), tmp_path / "cache", torch.device("cpu"), workers=0)


def save(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)


# ---- pseudo-label stores

def teacher_probs(model: nn.Module, source, indices: np.ndarray, cfg: LabelConfig,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """All of label.teacher_batches at once: (probs [n, C], indices [n], n_skipped)."""
    probs, idxs, skipped = [], [], 0
    for p, i, sk in teacher_batches(model, source, indices, cfg, progress):
        skipped += sk
        if len(i):
            probs.append(p)
            idxs.append(i)
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), skipped
    return np.concatenate(probs), np.concatenate(idxs), skipped


def read_store(store: Path, columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """A store's shards concatenated (only `columns`), the whole store in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = shard_paths(store, read_json(store / "stats.json")["world_size"])
    table = pa.concat_tables([pq.read_table(s, columns=columns) for s in shards])
    return {name: column(table, name) for name in table.column_names}


def build_store(teacher, src, indices, store, *, num_classes, size, device, **pseudo):
    """Label, then select, as the driver does (label.py, then selection.py); the store's stats.json."""
    job = LabelConfig(PseudoConfig(**pseudo), num_classes, size, device)
    return select_pseudo_labels(store, job.pseudo, num_classes, label_unlabeled(teacher, src, indices, store, job))


C = 4
INF = float("inf")
N_LAB = 10  # ids 0..9 labeled; 10..21 unlabeled
# teacher logits per unlabeled id -> (predicted class, top probability); threshold 0.5
ID_TEACHER = {
    10: [0, 0, -INF, -INF],  # class 0 (tie: the first), 0.5 exactly: kept (>=)
    11: [0, -INF, -INF, -INF],  # class 0, 1.0
    12: [3, 0, 0, 0],  # class 0, e^3 / (e^3 + 3) = 0.870
    13: [2, 0, 0, 0],  # class 0, 0.711
    14: [1, 0, 0, 0],  # class 0, 0.475: filtered
    15: [0, 0, 0, 0],  # class 0, 0.25: filtered
    16: [0, 4, 0, 0],  # class 1, 0.948
    17: [0, 2.5, 0, 0],  # class 1, 0.802
    18: [0, 0, 2, 0],  # class 2, 0.711
    19: [-INF, -INF, 0, 0],  # class 2, 0.5 exactly: kept
    20: [-INF, -INF, -INF, 0],  # class 3, 1.0
    21: [0, 0, 0, 1.5],  # class 3, 0.599
}


class IdTeacher(nn.Module):
    def forward(self, x):
        ids = (x[:, 0, 0, 0] * 255).round().long()
        table = torch.zeros(32, C)
        for i, row in ID_TEACHER.items():
            table[i] = torch.tensor(row)
        return table[ids]


class RecordingStudent(nn.Module):
    """A linear student that records, per forward, the image ids it was given and the logits it returned."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(3 * 32 * 32, C)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(C, 3 * 32 * 32, generator=g) * 0.05)
            self.lin.bias.copy_(torch.tensor([0.3, -0.2, 0.1, 0.0]))
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x):
        out = self.lin(x.flatten(1))
        self.seen.append(((x[:, 0, 0, 0] * 255).round().long().numpy(), out.detach().double().numpy()))
        return out


@dataclass
class Selection:
    positions: np.ndarray  # rows, repeated once per use (duplicates for short classes)
    stats: dict


def select(confidence: np.ndarray, hard: np.ndarray, num_classes: int, threshold: float, balance: bool,
           per_class: int | str, true_labels: np.ndarray | None = None) -> Selection:
    """The selection rule written out on arrays held in memory, the reference that the store's streaming
    `selection.plan_and_select` must reproduce: the confidence filter (`>=`, filter_unlabel.py), then per class a
    target count (an integer, or mean / median / max / min of the kept counts of the predicted classes, rounded); a
    class with more kept images keeps its most confident ones (ties: lower row first), one with fewer repeats all of
    them as many whole times as fit, then its most confident ones once more."""
    n = len(confidence)
    kept = np.flatnonzero(confidence >= threshold)
    counts = np.bincount(hard[kept], minlength=num_classes)
    nonzero = counts[counts > 0]
    if not balance:
        target = None
    elif isinstance(per_class, int):
        target = per_class
    else:
        fns = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}
        target = int(round(float(fns[per_class](nonzero)))) if len(nonzero) else 0
    pieces, per = [], []
    for c in range(num_classes):
        rows = kept[hard[kept] == c]
        rows = rows[np.lexsort((rows, -confidence[rows]))]
        if target is None or len(rows) == 0:
            chosen, dup, dropped = rows, 0, 0
        elif len(rows) >= target:
            chosen, dup, dropped = rows[:target], 0, len(rows) - target
        else:
            reps, rest = divmod(target, len(rows))
            chosen = np.concatenate([np.tile(rows, reps), rows[:rest]])
            dup, dropped = target - len(rows), 0
        pieces.append(chosen)
        per.append({"class": c, "predicted": int((hard == c).sum()), "kept": int(len(rows)),
                    "selected": int(len(chosen)), "duplicated": int(dup), "dropped_by_balance": int(dropped)})
    positions = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    stats = {"n_unlabeled": int(n), "threshold": threshold, "n_filtered": int(n - len(kept)), "n_kept": int(len(kept)),
             "balance": balance, "per_class_target": target, "n_selected": int(len(positions)),
             "n_duplicated": int(sum(p["duplicated"] for p in per)),
             "mean_confidence": float(confidence.mean()) if n else 0.0, "per_class": per}
    if true_labels is not None and n and (true_labels >= 0).all():
        stats["agreement_all"] = float((hard == true_labels).mean())
        stats["agreement_kept"] = float((hard[kept] == true_labels[kept]).mean()) if len(kept) else 0.0
        for p in per:
            rows = kept[hard[kept] == p["class"]]
            p["agreement"] = float((true_labels[rows] == p["class"]).mean()) if len(rows) else None
    return Selection(positions.astype(np.int64), stats)


def id_source() -> ArraySource:
    images = np.zeros((22, 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(22)
    images[:, 5:, 5:, :] = (np.arange(22)[:, None, None, None] * 11) % 256  # something for the student to read
    labels = np.arange(22) % C
    return ArraySource("ids", images, labels, [f"c{i}" for i in range(C)])


def id_teacher_probs(i: int) -> np.ndarray:
    z = np.asarray(ID_TEACHER[i], float)
    p = np.exp(z - z.max())
    return p / p.sum()


def id_teacher_store(tmp_path, soft: bool):
    src = id_source()
    cfg = LabelConfig(PseudoConfig(soft=soft, temperature=1.0, topk=None, threshold=0.5, balance=True, per_class=5,
                                   batch_size=5), num_classes=C, size=32, device=torch.device("cpu"))
    stats = selection.label_and_select(IdTeacher(), src, np.arange(N_LAB, 22), tmp_path / "store", cfg)
    return src, stats


def train_on_store(tmp_path, src, *, smoothing, pseudo_smoothing, weight):
    idx, targets = store.load_selection(tmp_path / "store", C)
    labeled = ImageDataset(src, np.arange(N_LAB), 32)
    pseudo = ImageDataset(src, idx, 32, targets=targets)
    model = RecordingStudent()
    extra = {"pseudo_smoothing": pseudo_smoothing} if pseudo_smoothing else {}  # the default: no smoothing
    _, hist = train_stage(model, StageConfig(name="s", optim=OptimConfig(epochs=1, batch_size=5, lr=0.01, warmup_epochs=0,
                                                                         weight_decay=0.0, label_smoothing=smoothing),
                                             runtime=RuntimeConfig(device="cpu", channels_last=False), labeled=labeled,
                                             pseudo=pseudo, ratio=2, unlabeled_weight=weight, val=None,
                                             device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0,
                                             **extra))
    return model.seen, hist[0]


def selected(tmp_path, conf, hard, true, classes, balance, per_class, threshold=0.5):
    """The store's selection of one shard holding rows 0..n-1 (`conf`, `hard`, `true`), as the driver makes it
    (selection.plan_and_select): its statistics and the selected rows, sorted, each repeated once per use."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    w = store.ShardWriter(tmp_path / store.shard_name(0, 1), classes, threshold)
    n = len(conf)
    w.add(np.arange(n), hard[:, None].astype(np.int32), np.ones((n, 1), np.float32), conf.astype(np.float32), true)
    w.close(0, 1)
    import pyarrow.parquet as pq

    stats = selection.plan_and_select(tmp_path, 1, classes, threshold, balance, per_class)
    sel = pq.read_table(tmp_path / store.shard_name(0, 1).replace("labels-", "selection-")).to_pydict()
    return stats, sorted(i for i, k in zip(sel["index"], sel["count"]) for _ in range(k))


# ---- a tiny study

def tiny_study(tmp_path: Path, source: str, **extra) -> Path:
    """Two variants x two seeds on the tiny folder dataset: noisy_student (2 iterations) and no_noise (1)."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(source, iterations=1)))
    study = {
        "name": "tiny", "description": "a two-variant study on tiny data", "recipe": str(recipe), "seeds": [0, 1],
        "suite": "study", "suite_overrides": ["fgsm.limit=16", "fgsm.eps_255=[4]"],
        "scales": {"small": ["teacher_optim.epochs=1"], "full": []},
        "variants": {"noisy_student": {"about": "the recipe", "overrides": ["ns.iterations=2"]},
                     "no_noise": {"about": "no student noise",
                                  "overrides": ["noise.randaugment=false", "students.0.drop_rate=0.0",
                                                "students.0.drop_path_rate=0.0"]}},
        "tables": [{"title": "Noise", "source": "section 4.1",
                    "rows": ["teacher", "noisy_student@1", "no_noise"],
                    "claims": [{"claim": "noise helps", "better": "noisy_student@1", "than": "no_noise"},
                               {"claim": "the student beats the teacher", "better": "noisy_student", "than": "teacher"}]}],
    }
    for k, v in extra.items():
        study[k] = v
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


# ---- the repository, subprocesses, runs killed mid-write

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def teacher_only(tiny_folder, **extra) -> dict:
    return tiny_recipe(f"folder:{tiny_folder}", iterations=0, teacher_optim={"epochs": 1}, **extra)


def killed_pid_temp(folder: Path) -> Path:
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


def dead_lock(folder: Path) -> None:
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".nsbench.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "what": "killed"}))


# ---- eval folders, checkpoints and Parquet shards to damage, one-line errors

FIX = Path(__file__).resolve().parent / "fixtures"


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err[-3000:]
    return [ln for ln in err.splitlines() if ln.startswith("nsbench: error")]


def eval_folder(name: str, dst: Path, *, label: str | None = None, fingerprint: str | None = None) -> Path:
    """A copy of a fixture eval folder, relabelled and / or with another dataset fingerprint (hash kept valid)."""
    shutil.copytree(FIX / "results" / name, dst)
    meta = json.loads((dst / "meta.json").read_text())
    if label is not None:
        rows = pd.read_csv(dst / "results.csv", keep_default_na=False, na_values=[""])
        rows["model"] = label
        rows.to_csv(dst / "results.csv", index=False, float_format="%.6g")
        meta["model"]["label"] = label
    if fingerprint is not None:
        meta["dataset"]["fingerprint"] = fingerprint
    if "results" in meta:
        data = (dst / "results.csv").read_bytes()
        meta["results"] = {"rows": data.count(b"\n") - 1, "sha256": hashlib.sha256(data).hexdigest()}
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def tiny_checkpoint(path: Path, classes: list[str], *, nan: bool = False) -> Path:
    spec = ModelSpec("test_resnet", num_classes=len(classes), input_size=32)
    model = build_model(spec)
    if nan:  # a diverged model: every weight NaN (argmax of its NaN logits is class 0)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
    save_checkpoint(path, model, spec, classes=classes, iteration=0, parent_sha256=None, config=None, metrics=None)
    return path


def png_bytes(cls: int, rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(make_image(cls, rng)).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(folder: Path, labels: list, *, group: int = 4) -> Path:
    """Uncompressed Parquet shard of PNG images in row groups of `group` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = [png_bytes(i % 4, rng) for i in range(len(labels))]
    path = folder / "part-0.parquet"
    pq.write_table(pa.table({"image": imgs, "label": labels}), path, row_group_size=group, compression="none")
    return path


def damage_row_group(path: Path, group: int, columns: tuple[int, ...] = (0,)) -> None:
    """Overwrite the page headers of `group`'s column chunks with garbage; the footer stays intact."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    data = bytearray(path.read_bytes())
    for c in columns:
        col = md.row_group(group).column(c)
        start = col.dictionary_page_offset or col.data_page_offset
        data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


# ---- the torch -C generators (issue 34)

def imagecorruptions_list(fn, target: str = "c"):
    """The `target = [...][severity - 1]` list of an imagecorruptions function, read from its source."""
    import ast
    import inspect

    body = next(n for n in ast.walk(ast.parse(inspect.getsource(fn))) if isinstance(n, ast.FunctionDef)).body
    node = next(n for n in body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == target)
    return eval(ast.unparse(node.value.value), {"__builtins__": {}})  # noqa: S307 - a literal list


def check_batch_independence(run, photo: np.ndarray) -> None:
    """run(images, seeds) -> uint8 images: an image corrupted alone equals itself in a batch of four, the same seed
    gives the same image again, another seed another."""
    rng = np.random.default_rng(0)
    batch = np.stack([photo, rng.integers(0, 256, photo.shape, np.uint8), photo[::-1], photo[:, ::-1]])
    together, alone = run(batch, [5, 6, 7, 8]), run(batch[2:3], [7])
    assert np.array_equal(together[2], alone[0])
    assert np.array_equal(alone, run(batch[2:3], [7]))
    assert not np.array_equal(alone, run(batch[2:3], [99]))


# ---- the -C / -P tasks' tests: a linear model on pixel (0, 0) that records its batches, random photographs, a context

PIXEL_W = np.array([[1.3, -0.7, 0.1], [0.2, 0.9, -1.1], [-0.4, 0.3, 0.77]])
PIXEL_B = np.array([0.011, -0.3, 0.123])


class PixelRecorder(nn.Module):
    """Logits = PIXEL_W @ (the RGB of pixel (0, 0)) + PIXEL_B; keeps every batch it is given."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor(PIXEL_W))
            self.lin.bias.copy_(torch.tensor(PIXEL_B))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.lin(x[:, :, 0, 0])


def random_photos(n: int = 3):
    """n random 32-px RGB images of classes a, b, c in turn."""
    from nsbench.data.sources import ArraySource

    rng = np.random.default_rng(5)
    return ArraySource("photos", rng.integers(0, 256, (n, 32, 32, 3), np.uint8), np.arange(n) % 3, ["a", "b", "c"])


def task_context(tmp_path, section: str, model=None, *, batch_size=None, **task):
    """A CPU context over random_photos() for a PixelRecorder (or `model`), the suite's `section` set from `task`;
    returns (context, that section)."""
    from nsbench.bench.suite import SuiteConfig

    cfg = SuiteConfig(name="t")
    for k, v in task.items():
        setattr(getattr(cfg, section), k, v)
    em = EvalModel(model or PixelRecorder(), "m", "ab" * 32, ["a", "b", "c"], 32, {})
    ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=1, batch_size=batch_size)
    ctx._source = random_photos()
    return ctx, getattr(cfg, section)


# ---- built -C sets on disk, fabricated

def sha16(path) -> str:
    """The checksum a manifest records for a file: its sha256, first 16 hex digits, computed here by hand."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def built_set(folder) -> dict:
    """A fabricated built -C set: the three base files and two cells; returns the manifest's checksums by hand
    (manifest.json not written)."""
    folder.mkdir(parents=True)
    for name, arr in (("clean.npy", np.zeros((2, 4, 4, 3), np.uint8)), ("indices.npy", np.arange(2)),
                      ("labels.npy", np.array([3, 5])), ("fog-1.npy", np.full((2, 4, 4, 3), 7, np.uint8)),
                      ("fog-2.npy", np.full((2, 4, 4, 3), 9, np.uint8))):
        np.save(folder / name, arr)
    return {"clean_sha256": sha16(folder / "clean.npy"), "indices_sha256": sha16(folder / "indices.npy"),
            "labels_sha256": sha16(folder / "labels.npy"),
            "cells": [{"corruption": "fog", "severity": s, "file": f"fog-{s}.npy",
                       "sha256": sha16(folder / f"fog-{s}.npy")} for s in (1, 2)]}


# ---- the report's bootstrap, written out

def resample_index(n: int, seed: int, b: int = 2000) -> np.ndarray:
    """The resampled item indices [b, n]: chunks of 250, chunk k from default_rng(seed + 7919 k) as
    rng.integers(0, n, (chunk, n)) (the seeds stats.draws documents)."""
    return np.concatenate([np.random.default_rng(seed + 7919 * k).integers(0, n, (min(250, b - 250 * k), n))
                           for k in range((b + 249) // 250)])


def percentile(values: np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles (numpy's default linear interpolation)."""
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)
