"""Built -A (bench/built_a.py): images on which every reference names the same wrong class (likely label noise) are
left out and counted, with their make-up by class; each reference's rounds, and whether the round cap stopped it
while still improving, are recorded in meta.json and shown in the report; the cache key holds everything that
decides the set, the reference trainer's own recipe included: a set built by other references is never reused."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from torch import nn

from nsbench import ModelInfo, ScoreSettings
from nsbench.bench import built_a
from nsbench.bench.built_a import BuildSettings, build_a
from nsbench.data.sources import ArraySource
from nsbench.training import reference_models

CLASSES = ["tee", "trouser", "pullover", "dress"]


class Lookup(nn.Module):
    """Predicts preds[i] for the image whose pixels all equal i (a 0-1 float i / 255)."""

    def __init__(self, preds):
        super().__init__()
        self.preds = torch.as_tensor(preds)

    def forward(self, x):
        i = torch.round(x[:, 0, 0, 0] * 255).long()
        return nn.functional.one_hot(self.preds[i], len(CLASSES)).float()


#                 0  1  2  3  4  5  6  7  8  9  10
TRUTH = np.array([0, 1, 2, 3, 0, 0, 1, 3, 0, 2, 1])
PREDS = {0: [0, 1, 2, 3, 3, 3, 3, 0, 1, 0, 2],   # images 0-3 right; 4-7 all refs agree on a wrong class
         1: [0, 1, 2, 3, 3, 3, 3, 0, 2, 1, 2],   # 8, 9: all wrong, no agreement
         2: [0, 1, 2, 3, 3, 3, 3, 0, 3, 3, 1]}   # 10: one reference right
HISTORY = {0: [50.0, 60.0, 70.0, 71.0], 1: [50.0, 60.0, 60.2], 2: [40.0]}  # 0: still gaining at the cap of 4


def fake_trainer(*, seed, max_rounds, **_):
    hist = HISTORY[seed]
    return Lookup(PREDS[seed]), {"rounds": len(hist), "val_top1_per_round": hist, "val_top1": max(hist),
                                 "epochs_per_round": 1}


def pool() -> ArraySource:
    images = np.stack([np.full((32, 32, 3), i, np.uint8) for i in range(len(TRUTH))])
    return ArraySource("lookup", images, TRUTH, CLASSES)


def build(tmp_path, consensus="exclude"):
    from nsbench.bench.tasks.natural import ReferenceModel

    how = built_a.BuildSettings(epochs=1, max_rounds=4, min_gain=0.5, train_limit=None, val_limit=2, batch_size=4, lr=0.1,
                          pool_limit=None, seed=0, consensus=consensus)
    return built_a.build_a(pool(), pool(), 32, [ReferenceModel(seed=s) for s in (0, 1, 2)], how, train_reference=fake_trainer,
                     cache_dir=tmp_path, device=torch.device("cpu"))


def test_consensus_images_are_excluded_and_counted(tmp_path):
    folder, m = build(tmp_path)
    assert np.load(folder / "indices.npy").tolist() == [8, 9]
    assert m["n_all_wrong"] == 6 and m["n"] == 2
    c = m["consensus"]
    assert c["n"] == 4 and c["rate"] == pytest.approx(4 / 6) and c["rule"] == "exclude"
    assert c["by_true_class"] == {"tee": 2, "trouser": 1, "dress": 1}  # images 4, 5, 6, 7
    assert c["by_agreed_class"] == {"dress": 3, "tee": 1}
    assert "same wrong class" in m["rule"] and "not ImageNet-A" in m["what_it_measures"]
    # keep: the old rule, every image all references get wrong, still counted
    folder, m = build(tmp_path / "keep", consensus="keep")
    assert np.load(folder / "indices.npy").tolist() == [4, 5, 6, 7, 8, 9] and m["consensus"]["n"] == 4


def test_reference_rounds_and_a_binding_cap_are_recorded(tmp_path):
    _, m = build(tmp_path)
    refs = {r["seed"]: r for r in m["reference_results"]}
    assert [refs[s]["rounds"] for s in (0, 1, 2)] == [4, 3, 1]
    assert refs[0]["cap_binding"] and refs[0]["last_gain"] == pytest.approx(1.0)  # +1.0 >= 0.5 in the last round
    assert not refs[1]["cap_binding"] and not refs[2]["cap_binding"]  # plateaued; stopped before the cap
    assert m["round_cap_binding"] and m["round_cap_binding_for"] == ["test_resnet seed 0"]
    assert "stopped test_resnet seed 0 while still improving" in m["reference_training"]
    assert built_a.round_cap({"rounds": 1, "val_top1_per_round": [50.0]}, 1, 0.5)["cap_binding"]  # one round: no plateau seen


def test_meta_json_and_the_report_say_what_built_a_is(tiny_folder, tmp_path):
    """End to end through evaluate(): a trainer whose references agree on some wrong classes."""
    from nsbench import evaluate  # reference_trainer= replaces nsbench's own -A reference trainer
    from nsbench.report.render import render_report

    def h(x):
        return (torch.round(x.mean((1, 2, 3)) * 1e4).long() % 4)

    class Hashed(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            base = h(x)
            pred = torch.where(base % 2 == 0, base, (base + self.k) % 4)  # agree on even hashes, differ on odd
            return nn.functional.one_hot(pred, 4).float()

    def trainer(*, seed, max_rounds, **_):
        hist = [30.0, 40.0] if seed == 0 else [30.0, 30.1]
        return Hashed(seed), {"rounds": 2, "val_top1_per_round": hist, "val_top1": max(hist)}

    over = [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32", "clean.limit=8",
            "corruptions.enabled=false", "perturbations.enabled=false", "fgsm.enabled=false",
            "natural_adversarial.references=[{arch: test_resnet, seed: 0}, {arch: test_resnet, seed: 1}, "
            "{arch: test_resnet, seed: 2}]", "natural_adversarial.ref_max_rounds=2", "natural_adversarial.ref_train_limit=8",
            "natural_adversarial.ref_min_gain=0.5"]  # a trainer that does not say what stopped it: judged on min_gain
    out = tmp_path / "eval" / "hashed"  # evaluate writes OUT/LABEL/
    evaluate(Hashed(0), "quick", out.parent, info=ModelInfo(classes=[f"class{i}" for i in range(4)], input_size=32, label="hashed"),
             settings=ScoreSettings(overrides=over, cache_dir=tmp_path / "cache", device="cpu", reference_trainer=trainer))
    a = json.loads((out / "meta.json").read_text())["sets"]["natural_adversarial"]
    c = a["consensus"]
    assert c["n"] > 0 and c["rate"] == pytest.approx(c["n"] / a["n_all_wrong"]) and a["n"] == a["n_all_wrong"] - c["n"]
    assert sum(c["by_true_class"].values()) == c["n"] == sum(c["by_agreed_class"].values())
    refs = {r["seed"]: r for r in a["references"]}
    assert [refs[s]["rounds"] for s in (0, 1, 2)] == [2, 2, 2] and a["ref_max_rounds"] == 2
    assert refs[0]["cap_binding"] and not refs[1]["cap_binding"] and a["round_cap_binding"]
    html = render_report([out], tmp_path / "report").read_text()
    assert "built -A top-1" in html and "not robustness to natural adversarial examples" in html
    assert "stopped by the cap of 2 rounds while still improving" in html
    assert "likely label noise, excluded from the set" in html


def _source(name: str, n: int = 24) -> ArraySource:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    return ArraySource(name, rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), labels, [f"c{i}" for i in range(4)])


def _trainer(recipe: dict | None):
    """A stand-in trainer (always class 3, so a quarter of the pool is right) that may describe its recipe."""
    def train(**kw):
        class Three(torch.nn.Module):
            def forward(self, x):
                return torch.zeros(len(x), 4) + torch.tensor([0, 0, 0, 1.0])

        return Three(), {"val_top1": 25.0, "rounds": 1}

    if recipe is not None:
        train.recipe = lambda: recipe
    return train


def _build(trainer, cache):
    refs = [types.SimpleNamespace(arch="test_resnet", seed=0, kwargs={})]
    how = BuildSettings(epochs=1, max_rounds=2, min_gain=0.5, train_limit=None, val_limit=4, batch_size=8, lr=1e-3,
                        pool_limit=None, seed=0)
    return build_a(_source("train"), _source("pool"), 32, refs, how, train_reference=trainer, cache_dir=cache,
                   device=torch.device("cpu"))


def test_the_reference_trainers_recipe_is_part_of_the_a_key(tmp_path):
    a, ma = _build(_trainer({"optim": {"weight_decay": 0.05}}), tmp_path)
    again, _ = _build(_trainer({"optim": {"weight_decay": 0.05}}), tmp_path)
    other, mo = _build(_trainer({"optim": {"weight_decay": 0.1}}), tmp_path)
    assert a == again and other != a  # same recipe: reused; another recipe: another set
    assert ma["trainer"] == {"optim": {"weight_decay": 0.05}} and mo["trainer"]["optim"]["weight_decay"] == 0.1
    assert ma["n"] == 18  # the stand-in gets class 3 right: the other 18 of 24 pool images are kept
    plain, mp = _build(_trainer(None), tmp_path)  # a trainer that does not describe itself: keyed by its name
    assert plain not in (a, other) and mp["trainer"].endswith("_trainer.<locals>.train")


def test_nsbench_reference_recipe_holds_what_its_arguments_do_not():
    r = reference_models.train_reference.recipe()
    assert r["optim"]["optimizer"] == "adamw" and r["optim"]["warmup_epochs"] == reference_models.FIRST_ROUND_WARMUP_EPOCHS
    assert not {"epochs", "batch_size", "lr"} & set(r["optim"])  # the caller's arguments, keyed by build_a itself
    assert r["runtime"]["channels_last"] is True and str(reference_models.SEED_STRIDE) in r["round_seed"]


def test_references_stop_on_a_plateau_beyond_noise_not_on_one_small_gain(monkeypatch, tmp_path):
    """The stop rule: a round improves only when it beats the best round by more than the standard error of that
    paired difference; two rounds in a row without improving stop the reference; the best round's weights are kept.
    Stubbed rounds (held-out outcomes given per round) check it without training."""
    n = 400
    rng = np.random.default_rng(0)

    def outcomes(acc, base=None, gained=0, lost=0):
        """A round's held-out outcomes: `gained` images the base got wrong now right, `lost` right now wrong (rounds
        churn: their difference is what the standard error sees)."""
        if base is None:
            return rng.random(n) < acc
        out = base.copy()
        out[rng.choice(np.flatnonzero(~base), gained, replace=False)] = True
        out[rng.choice(np.flatnonzero(base), lost, replace=False)] = False
        return out

    r1 = outcomes(0.7)
    r2 = outcomes(0, r1, 50, 10)  # +10 points on 400 images: far beyond its standard error (~1.6)
    r3 = outcomes(0, r2, 22, 20)  # +0.5, standard error ~1.6: noise, not an improvement (the old rule's 0.5 passed it)
    r4 = outcomes(0, r2, 40, 10)  # +7.5 on the best: improves, patience resets
    r5 = outcomes(0, r4, 11, 10)  # +0.25 within noise, but the best held-out top-1 so far: its weights are kept
    r6 = r5.copy()                # +0: the second round in a row without improving -> stop after round 6
    rounds = iter([r1, r2, r3, r4, r5, r6, r6, r6])
    seen = []

    def fake_stage(model, stage):
        with torch.no_grad():
            model.weight.fill_(len(seen))  # the round's weights carry its number
        seen.append(stage.name)
        return model, {}

    monkeypatch.setattr(reference_models, "train_stage", fake_stage)
    monkeypatch.setattr(reference_models, "_held_out_correct", lambda model, val, device: next(rounds))
    job = types.SimpleNamespace(source=_source("train"), indices=np.arange(8), val_indices=np.arange(4), size=32,
                                epochs=1, batch_size=4, lr=1e-3, max_rounds=12, min_gain=0.0, workdir=tmp_path,
                                device=torch.device("cpu"), arch="test_resnet", seed=0)
    model, hist = reference_models._rounds(torch.nn.Linear(1, 1), job)
    assert len(seen) == 6 and hist["stopped_by"] == "plateau"
    assert hist["improved"] == [True, True, False, True, False, False]
    assert model.weight.item() == 4  # round 5's weights (the fifth stage call filled 4): the best held-out top-1
    gain, se = reference_models.improvement(r3, r2)
    assert gain == pytest.approx(0.5) and se == pytest.approx(100 * np.std(r3.astype(float) - r2, ddof=1) / np.sqrt(n))
    # a cap that stops a reference still improving is recorded as binding; a plateau never is
    assert built_a.round_cap({"rounds": 12, "val_top1_per_round": [1.0] * 12, "stopped_by": "cap"}, 12, 0.0)["cap_binding"]
    assert not built_a.round_cap({"rounds": 6, "val_top1_per_round": [1.0] * 6, "stopped_by": "plateau"}, 6, 0.0)["cap_binding"]


# ---- issue 31: build_a's numbers, keys and guards by hand (the fixture's TRUTH / PREDS above)

SPEC_KEYS = ("kind", "train", "train_fingerprint", "pool", "pool_fingerprint", "size", "references", "epochs",
             "train_limit", "batch_size", "lr", "pool_limit", "seed", "max_rounds", "min_gain", "val_limit", "trainer")


def table_trainer(preds: dict, calls: list | None = None):
    """References that predict preds[seed][i] for pool image i (Lookup), one plateaued round each; `calls` collects
    the seeds trained."""
    def train(*, seed, **_):
        if calls is not None:
            calls.append(seed)
        return Lookup(preds[seed]), {"rounds": 1, "val_top1_per_round": [50.0], "val_top1": 50.0}

    return train


def build_refs(tmp_path, seeds, consensus="exclude", trainer=fake_trainer):
    from nsbench.bench.tasks.natural import ReferenceModel

    how = BuildSettings(epochs=1, max_rounds=4, min_gain=0.5, train_limit=None, val_limit=2, batch_size=4, lr=0.1,
                        pool_limit=None, seed=0, consensus=consensus)
    return build_a(pool(), pool(), 32, [ReferenceModel(seed=s) for s in seeds], how, train_reference=trainer,
                   cache_dir=tmp_path, device=torch.device("cpu"))


def test_each_references_pool_top1_by_hand(tmp_path):
    """All three get images 0-3 right; reference 2 also image 10: 4, 4 and 5 of the 11 pool images."""
    _, m = build(tmp_path)
    top1 = {r["seed"]: r["pool_top1"] for r in m["reference_results"]}
    assert top1 == {0: pytest.approx(100 * 4 / 11), 1: pytest.approx(100 * 4 / 11), 2: pytest.approx(100 * 5 / 11)}
    assert m["n_pool"] == 11 and m["skipped_unreadable"] == 0


def test_two_references_that_agree_on_a_wrong_class_are_excluded_too(tmp_path):
    """References 0 and 1: both wrong on images 4-10; they name the same class on 4, 5, 6, 7 (3, 3, 3, 0) and 10 (2),
    not on 8 (1 / 2) and 9 (0 / 1). Two references are enough for the consensus rule."""
    folder, m = build_refs(tmp_path, (0, 1))
    assert np.load(folder / "indices.npy").tolist() == [8, 9] and m["n"] == 2 and m["n_all_wrong"] == 7
    c = m["consensus"]
    assert c["rule"] == "exclude" and c["n_references"] == 2 and c["n"] == 5 and c["rate"] == pytest.approx(5 / 7)
    # by count, most first (the report shows the first three); ties in class order
    assert list(c["by_true_class"].items()) == [("tee", 2), ("trouser", 2), ("dress", 1)]  # truths 0, 0, 1, 3, 1
    assert list(c["by_agreed_class"].items()) == [("dress", 3), ("tee", 1), ("pullover", 1)]  # agreed 3, 3, 3, 0, 2
    assert m["rule"] == ("kept: pool images that every reference model misclassifies, except those on which all of "
                         "them name the same wrong class (likely label noise)")


def test_one_reference_keeps_every_image_it_gets_wrong(tmp_path):
    """Reference 2 alone: wrong on images 4-9 (right on 0-3 and 10); no consensus is possible with one model."""
    folder, m = build_refs(tmp_path, (2,))
    assert np.load(folder / "indices.npy").tolist() == [4, 5, 6, 7, 8, 9]
    assert m["rule"] == "kept: pool images that every reference model misclassifies"
    c = m["consensus"]
    assert c["rule"] == "not applicable (one reference model)" and c["n"] == 0 and c["rate"] == 0.0
    assert c["by_true_class"] == {} and c["by_agreed_class"] == {}


def test_consensus_keep_states_the_plain_rule(tmp_path):
    _, m = build(tmp_path, consensus="keep")
    assert m["rule"] == "kept: pool images that every reference model misclassifies"
    assert m["consensus"]["rule"] == "keep" and m["n"] == 6


def test_a_keep_set_keeps_the_key_it_had_before_the_consensus_rule(tmp_path):
    """The cache key is the spec's (cache.key_of); `consensus` joined the spec with the rule, so a keep set's spec is
    the old one without it and an exclude set's has it."""
    from nsbench.bench import cache

    keep, mk = build(tmp_path, consensus="keep")
    excl, me = build(tmp_path, consensus="exclude")
    assert keep.name == f"A-{cache.key_of({k: mk[k] for k in SPEC_KEYS})}"
    assert excl.name == f"A-{cache.key_of({**{k: me[k] for k in SPEC_KEYS}, 'consensus': 'exclude'})}"


