"""Run a suite against one model: tasks -> cached per-cell arrays -> tidy result rows + metadata.

Every cell (one corruption at one severity, one perturbation, one eps, ...) is computed once per model and set and
stored as a small .npz of per-image outcomes under the cache folder, so an interrupted suite resumes where it
stopped and a later report can bootstrap confidence intervals and pair models on identical images.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import distributed as D
from ..data import open_source
from ..data.loaders import iterate_clean
from ..data.transforms import to_tensor
from ..reference import ALEXNET_CLEAN_ERR, C_BENCHMARK, P_TEST, alexnet_c_errors, alexnet_p
from ..utils import NsbenchError, atomic_path, library_versions, write_json
from . import cache as K
from . import corruptions as C
from . import metrics as M
from . import natural as A
from . import perturbations as P
from .attacks import adversarial
from .models import EvalModel, load_eval_model
from .suite import SuiteConfig

log = logging.getLogger(__name__)

COLUMNS = ["model", "suite", "task", "condition", "severity", "eps_255", "eps", "metric", "value", "n", "normaliser"]


class Runner:
    def __init__(self, em: EvalModel, suite: SuiteConfig, cache_dir: Path, device: torch.device,
                 limit: int | None = None, workers: int | None = None):
        self.em, self.suite, self.cache, self.device, self.limit, self.workers = em, suite, Path(cache_dir), device, limit, workers
        self.model = em.model.to(device).eval()
        ds = em.dataset or {}
        self.source_spec = suite.data.source or ds.get("source")
        self.split = suite.data.split or ds.get("val_split") or "test"
        self.size = suite.data.image_size or em.input_size
        self.cfg_data = (em.meta.get("config") or {}).get("data", {})
        self._source = None
        self.timings: dict[str, float] = {}
        self.sets: dict[str, dict] = {}

    # ------------------------------------------------------------------------------------------ plumbing
    @property
    def source(self):
        if self._source is None:
            if not self.source_spec:
                raise NsbenchError(f"{self.em.label}: no dataset known for this model; set data.source in the suite "
                                   f"(e.g. data.source=imagenet:/data/imagenet)")
            self._source = open_source(self.source_spec, self.split, self.cfg_data.get("image_column", "image"),
                                       self.cfg_data.get("label_column", "label"), classes=self.em.classes)
        return self._source

    def _cap(self, n: int | None) -> int | None:
        if self.limit is None:
            return n
        return self.limit if n is None else min(n, self.limit)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits for uint8 NHWC images (any length), batched; [0,1] inputs, normalisation inside the model.
        Under torch.distributed each rank scores a contiguous slice and the slices are gathered in order."""
        if D.is_dist():
            sl = D.shard(len(images))
            return np.concatenate(D.all_gather_objects(self._logits_local(images[sl])))
        return self._logits_local(images)

    def sharded(self, idx: np.ndarray, fn) -> dict[str, np.ndarray]:
        """Run `fn(idx_slice) -> dict of arrays` on this rank's share of `idx`; gather and concatenate in order."""
        if not D.is_dist():
            return fn(idx)
        parts = D.all_gather_objects(fn(idx[D.shard(len(idx))]))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def build(self, fn):
        """Build a cached set on rank 0 while the others wait, then let every rank open it."""
        if D.is_dist():
            if D.is_main():
                fn()
            D.barrier()
        return fn()

    @torch.no_grad()
    def _logits_local(self, images: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(images), self.suite.batch_size):
            x = to_tensor(np.asarray(images[s : s + self.suite.batch_size])).to(self.device, non_blocking=True)
            out.append(self.model(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.em.classes)), np.float32)

    def cell(self, task: str, key: str, compute) -> dict[str, np.ndarray]:
        path = self.cache / "cells" / self.em.sha256[:16] / task / f"{K.key_of(key)}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        arrays = compute()
        if D.is_main():
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
        return arrays

    def _row(self, task, condition, metric, value, n, severity=None, eps_255=None, normaliser=None) -> dict:
        return {"model": self.em.label, "suite": self.suite.name, "task": task, "condition": condition,
                "severity": severity, "eps_255": eps_255, "eps": None if eps_255 is None else eps_255 / 255.0,
                "metric": metric, "value": float(value), "n": int(n), "normaliser": normaliser}

    # ------------------------------------------------------------------------------------------ clean
    def clean_cell(self) -> dict:
        idx = C.pick_indices(len(self.source), self._cap(self.suite.clean.limit), self.suite.seed)

        def local(idx):
            preds, c5, ids, labels = [np.zeros(0, np.int64)], [np.zeros(0, bool)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
            for x, y, i, _ in iterate_clean(self.source, idx, self.size, self.suite.batch_size, 2):
                if len(y) == 0:
                    continue
                with torch.no_grad():
                    lg = self.model(x.to(self.device)).float().cpu()
                top = lg.topk(min(5, lg.shape[1]), 1).indices
                preds.append(top[:, 0].numpy())
                c5.append((top == y[:, None]).any(1).numpy())
                ids.append(i.numpy())
                labels.append(y.numpy())
            return {"index": np.concatenate(ids), "pred": np.concatenate(preds), "label": np.concatenate(labels),
                    "correct5": np.concatenate(c5)}

        def compute():
            return self.sharded(idx, local)

        return self.cell("clean", f"{self.source.name}|{self.source.fingerprint()}|{self.size}|{idx.tolist()}", compute)

    def run_clean(self) -> tuple[list[dict], list[pd.DataFrame]]:
        z = self.clean_cell()
        correct = z["pred"] == z["label"]
        n = len(correct)
        rows = [self._row("clean", "clean", "top1_acc", 100 * correct.mean(), n),
                self._row("clean", "clean", "top5_acc", 100 * z["correct5"].mean(), n),
                self._row("clean", "clean", "top1_err", 100 * (1 - correct.mean()), n),
                self._row("clean", "clean", "top5_err", 100 * (1 - z["correct5"].mean()), n)]
        for c, name in enumerate(self.em.classes):
            m = z["label"] == c
            if m.any():
                rows.append(self._row("clean", f"class:{name}", "class_acc", 100 * correct[m].mean(), m.sum()))
        per = pd.DataFrame({"task": "clean", "condition": "clean", "severity": 0, "eps_255": 0.0,
                            "image": z["index"], "correct": correct})
        return rows, [per]

    # ------------------------------------------------------------------------------------------ corruptions
    def corruption_errors(self) -> tuple[dict[str, list[float]], float, dict[str, np.ndarray], int, str]:
        """Top-1 error per corruption and severity, clean error on the same images, per-image outcomes."""
        t = self.suite.corruptions
        outcomes: dict[str, np.ndarray] = {}
        if t.root:
            cells = [c for c in C.scan_imagenet_c(t.root) if c.corruption in t.corruptions and c.severity in t.severities]
            for cell in tqdm(cells, desc=f"{self.em.label} -C", leave=False, mininterval=2.0):
                src = C.open_official_cell(cell, self.em.classes)
                idx = C.pick_indices(len(src), self._cap(None), self.suite.seed)

                def compute(src=src, idx=idx):
                    def local(part):
                        preds = [self.logits_batch(x).argmax(1) for x, *_ in iterate_clean(src, part, self.size, self.suite.batch_size, 4)]
                        return {"pred": np.concatenate(preds) if preds else np.zeros(0, np.int64)}

                    return {"correct": self.sharded(idx, local)["pred"] == src.labels[idx], "index": idx}

                outcomes[f"{cell.corruption}|{cell.severity}"] = self.cell("corruptions", f"official|{cell.folder}|{len(idx)}", compute)["correct"]
            clean_err = 1 - self.clean_correct().mean()
            n = len(next(iter(outcomes.values()))) if outcomes else 0
            set_name = f"official:{t.root}"
        else:
            folder, manifest = self.build(lambda: C.build_c(self.source, self.size, t.corruptions, t.severities,
                                                            self._cap(t.limit), self.suite.seed, self.cache, self.workers))
            self.sets["corruptions"] = {"folder": folder.name, **{k: manifest[k] for k in ("n", "fingerprint", "seed", "imagecorruptions")}}
            labels = np.asarray(K.load_array(folder / "labels.npy"))

            def run(file):
                return lambda: {"correct": self.logits(K.load_array(folder / file)).argmax(1) == labels}

            cz = self.cell("corruptions", f"{folder.name}|clean.npy", run("clean.npy"))
            clean_err = 1 - cz["correct"].mean()
            for c in tqdm(t.corruptions, desc=f"{self.em.label} -C", leave=False, mininterval=2.0):
                for s in t.severities:
                    outcomes[f"{c}|{s}"] = self.cell("corruptions", f"{folder.name}|{c}-{s}.npy", run(f"{c}-{s}.npy"))["correct"]
            n = len(labels)
            set_name = folder.name
        errors: dict[str, list[float]] = {}
        for c in t.corruptions:
            if all(f"{c}|{s}" in outcomes for s in t.severities):
                errors[c] = [float(1 - outcomes[f"{c}|{s}"].mean()) for s in t.severities]
        return errors, float(clean_err), outcomes, n, set_name

    def logits_batch(self, x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.model(x.to(self.device)).float().cpu().numpy()

    def clean_correct(self) -> np.ndarray:
        z = self.clean_cell()
        return z["pred"] == z["label"]

    def run_corruptions(self, norm: "Normaliser") -> tuple[list[dict], list[pd.DataFrame]]:
        errors, clean_err, outcomes, n, set_name = self.corruption_errors()
        rows, per = [], []
        for key, correct in outcomes.items():
            c, s = key.split("|")
            rows.append(self._row("corruptions", c, "top1_err", 100 * (1 - correct.mean()), len(correct), severity=int(s)))
            per.append(pd.DataFrame({"task": "corruptions", "condition": c, "severity": int(s), "eps_255": 0.0,
                                     "image": np.arange(len(correct)), "correct": correct}))
        rows.append(self._row("corruptions", "clean", "top1_err", 100 * clean_err, n))
        ref = norm.c_errors(self)
        bench = [c for c in C_BENCHMARK if c in errors]
        for c, errs in errors.items():
            rows.append(self._row("corruptions", c, "mean_err", 100 * np.mean(errs), n))
            if ref is not None and c in ref[0]:
                ref_errs, ref_clean = ref[0][c], ref[1]
                rows.append(self._row("corruptions", c, "ce", 100 * M.ce(errs, ref_errs), n, normaliser=norm.name))
                rows.append(self._row("corruptions", c, "relative_ce", 100 * M.relative_ce(errs, clean_err, ref_errs, ref_clean),
                                      n, normaliser=norm.name))
        if bench:
            rows.append(self._row("corruptions", "all", "mean_err", 100 * np.mean([np.mean(errors[c]) for c in bench]), n))
            if ref is not None:
                rows.append(self._row("corruptions", "all", "mce", M.mce(errors, ref[0], bench), n, normaliser=norm.name))
                rows.append(self._row("corruptions", "all", "relative_mce",
                                      M.relative_mce(errors, clean_err, ref[0], ref[1], bench), n, normaliser=norm.name))
        self.sets.setdefault("corruptions", {})["source"] = set_name
        return rows, per

    # ------------------------------------------------------------------------------------------ perturbations
    def perturbation_stats(self) -> tuple[dict[str, dict[str, np.ndarray]], str]:
        t = self.suite.perturbations
        out = {}
        if t.root:
            for p in tqdm(t.perturbations, desc=f"{self.em.label} -P", leave=False, mininterval=2.0):
                videos = P.scan_imagenet_p(t.root, p, t.difficulty, self.em.classes)
                videos = [videos[i] for i in C.pick_indices(len(videos), self._cap(None), self.suite.seed)]

                def compute(videos=videos, p=p):
                    def local(part):
                        fp, t5 = [], []
                        for k in part:
                            lg = self._logits_local(P.read_video(videos[k][0]))
                            fp.append(M.flip_probability(lg.argmax(1)[None], M.is_noise(p), t.difficulty)[0])
                            t5.append(M.sequence_t5d(lg, M.is_noise(p), t.difficulty))
                        return {"fp": np.asarray(fp, float), "t5d": np.asarray(t5, float)}

                    return self.sharded(np.arange(len(videos)), local)

                out[p] = self.cell("perturbations", f"official|{t.root}|{p}|{t.difficulty}|{len(videos)}", compute)
            return out, f"official:{t.root}"
        folder, manifest = self.build(lambda: P.build_p(self.source, self.size, t.perturbations, t.difficulty,
                                                        self._cap(t.limit), self.suite.seed, self.cache, self.workers))
        self.sets["perturbations"] = {"folder": folder.name, "n": manifest["n"], "seed": manifest["seed"]}
        for p in tqdm(t.perturbations, desc=f"{self.em.label} -P", leave=False, mininterval=2.0):
            def compute(p=p):
                seqs = K.load_array(folder / f"{p}-d{t.difficulty}.npy")
                n, f = seqs.shape[:2]
                lg = self.logits(np.asarray(seqs).reshape(n * f, *seqs.shape[2:])).reshape(n, f, -1)
                noise = M.is_noise(p)
                return {"fp": M.flip_probability(lg.argmax(2), noise, t.difficulty),
                        "t5d": np.asarray([M.sequence_t5d(s, noise, t.difficulty) for s in lg])}

            out[p] = self.cell("perturbations", f"{folder.name}|{p}|{t.difficulty}", compute)
        return out, folder.name

    def run_perturbations(self, norm: "Normaliser") -> tuple[list[dict], list[pd.DataFrame]]:
        stats, _ = self.perturbation_stats()
        ref = norm.p_stats(self)
        rows, per = [], []
        frs, t5s = [], []
        for p, z in stats.items():
            n = len(z["fp"])
            fp, t5 = float(z["fp"].mean()), float(z["t5d"].mean())
            rows += [self._row("perturbations", p, "fp", 100 * fp, n), self._row("perturbations", p, "t5d", t5, n)]
            per.append(pd.DataFrame({"task": "perturbations", "condition": p, "severity": 0, "eps_255": 0.0,
                                     "image": np.arange(n), "flip": z["fp"], "t5d": z["t5d"]}))
            if ref is not None and p in ref:
                fr = fp / ref[p]["fp"] if ref[p]["fp"] else float("nan")
                rt5 = t5 / ref[p]["t5d"] if ref[p]["t5d"] else float("nan")
                rows += [self._row("perturbations", p, "fr", 100 * fr, n, normaliser=norm.name),
                         self._row("perturbations", p, "t5d_rel", 100 * rt5, n, normaliser=norm.name)]
                if p in P_TEST:
                    frs.append(fr)
                    t5s.append(rt5)
        test = [p for p in P_TEST if p in stats]
        if test:
            n = len(stats[test[0]]["fp"])
            rows.append(self._row("perturbations", "all", "mean_fp", 100 * np.mean([stats[p]["fp"].mean() for p in test]), n))
            rows.append(self._row("perturbations", "all", "mean_t5d", np.mean([stats[p]["t5d"].mean() for p in test]), n))
            if frs:
                rows.append(self._row("perturbations", "all", "mfr", 100 * np.mean(frs), n, normaliser=norm.name))
                rows.append(self._row("perturbations", "all", "mt5d", 100 * np.mean(t5s), n, normaliser=norm.name))
        return rows, per

    # ------------------------------------------------------------------------------------------ -A
    def run_natural(self) -> tuple[list[dict], list[pd.DataFrame]]:
        t = self.suite.natural_adversarial
        if t.root:
            src, mask, check = A.open_official(t.root, t.mask)
            idx = C.pick_indices(len(src), self._cap(None), self.suite.seed)

            def compute():
                def local(part):
                    preds = [np.zeros(0, np.int64)]
                    for x, y, _, _ in iterate_clean(src, part, self.size, self.suite.batch_size, 4):
                        with torch.no_grad():
                            preds.append(A.masked_predictions(self.model(x.to(self.device)).float().cpu(), mask).numpy())
                    return {"pred": np.concatenate(preds)}

                return {"correct": self.sharded(idx, local)["pred"] == src.labels[idx]}

            correct = self.cell("natural_adversarial", f"official|{t.root}|{t.mask}|{len(idx)}", compute)["correct"]
            self.sets["natural_adversarial"] = {"source": f"official {t.mask}: {t.root}", "n": int(len(idx)), **check}
            condition = t.mask
        else:
            train_split = self.cfg_data.get("train_split", "train")
            train = open_source(self.source_spec, train_split, classes=self.em.classes)
            pool = self.source if not t.pool_split else open_source(self.source_spec, t.pool_split, classes=self.em.classes)
            folder, manifest = self.build(lambda: A.build_a(train, pool, self.size, t.references, t.ref_epochs, t.ref_train_limit,
                                                            t.ref_batch_size, t.ref_lr, t.pool_limit, self.suite.seed,
                                                            self.cache, self.device))
            images = K.load_array(folder / "images.npy")
            labels = np.asarray(K.load_array(folder / "labels.npy"))
            sel = C.pick_indices(len(labels), self._cap(None), self.suite.seed)
            correct = self.cell("natural_adversarial", f"{folder.name}|{len(sel)}",
                                lambda: {"correct": self.logits(np.asarray(images)[sel]).argmax(1) == labels[sel]})["correct"]
            self.sets["natural_adversarial"] = {
                "folder": folder.name, "n": int(len(sel)), "n_pool": manifest["n_pool"], "rule": manifest["rule"],
                "references": manifest["reference_results"], "ref_epochs": manifest["epochs"],
                "ref_train_limit": manifest["train_limit"], "pool": manifest["pool"]}
            condition = "built"
        n = len(correct)
        rows = [self._row("natural_adversarial", condition, "top1_acc", 100 * correct.mean(), n),
                self._row("natural_adversarial", condition, "top1_err", 100 * (1 - correct.mean()), n)]
        per = [pd.DataFrame({"task": "natural_adversarial", "condition": condition, "severity": 0, "eps_255": 0.0,
                             "image": np.arange(n), "correct": correct})]
        return rows, per

    # ------------------------------------------------------------------------------------------ FGSM
    def run_fgsm(self) -> tuple[list[dict], list[pd.DataFrame]]:
        t = self.suite.fgsm
        idx = C.pick_indices(len(self.source), self._cap(t.limit), self.suite.seed)
        rows, per = [], []
        for eps in t.eps_255:
            def local(part, eps=eps):
                correct, ids = [np.zeros(0, bool)], [np.zeros(0, np.int64)]
                for x, y, i, _ in iterate_clean(self.source, part, self.size, min(self.suite.batch_size, 250), 2):
                    if len(y) == 0:
                        continue
                    x, y = x.to(self.device), y.to(self.device)
                    adv = adversarial(self.model, x, y, eps, t.attack, t.pgd_steps, t.pgd_alpha_255, self.suite.seed)
                    with torch.no_grad():
                        correct.append((self.model(adv).argmax(1) == y).cpu().numpy())
                    ids.append(i.numpy())
                return {"correct": np.concatenate(correct), "index": np.concatenate(ids)}

            def compute(local=local):
                return self.sharded(idx, local)

            z = self.cell("fgsm", f"{self.source.name}|{self.source.fingerprint()}|{t.attack}|{t.pgd_steps}|{t.pgd_alpha_255}|{eps}|{idx.tolist()}", compute)
            rows.append(self._row("fgsm", t.attack, "top1_acc", 100 * z["correct"].mean(), len(z["correct"]), eps_255=float(eps)))
            per.append(pd.DataFrame({"task": "fgsm", "condition": t.attack, "severity": 0, "eps_255": float(eps),
                                     "image": z["index"], "correct": z["correct"]}))
        return rows, per


class Normaliser:
    """Where CE / FR / T5D denominators come from: the AlexNet tables, a reference model, or nothing."""

    def __init__(self, kind: str, model: EvalModel | None = None):
        self.kind, self.model = kind, model
        self.name = {"alexnet": "AlexNet (published)", "none": None}.get(kind) or (
            f"{model.label} ({model.sha256[:12]})" if model else None)
        self._c = self._p = self._runner = None

    def _reference(self, runner: Runner) -> Runner:
        """The runner that scores the reference model on the same sets (the evaluated runner if it is the same
        model); built once, so -C and -P share its opened dataset."""
        if self.model.sha256 == runner.em.sha256:
            return runner
        if self._runner is None:
            self._runner = Runner(self.model, runner.suite, runner.cache, runner.device, runner.limit, runner.workers)
        return self._runner

    def c_errors(self, runner: Runner):
        if self.kind == "none":
            return None
        if self.kind == "alexnet":
            return alexnet_c_errors(), ALEXNET_CLEAN_ERR
        if self._c is None:
            errors, clean_err, _, _, _ = self._reference(runner).corruption_errors()
            self._c = ({c: list(e) for c, e in errors.items()}, clean_err)
        return self._c

    def p_stats(self, runner: Runner):
        if self.kind == "none":
            return None
        if self.kind == "alexnet":
            return {p: {"fp": v["fp"], "t5d": v["t5d"]} for p, v in alexnet_p().items()}
        if self._p is None:
            stats, _ = self._reference(runner).perturbation_stats()
            self._p = {p: {"fp": float(z["fp"].mean()), "t5d": float(z["t5d"].mean())} for p, z in stats.items()}
        return self._p


def resolve_normaliser(spec: str, em: EvalModel, suite: SuiteConfig) -> Normaliser:
    """auto: AlexNet for official ImageNet-C/-P; for built sets the run's iteration-0 teacher (via lineage)."""
    if spec in ("none", "alexnet"):
        return Normaliser(spec)
    if spec != "auto":
        return Normaliser("model", load_eval_model(spec))
    if suite.corruptions.root or suite.perturbations.root:
        return Normaliser("alexnet")
    if em.path is not None and em.meta.get("iteration") is not None:
        root = _lineage_root(em)
        if root is not None:
            return Normaliser("model", root)
    log.warning("%s: no iteration-0 teacher found for normalising CE/FR; reporting unnormalised errors only", em.label)
    return Normaliser("none")


def _lineage_root(em: EvalModel) -> EvalModel | None:
    """Walk iter{k-1}.pt files beside the checkpoint, checking each parent hash, down to iteration 0."""
    cur = em
    while cur.meta.get("iteration", 0) > 0:
        k = cur.meta["iteration"]
        parent = cur.path.parent / f"iter{k - 1}.pt"
        if not parent.exists():
            return None
        p = load_eval_model(str(parent))
        if p.sha256 != cur.meta.get("parent_sha256"):
            log.warning("%s: parent hash does not match %s; not using it as normaliser", cur.path, parent)
            return None
        cur = p
    return cur if cur.meta.get("iteration") == 0 else None


def evaluate(model: str | EvalModel, suite: str | Path | SuiteConfig = "robustness", out: str | Path | None = None,
             *, overrides: list[str] = (), limit: int | None = None, device: str = "auto",
             cache_dir: str | Path | None = None, normaliser: str | None = None, label: str | None = None,
             workers: int | None = None) -> pd.DataFrame:
    """Score `model` (checkpoint path, `timm:NAME` or EvalModel) on `suite`; write results under `out`; return rows."""
    from ..resources import resolve
    from ..utils import resolve_device
    from .suite import load_suite

    D.init_from_env(device)
    dev = D.local_device(resolve_device(device))
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(resolve("suite", str(suite)), list(overrides))
    em = model if isinstance(model, EvalModel) else load_eval_model(str(model), label)
    out = Path(out or f"reports/eval-{em.label}-{cfg.name}")
    cache_dir = Path(cache_dir) if cache_dir else K.default_cache_dir()
    runner = Runner(em, cfg, cache_dir, dev, limit, workers)
    norm = resolve_normaliser(normaliser or cfg.normaliser, em, cfg)
    rows, per = [], []
    t_all = time.time()
    for task in cfg.tasks():
        t0 = time.time()
        log.info("%s: %s", em.label, task)
        if task == "clean":
            r, p = runner.run_clean()
        elif task == "corruptions":
            r, p = runner.run_corruptions(norm)
        elif task == "perturbations":
            r, p = runner.run_perturbations(norm)
        elif task == "natural_adversarial":
            r, p = runner.run_natural()
        else:
            r, p = runner.run_fgsm()
        rows += r
        per += p
        runner.timings[task] = time.time() - t0
    df = pd.DataFrame(rows, columns=COLUMNS)
    if D.is_main():
        write_results(out, df, pd.concat(per, ignore_index=True) if per else pd.DataFrame(), {
            "model": {"label": em.label, "sha256": em.sha256, "path": str(em.path) if em.path else None,
                      "arch": em.meta.get("model", {}).get("arch"), "iteration": em.meta.get("iteration"),
                      "parent_sha256": em.meta.get("parent_sha256"), "role": em.meta.get("role"),
                      "n_params": em.meta.get("n_params"), "train_metrics": em.meta.get("metrics")},
            "suite": {"name": cfg.name, "config": asdict(cfg)},
            "dataset": {"source": runner.source_spec, "split": runner.split,
                        "fingerprint": runner.source.fingerprint() if runner.source_spec else None},
            "preprocessing": {"image_size": runner.size, "inputs": "float [0,1] NCHW, normalised inside the model",
                              "mean": em.meta.get("model", {}).get("mean"), "std": em.meta.get("model", {}).get("std"),
                              "small_images": "zero-padded to image_size", "natural_images": "resize 1/0.875, centre crop"},
            "normaliser": {"kind": norm.kind, "name": norm.name, "sha256": norm.model.sha256 if norm.model else None},
            "sets": runner.sets, "timings_s": {**runner.timings, "total": time.time() - t_all},
            "limit": limit, "device": str(dev), "versions": library_versions(), "seed": cfg.seed,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })
    D.barrier()
    return df


def write_results(out: Path, df: pd.DataFrame, per_image: pd.DataFrame, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df = df.sort_values(["task", "condition", "severity", "eps_255", "metric"], na_position="first", kind="stable")
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out / "results.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    if len(per_image):
        with atomic_path(out / "per_image.parquet") as tmp:
            per_image.to_parquet(tmp, index=False)
    write_json(out / "meta.json", meta)