def test_a_single_kept_image_is_a_set(tmp_path):
    truth = TRUTH.tolist()
    preds = {0: [1] + truth[1:]}  # wrong on image 0 only
    folder, m = build_refs(tmp_path, (0,), trainer=table_trainer(preds))
    assert np.load(folder / "indices.npy").tolist() == [0] and m["n"] == 1 and m["per_class"] == [1, 0, 0, 0]


def test_no_image_to_keep_is_an_empty_set_saying_why(tmp_path):
    truth = TRUTH.tolist()
    with pytest.raises(built_a.EmptySet, match=r"^DATASET-A: no pool image is misclassified by every reference "
                                               r"model; nothing to keep$"):
        build_refs(tmp_path / "right", (0,), trainer=table_trainer({0: truth}))
    same = [3, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0]  # wrong everywhere, both references alike: all consensus
    with pytest.raises(built_a.EmptySet, match=r"^DATASET-A: no pool image is misclassified by every reference model "
                                               r"without their agreeing on the wrong class; nothing to keep$"):
        build_refs(tmp_path / "agree", (0, 1), trainer=table_trainer({0: same, 1: same}))


def test_a_built_set_is_reused_and_a_damaged_one_rebuilt(tmp_path):
    calls = []
    trainer = table_trainer(PREDS, calls)
    folder, m = build_refs(tmp_path, (0, 1, 2), trainer=trainer)
    assert calls == [0, 1, 2]
    again, m2 = build_refs(tmp_path, (0, 1, 2), trainer=trainer)
    assert again == folder and m2 == m and calls == [0, 1, 2]  # reused: no reference trained again
    (folder / "labels.npy").unlink()
    rebuilt, m3 = build_refs(tmp_path, (0, 1, 2), trainer=trainer)
    assert rebuilt == folder and calls == [0, 1, 2, 0, 1, 2] and m3["n"] == 2
    assert np.load(folder / "labels.npy").tolist() == [0, 2]  # images 8 and 9


def test_an_unreadable_pool_image_is_skipped_and_counted(tmp_path):
    """A folder pool of 4 classes x 2 images and one file that is no image (class0/zz.png); one reference that
    always says class 3: right on the 2 readable class-3 images of 8, wrong on the other 6, which are kept."""
    from helpers import write_folder
    from nsbench.data.sources import scan_folder

    root = write_folder(tmp_path / "data", 4, {"pool": 2}) / "pool"
    (root / "class0" / "zz.png").write_bytes(b"not a png")
    src = scan_folder(root, "pool")
    assert len(src) == 9
    refs = [types.SimpleNamespace(arch="test_resnet", seed=0, kwargs={})]
    how = BuildSettings(epochs=1, max_rounds=2, min_gain=0.5, train_limit=None, val_limit=2, batch_size=4, lr=1e-3,
                        pool_limit=None, seed=0)
    folder, m = build_a(src, src, 32, refs, how, train_reference=_trainer(None), cache_dir=tmp_path / "cache",
                        device=torch.device("cpu"))
    assert m["skipped_unreadable"] == 1 and m["n_pool"] == 9 and m["n_all_wrong"] == 6 and m["n"] == 6
    assert m["reference_results"][0]["pool_top1"] == pytest.approx(100 * 2 / 8)
    assert np.load(folder / "labels.npy").tolist() == [0, 0, 1, 1, 2, 2]


def test_train_val_split_by_hand():
    """Held out: min(val_limit, max(1, n // 10)) images, the first of a permutation seeded [seed, 17]; training: the
    rest, the first train_limit of them; both sorted. The split is not in the set's key (only its inputs are), so
    the rule itself is pinned here."""
    def split(n, train_limit, val_limit, seed):
        perm = np.random.default_rng([seed, 17]).permutation(n)
        n_val = min(val_limit, max(1, n // 10))
        rest = perm[n_val:]
        return np.sort(rest[:train_limit] if train_limit is not None else rest), np.sort(perm[:n_val])

    for n, train_limit, val_limit, seed, n_val in ((12, None, 5, 3, 1), (100, None, 50, 0, 10), (100, 30, 4, 1, 4),
                                                    (100, 90, 50, 2, 10)):
        train, val = built_a._train_val(n, train_limit, val_limit, seed)
        want_train, want_val = split(n, train_limit, val_limit, seed)
        assert len(val) == n_val and np.array_equal(val, want_val) and np.array_equal(train, want_train)
        assert not set(train) & set(val)


def test_a_last_round_gaining_exactly_min_gain_is_still_improving():
    """round_cap's docstring: binding when every round was used and the last "still gained at least `min_gain`"."""
    assert built_a.round_cap({"rounds": 2, "val_top1_per_round": [50.0, 50.5]}, 2, 0.5)["cap_binding"]
    assert not built_a.round_cap({"rounds": 2, "val_top1_per_round": [50.0, 50.25]}, 2, 0.5)["cap_binding"]
    assert not built_a.round_cap({"rounds": 1, "val_top1_per_round": [50.0, 50.5]}, 2, 0.5)["cap_binding"]


def test_the_official_masks_are_the_reference_indices():
    """hendrycks/natural-adv-examples eval.py `indices_in_1k` begins 6, 11, 13, 15, 17 (n01498041 stingray first);
    hendrycks/imagenet-r eval.py's begins 1, 2, 4, 6, 8 (n01443537 goldfish first)."""
    a_idx, a_wnids = built_a.mask_for("imagenet-a")
    r_idx, r_wnids = built_a.mask_for("imagenet-r")
    assert a_idx[:5] == (6, 11, 13, 15, 17) and a_wnids[0] == "n01498041" and len(a_idx) == 200
    assert r_idx[:5] == (1, 2, 4, 6, 8) and r_wnids[0] == "n01443537" and len(r_idx) == 200
