"""One training stage (training/stage.py): the student trains in train mode with input and model noise; the EMA of
the weights is what gets checkpointed; the losses and their weights by value (soft cross-entropy, label-smoothed
hard targets, the unlabeled weight, recomputed from the logits the student returned); a non-finite loss or
validation logit stops training, keeping the last good state. The loop by value (issue 31): each epoch's seeds
(seed * 7919 + epoch), StageConfig's defaults, DDP and SyncBatchNorm under a one-rank group, the EMA across a
resume, skipped images, the validation schedule (eval_every, the quarter mark, the last epoch), grad clipping,
warmup steps, images and the EMA decay counted over two ranks, gradients set to None, the noise in a persistent
loader worker."""
from __future__ import annotations

import dataclasses
import io
import math
import os
import random
import re
import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers import (ID_TEACHER, N_LAB, C, RecordingStudent, id_source, id_teacher_probs, id_teacher_store,
    train_on_store)
from nsbench.checkpoint import safe_load
from nsbench.config import NSConfig, OptimConfig, RuntimeConfig, TrainConfig
from nsbench.data.augment import to_float
from nsbench.data.loaders import ImageDataset, stack_uint8
from nsbench.data.sources import ArraySource, Source, UnreadableImage
from nsbench.data.targets import dense_targets
from nsbench.data.transforms import TrainAugment, prepare_batch
from nsbench.models import ModelSpec, build_model
from nsbench.training.stage import (StageConfig, make_batches, run_epoch, setup, soft_cross_entropy, train_stage,
    unlabeled_weight)
from nsbench.training.validate import ValSet
from nsbench.utils import NsbenchError


def test_student_trains_in_train_mode_with_input_and_model_noise(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 32, 32, 3), dtype=np.uint8)
    src = ArraySource("toy", images, rng.integers(0, 3, 32), ["a", "b", "c"])
    spec = ModelSpec("test_efficientnet", num_classes=3, drop_rate=0.3, drop_path_rate=0.2)
    model = build_model(spec)
    # what dropout and stochastic depth do to the student: test_the_students_noise_does_what_it_says (on test_resnet:
    # test_efficientnet's DropPath modules sit in blocks without a residual branch and never act)
    seen = []
    model.net.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].detach().clone())))
    aug = TrainAugment(32, True, 2, 9, 0.5, random_crop_pad=2)
    labeled = ImageDataset(src, np.arange(8), 32, augment=aug)
    soft = dense_targets(np.zeros((24, 1), np.int32), np.ones((24, 1), np.float32), 3)
    pseudo = ImageDataset(src, np.arange(8, 32), 32, targets=soft, augment=aug)
    train_stage(model, StageConfig(name="t", optim=OptimConfig(epochs=1, batch_size=4, warmup_epochs=0),
                runtime=RuntimeConfig(device="cpu"), labeled=labeled, pseudo=pseudo, ratio=3, unlabeled_weight=1.0,
                val=None, device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))
    assert seen and all(training for training, _ in seen)
    assert all(len(x) == 16 for _, x in seen)  # 4 labeled + 4 * 3 pseudo-labeled per step
    clean = to_float(stack_uint8(prepare_batch(images, 32)))
    normalised_clean = (clean - model.mean) / model.std
    x0 = seen[0][1]
    # every input differs from every clean image: augmentation was applied
    dists = torch.cdist(x0.flatten(1), normalised_clean.flatten(1)).min(1).values
    assert (dists > 1e-3).all()


def test_the_students_noise_does_what_it_says(tmp_path, monkeypatch):
    """What each kind of noise does to a student trained through train_stage (dropout 0.3, stochastic depth 0.5,
    RandAugment 2 x 9), seen from hooks, against timm's definitions written out:
    - dropout (timm ResNet.forward_head: F.dropout on the pooled features): in train mode about 30% of the
      classifier's inputs are 0 and the others are the pooled features / 0.7; in eval mode (validation) the
      classifier gets the pooled features untouched;
    - stochastic depth (timm drop_path): per sample, a residual branch is either all zeros or the branch / (1 - p),
      whole branches dropped at about each block's own rate p; the identity in eval mode;
    - RandAugment changes the pixels of a batch's images and not their labels or soft targets.
    The teacher that pseudo-labels does so in eval mode, un-noised: test_pseudo_labels.py
    (test_noise_does_not_leak_into_pseudo_labeling)."""
    import nsbench.training.stage as stage_module
    from nsbench.training.validate import ValSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 40)
    src = ArraySource("toy", images, labels, ["a", "b", "c"])
    # test_resnet: test_efficientnet's DropPath modules never run (its blocks with one have no residual branch)
    model = build_model(ModelSpec("test_resnet", num_classes=3, drop_rate=0.3, drop_path_rate=0.5))
    net = model.net
    pooled, head_in, branches, batches, losses = [], [], [], [], []
    net.global_pool.register_forward_hook(lambda m, args, out: pooled.append(out.detach().clone()))
    net.get_classifier().register_forward_pre_hook(
        lambda m, args: head_in.append((m.training, args[0].detach().clone())))
    from timm.layers import DropPath

    for m in net.modules():
        if isinstance(m, DropPath):
            m.register_forward_hook(lambda m, args, out: branches.append(
                (m.training, m.drop_prob, args[0].detach().clone(), out.detach().clone())))
    # timm's ResNet: block i of n takes drop_path_rate * i / (n - 1) (test_resnet: 4 blocks, the first at 0)
    rates = sorted(m.drop_prob for m in net.modules() if isinstance(m, DropPath))
    assert rates == pytest.approx([0.5 * i / 3 for i in (1, 2, 3)])
    aug = TrainAugment(32, True, 2, 9, 0.5)  # RandAugment only: no crop shift, no flip
    real_on_batch = aug.on_batch

    def on_batch(x, gen, natural=None):
        out = real_on_batch(x, gen, natural)
        batches.append((x.clone(), out.clone()))
        return out

    aug.on_batch = on_batch
    real_loss = stage_module.batch_loss
    monkeypatch.setattr(stage_module, "batch_loss", lambda logits, b, cfg: (
        losses.append((b.y.clone(), b.soft.clone(), b.n_labeled)), real_loss(logits, b, cfg))[1])
    soft = dense_targets(np.stack([np.arange(24) % 3, (np.arange(24) + 1) % 3], 1),
                         np.tile([0.7, 0.3], (24, 1)).astype(np.float32), 3)  # a different target per image
    labeled = ImageDataset(src, np.arange(8), 32, augment=aug)
    pseudo = ImageDataset(src, np.arange(8, 32), 32, targets=soft, augment=aug)
    val = ValSet(src, np.arange(32, 40), 32, batch_size=8)
    train_stage(model, StageConfig(name="t", optim=OptimConfig(epochs=2, batch_size=4, warmup_epochs=0),
                runtime=RuntimeConfig(device="cpu"), labeled=labeled, pseudo=pseudo, ratio=3, unlabeled_weight=1.0,
                val=val, device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))

    # dropout
    assert len(pooled) == len(head_in) and [t for t, _ in head_in].count(True) == 4  # 2 epochs x 2 steps
    dropped = kept = 0
    for p, (training, h) in zip(pooled, head_in):
        p = p.flatten(1)
        if not training:
            assert torch.equal(h, p)  # validation: no dropout
            continue
        live = p != 0  # features the ReLU left at 0 read 0 either way: counted neither way
        zero = (h == 0) & live
        torch.testing.assert_close(h[~zero], p[~zero] / 0.7, rtol=1e-5, atol=1e-7)
        dropped, kept = dropped + int(zero.sum()), kept + int((live & ~zero).sum())
    assert any(not t for t, _ in head_in)
    n = dropped + kept
    assert n >= 512 and abs(dropped / n - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n), (dropped, n)
    # stochastic depth
    count, expect, var = 0, 0.0, 0.0
    for training, p, x, y in branches:
        if not training:
            assert torch.equal(y, x)
            continue
        assert p > 0
        live = x.flatten(1).ne(0).any(1)  # timm zero-initialises each branch's last BN: 0 until the first update
        for xi, yi in zip(x[live], y[live]):
            if torch.all(yi == 0):
                count += 1
            else:
                torch.testing.assert_close(yi, xi / (1 - p), rtol=1e-5, atol=1e-7)  # the whole branch, scaled
        assert torch.equal(y[~live], x[~live])
        expect, var = expect + int(live.sum()) * p, var + int(live.sum()) * p * (1 - p)
    assert count > 0 and abs(count - expect) < 5 * math.sqrt(var), (count, expect)
    # RandAugment: pixels change, labels and soft targets stay those of the images
    clean = stack_uint8(prepare_batch(images, 32)).numpy()
    assert len(batches) == len(losses) == 4
    for (before, after), (y, target, n_lab) in zip(batches, losses):
        assert after.shape == before.shape and after.dtype == before.dtype
        changed = [not torch.equal(a, b) for a, b in zip(after, before)]
        assert sum(changed) >= len(changed) // 2, changed
        ids = np.array([next(i for i in range(40) if np.array_equal(clean[i], img)) for img in before.numpy()])
        assert n_lab == 4 and (ids[:4] < 8).all() and ((ids[4:] >= 8) & (ids[4:] < 32)).all()
        assert y.tolist() == labels[ids[:4]].tolist()
        np.testing.assert_array_equal(target.numpy(), soft[ids[4:] - 8])


def test_ema_of_weights_is_what_gets_checkpointed(tmp_path):
    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2, ["a", "b"])
    model = build_model(ModelSpec("test_efficientnet", num_classes=2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    final, _ = train_stage(model, StageConfig(name="ema", optim=OptimConfig(epochs=2, batch_size=4, warmup_epochs=0, ema_decay=0.5),
                           runtime=RuntimeConfig(device="cpu"), labeled=ImageDataset(src, np.arange(16), 32), pseudo=None,
                           ratio=0, unlabeled_weight=0.0, val=None, device=torch.device("cpu"),
                           state_path=tmp_path / "s.pt", seed=0))
    assert final is not model  # the EMA copy, not the raw weights
    w = "net.classifier.weight"
    assert not torch.equal(final.state_dict()[w], model.state_dict()[w])
    assert not torch.equal(final.state_dict()[w], start[w])
    assert torch.load(tmp_path / "s.pt", weights_only=True)["ema"] is not None  # resumable with its EMA


def test_ema_with_the_tf_ramp_is_mostly_the_weights_after_one_step(tmp_path):
    """ema_warmup: the first update decays by min(0.9999, 2 / 11) (TF's num_updates ramp at global_step 1), so the
    average is 9/11 the trained weights and 2/11 the starting ones, not 0.9999 the random init."""
    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 2, ["a", "b"])
    model = build_model(ModelSpec("test_efficientnet", num_classes=2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    optim = OptimConfig(epochs=1, batch_size=8, warmup_epochs=0, ema_decay=0.9999, ema_warmup=True)
    final, _ = train_stage(model, StageConfig(name="ema", optim=optim, runtime=RuntimeConfig(device="cpu"),
                           labeled=ImageDataset(src, np.arange(8), 32), pseudo=None, ratio=0, unlabeled_weight=0.0,
                           val=None, device=torch.device("cpu"), state_path=tmp_path / "s.pt", seed=0))
    w = "net.classifier.weight"
    trained = model.state_dict()[w]
    assert not torch.equal(trained, start[w])  # one step moved the weights
    torch.testing.assert_close(final.state_dict()[w], 2 / 11 * start[w] + 9 / 11 * trained)


def _float_state(m: nn.Module) -> dict[str, torch.Tensor]:
    """Every floating-point entry of the state (parameters and BN running statistics: ModelEmaV3 averages both)."""
    return {k: v.detach().double().clone() for k, v in m.state_dict().items() if v.is_floating_point()}


def _weights_after_every_step(tmp_path, optim: OptimConfig, n_images: int):
    """Train a tiny model through train_stage; return (its weights at the start, its weights after each optimizer
    step, the EMA copy train_stage returned). The weights after step s are read when the forward pass of step s + 1
    begins (a forward pre-hook), the last from the model at the end."""
    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (n_images, 32, 32, 3), dtype=np.uint8), np.arange(n_images) % 2,
                      ["a", "b"])
    model = build_model(ModelSpec("test_efficientnet", num_classes=2))
    start = _float_state(model)
    before_step = []
    hook = model.register_forward_pre_hook(lambda m, args: before_step.append(_float_state(m)))
    final, _ = train_stage(model, StageConfig(name="ema", optim=optim, runtime=RuntimeConfig(device="cpu"),
                           labeled=ImageDataset(src, np.arange(n_images), 32), pseudo=None, ratio=0,
                           unlabeled_weight=0.0, val=None, device=torch.device("cpu"),
                           state_path=tmp_path / "s.pt", seed=0))
    hook.remove()
    return start, before_step[1:] + [_float_state(model)], _float_state(final)


def _ema_by_hand(start: dict, after: list[dict], decays: list[float]) -> dict:
    """e_{-1} = the starting weights; e_s = d_s e_{s-1} + (1 - d_s) w_s after every step s."""
    e = dict(start)
    for w, d in zip(after, decays, strict=True):
        e = {k: d * e[k] + (1 - d) * w[k] for k in e}
    return e


def _assert_state_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_ema_follows_the_recurrence_over_steps_and_epochs(tmp_path):
    """ema_decay 0.9, 2 epochs x 3 steps: timm's rule (decay 0 on global steps 0 and 1, then 0.9) applied to the
    weights after every step, e_s = d_s e_{s-1} + (1 - d_s) w_s, recomputed here in float64 from those weights. At
    0.9, the swapped recurrence (1 - d) e + d w, a decay counted from each epoch's first step, or one step's weights
    skipped all give other numbers (at 0.5 the first would not)."""
    optim = OptimConfig(epochs=2, batch_size=4, warmup_epochs=0, lr=0.01, ema_decay=0.9)
    start, after, ema = _weights_after_every_step(tmp_path, optim, 12)
    assert len(after) == 6  # 12 images / 4 per step, 2 epochs
    w = "net.classifier.weight"
    assert all(not torch.equal(a[w], b[w]) for a, b in zip([start, *after], after))  # every step moved the weights
    decays = [0.0, 0.0, 0.9, 0.9, 0.9, 0.9]  # global steps 0..5; epoch 2 starts at step 3
    _assert_state_close(ema, _ema_by_hand(start, after, decays))
    # the check has teeth: the plain weights, and the averages of the wrong rules, are far from it
    for wrong in ([0.0, 0.0, 0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.9, 0.0, 0.0, 0.9], [0.0, 0.9, 0.9, 0.9, 0.9, 0.9]):
        assert not torch.allclose(ema[w], _ema_by_hand(start, after, wrong)[w], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ema[w], after[-1][w], rtol=1e-5, atol=1e-6)


def test_ema_with_the_tf_ramp_and_a_reference_batch_follows_the_recurrence(tmp_path):
    """ema_warmup with ema_reference_batch 8 at 4 images a step: the decay of global step s is
    min(ema_decay, (1 + n) / (10 + n)) ** (4 / 8) with n = (s + 1) * 4 / 8 (TF's num_updates ramp, counted in steps
    of the reference's 8 images), written out here; ema_decay 0.35 is reached at s = 7 (n = 4: 5 / 14 > 0.35), so
    the 8 steps (2 epochs x 4) cover the ramp, the cap and an epoch boundary."""
    optim = OptimConfig(epochs=2, batch_size=4, warmup_epochs=0, lr=0.01, ema_decay=0.35, ema_warmup=True,
                        ema_reference_batch=8)
    start, after, ema = _weights_after_every_step(tmp_path, optim, 16)
    assert len(after) == 8
    ramp = [(1 + n) / (10 + n) for n in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)]
    assert ramp[-2] < 0.35 < ramp[-1]
    decays = [min(0.35, r) ** 0.5 for r in ramp]
    _assert_state_close(ema, _ema_by_hand(start, after, decays))
    w = "net.classifier.weight"
    per_step = [min(0.35, (2 + s) / (11 + s)) for s in range(8)]  # no reference batch: n = s + 1, no power
    assert not torch.allclose(ema[w], _ema_by_hand(start, after, per_step)[w], rtol=1e-5, atol=1e-6)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


# ---------------------------------------------------------------- losses by value

def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    ls = log_softmax(logits.double().numpy())
    expect = -np.mean([(target[0].numpy() * ls[0]).sum(), math.log(1 / 3)])
    assert float(soft_cross_entropy(logits, target)) == pytest.approx(expect, abs=1e-6)
    # a one-hot target is the plain cross-entropy
    hard = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert float(soft_cross_entropy(logits, hard)) == pytest.approx(
        float(nn.functional.cross_entropy(logits, torch.tensor([2, 1]))), abs=1e-6)
    # bf16 logits are scored in float32
    assert soft_cross_entropy(logits.bfloat16(), target).dtype == torch.float32


@pytest.mark.parametrize("loss_weighting,ratio,weight,expect", [("ratio", 3, 1.0, 3.0), ("ratio", 2, 0.5, 1.0),
                                                                ("paper", 3, 2.0, 2.0)])
def test_unlabeled_weight(loss_weighting, ratio, weight, expect):
    cfg = TrainConfig(ns=NSConfig(unlabeled_ratio=ratio, unlabeled_loss_weight=weight, loss_weighting=loss_weighting))
    assert unlabeled_weight(cfg) == expect


@pytest.mark.parametrize("soft", [True, False])
def test_the_training_loss_is_the_weighted_sum_by_value(tmp_path, soft):
    """Epoch loss = mean over steps (weighted by batch size) of CE_smoothed(labeled) + w x softCE(pseudo), each
    recomputed here from the logits the student returned and the ids it was given."""
    src, _ = id_teacher_store(tmp_path, soft=soft)
    ls, ps, w = 0.1, 0.0 if soft else 0.2, 3.0
    seen, row = train_on_store(tmp_path, src, smoothing=ls, pseudo_smoothing=ps, weight=w)
    labels = src.labels
    total, count = 0.0, 0
    for ids, z in seen:
        lab, uns = ids < N_LAB, ids >= N_LAB
        lsm = log_softmax(z)
        # torch's label smoothing: (1 - e) CE(y) + e mean_j(-log p_j)
        ce_l = np.mean((1 - ls) * -lsm[lab, labels[ids[lab]]] + ls * -lsm[lab].mean(1))
        if soft:
            t = np.stack([id_teacher_probs(i) for i in ids[uns]])
        else:
            t = np.eye(C)[[int(np.argmax(ID_TEACHER[i])) for i in ids[uns]]]
        t = t * (1 - ps) + ps / C
        ce_u = np.mean(-(t * lsm[uns]).sum(1))
        total += (ce_l + w * ce_u) * len(ids)
        count += len(ids)
    assert row["train_loss"] == pytest.approx(total / count, rel=1e-5)
    assert row["skipped"] == 0 and row["steps"] == 2
    assert row["images"] == 30 and row["images_per_s"] == pytest.approx(row["images"] / row["seconds"], rel=1e-6)


def test_the_loss_of_a_one_image_epoch(tmp_path):
    """One labeled image, no pseudo-labels: the epoch's loss is that image's cross-entropy (seen = 1)."""
    src = id_source()
    model = RecordingStudent()
    _, hist = train_stage(model, StageConfig(name="one", optim=OptimConfig(epochs=1, batch_size=1, warmup_epochs=0),
                                             runtime=RuntimeConfig(device="cpu", channels_last=False),
                                             labeled=ImageDataset(src, np.array([3]), 32), unlabeled_weight=1.0,
                                             device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))
    (ids, z), = model.seen
    assert ids.tolist() == [3]
    assert hist[0]["train_loss"] == pytest.approx(-log_softmax(z)[0, src.labels[3]], rel=1e-5)


# NaN loss (issue 13, probe 4)

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


@pytest.mark.usefixtures("fresh_log_handlers")
def test_non_finite_validation_logits_stop_training_naming_iteration_epoch_and_lr(tmp_path):
    from nsbench.config import OptimConfig, RuntimeConfig
    from nsbench.data.loaders import ImageDataset
    from nsbench.data.sources import ArraySource
    from nsbench.training.optim import lr_at
    from nsbench.training.stage import StageConfig, train_stage
    from nsbench.training.validate import ValSet

    rng = np.random.default_rng(0)
    src = ArraySource("toy", rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2, ["a", "b"])
    model = build_model(ModelSpec("test_resnet", num_classes=2))
    # the training loss stays finite (as with lr=1e4: 2.9e9) while the weights already give NaN in eval mode
    model.register_forward_hook(lambda m, a, out: out if m.training else out * float("nan"))
    lr = f"{lr_at(1, 4, 0, 0.01):.4g}"  # the schedule's rate at the epoch's last step (2 steps per epoch, 4 in all)
    with pytest.raises(NsbenchError, match=rf"^iter1: iteration 1, epoch 1/2, learning rate {re.escape(lr)}: the "
                                           r"validation logits are not finite \(NaN or inf\) for 16 of 16 images"):
        train_stage(model, StageConfig(name="iter1", optim=OptimConfig(epochs=2, batch_size=8, warmup_epochs=0, lr=0.01),
                                       runtime=RuntimeConfig(device="cpu", channels_last=False),
                                       labeled=ImageDataset(src, np.arange(16), 32), val=ValSet(src, np.arange(16), 32),
                                       device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))
    assert not (tmp_path / "state.pt").exists()  # the diverged epoch was not saved as a good state


# ---------------------------------------------------------------- issue 31: the stage's loop by value

def _stage(tmp_path, labeled: ImageDataset, optim: OptimConfig | None = None, state: str = "state.pt",
           **kw) -> StageConfig:
    """A CPU stage on `labeled` (one epoch of 4-image steps, no warmup, no EMA unless `optim` says), its state in
    tmp_path / state."""
    return StageConfig(name="s", optim=optim or OptimConfig(epochs=1, batch_size=4, warmup_epochs=0),
                       runtime=RuntimeConfig(device="cpu", channels_last=False), labeled=labeled,
                       device=torch.device("cpu"), state_path=tmp_path / state, **{"seed": 0, **kw})


def _ids(n: int) -> ImageDataset:
    return ImageDataset(id_source(), np.arange(n), 32)


class SeedProbe(RecordingStudent):
    """A RecordingStudent that draws from Python's, NumPy's and torch's global generators at every forward pass."""

    def __init__(self):
        super().__init__()
        self.draws: list[tuple[float, float, float]] = []

    def forward(self, x):
        self.draws.append((random.random(), float(np.random.random_sample()), float(torch.rand(()))))
        return super().forward(x)


def test_every_epoch_reseeds_python_numpy_and_torch_from_seed_times_7919_plus_epoch(tmp_path):
    """stage.py: each epoch reseeds Python, NumPy and torch from seed * SEED_STRIDE + epoch, SEED_STRIDE = 7919 (a
    prime), NumPy's legacy seed from that number mod 2**32 (the 32 bits it takes). Seed 10**6 puts the number between
    2**32 and 2**33, where it is not itself a valid NumPy seed; one step per epoch, so each epoch's first draws are
    the draws right after its seeding."""
    model = SeedProbe()
    train_stage(model, _stage(tmp_path, _ids(4), OptimConfig(epochs=3, batch_size=4, warmup_epochs=0), seed=10**6))
    assert len(model.draws) == 3
    for epoch, got in enumerate(model.draws):
        s = 10**6 * 7919 + epoch
        assert 2**32 < s < 2**33
        want = (random.Random(s).random(), np.random.RandomState(s - 2**32).random_sample(),
                float(torch.rand((), generator=torch.Generator().manual_seed(s))))
        assert got == want, epoch


def test_stage_config_defaults_no_pseudo_labeled_rows_and_no_weight_on_them(tmp_path):
    """StageConfig's defaults: ratio 0 (a pseudo set given without a ratio puts no pseudo-labeled image in any step)
    and unlabeled_weight 0.0 (pseudo-labeled rows in the batch, the loss is the labeled rows' cross-entropy alone).
    The driver (stage_config) passes both; reference_models trains without a pseudo set."""
    src = id_source()
    pseudo = ImageDataset(src, np.arange(N_LAB, 22), 32, targets=np.full((22 - N_LAB, C), 1 / C, np.float32))
    alone = RecordingStudent()
    train_stage(alone, _stage(tmp_path, _ids(4), pseudo=pseudo, state="a.pt"))
    (ids, _), = alone.seen
    assert sorted(ids.tolist()) == [0, 1, 2, 3]
    mixed = RecordingStudent()
    _, hist = train_stage(mixed, _stage(tmp_path, _ids(4), pseudo=pseudo, ratio=2, state="b.pt"))
    (ids, z), = mixed.seen
    lab = ids < 4
    assert lab.sum() == 4 and (ids[~lab] >= N_LAB).sum() == 8  # 4 labeled + 2 x 4 pseudo-labeled
    assert hist[0]["train_loss"] == pytest.approx(-log_softmax(z)[lab, src.labels[ids[lab]]].mean(), rel=1e-5)


def _has_sync_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())


def test_under_torch_distributed_a_stage_is_ddp_by_default_with_batchnorm_kept_on_a_cpu(tmp_path):
    """Under a (one-rank, gloo) process group a stage is DistributedDataParallel unless StageConfig.distributed is
    False (reference_models trains alone; the driver leaves the default); on a CPU, DDP gets no device_ids (torch:
    only single-device GPU modules take them) and sync_bn (default true) does nothing: SyncBatchNorm runs on GPUs
    only. Alone, no DDP and no SyncBatchNorm either."""
    import torch.distributed as dist

    cfg = _stage(tmp_path, _ids(4))
    assert cfg.runtime.sync_bn
    models = [build_model(ModelSpec("test_resnet", num_classes=C)) for _ in range(3)]
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        ddp = setup(models[0], cfg)
        alone_in_group = setup(models[1], dataclasses.replace(cfg, distributed=False))
    finally:
        dist.destroy_process_group()
    alone = setup(models[2], cfg)
    assert ddp.distributed and isinstance(ddp.forward, nn.parallel.DistributedDataParallel)
    assert ddp.forward.module is models[0] and ddp.forward.device_ids is None
    for t, m in ((alone_in_group, models[1]), (alone, models[2])):
        assert not t.distributed and t.forward is m and (t.rank, t.world) == (0, 1)
    for m in models:
        assert not _has_sync_bn(m) and any(isinstance(x, nn.BatchNorm2d) for x in m.modules())


class Killed(Exception):
    pass


class KilledAt(RecordingStudent):
    """A RecordingStudent whose run is killed (an exception) when its `n`th forward pass begins."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        if len(self.seen) + 1 == self.n:
            raise Killed
        return super().forward(x)


def test_a_resumed_stage_continues_its_ema_and_one_without_ema_keeps_the_raw_weights(tmp_path):
    """Killed at the start of epoch 2 and resumed, a stage ends with the EMA of an uninterrupted one (the saved EMA
    is reloaded, not restarted from the fresh model's weights); a stage with ema_decay 0 (no EMA) resumed from that
    state ignores its EMA and returns the raw model, whose weights are the resumed EMA run's raw weights."""
    import shutil

    optim = OptimConfig(epochs=2, batch_size=4, warmup_epochs=0, lr=0.01, ema_decay=0.9)
    whole, _ = train_stage(RecordingStudent(), _stage(tmp_path, _ids(12), optim, state="whole.pt"))
    with pytest.raises(Killed):
        train_stage(KilledAt(4), _stage(tmp_path, _ids(12), optim, state="ema.pt"))  # 3 steps per epoch
    assert safe_load(tmp_path / "ema.pt")["epoch"] == 0 and safe_load(tmp_path / "ema.pt")["ema"] is not None
    shutil.copy(tmp_path / "ema.pt", tmp_path / "plain.pt")
    raw = RecordingStudent()
    resumed, hist = train_stage(raw, _stage(tmp_path, _ids(12), optim, state="ema.pt"))
    assert len(hist) == 2 and len(raw.seen) == 3  # epoch 2 only
    _assert_state_close(_float_state(resumed), _float_state(whole))
    plain = RecordingStudent()
    final, hist = train_stage(plain, _stage(tmp_path, _ids(12), dataclasses.replace(optim, ema_decay=0.0),
                                            state="plain.pt"))
    assert final is plain and len(hist) == 2 and len(plain.seen) == 3
    _assert_state_close(_float_state(plain), _float_state(raw))
    assert safe_load(tmp_path / "plain.pt")["ema"] is None


class FlakySource(Source):
    """id_source's first n images (32 x 32) as a file-like source: `unreadable` ones fail to load, `corrupt` ones
    have JPEG bytes that do not decode (the rest: the image as a JPEG)."""

    kind = "generic"

    def __init__(self, n: int, unreadable=(), corrupt=()):
        src = id_source()
        self.name, self.classes, self.labels, self.images = "flaky", src.classes, src.labels[:n], src.images[:n]
        self.unreadable, self.corrupt = set(unreadable), set(corrupt)

    def load(self, i: int) -> np.ndarray:
        if i in self.unreadable:
            raise UnreadableImage(f"image {i}")
        return self.images[i]

    def encoded(self, i: int) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.images[i]).save(buf, "JPEG")
        return buf.getvalue()[:3] + bytes(64) if i in self.corrupt else buf.getvalue()


@pytest.mark.parametrize("decode", ["cpu", "device"])
def test_an_image_that_cannot_be_read_or_decoded_is_skipped_and_counted(tmp_path, decode):
    """One image a step, 4 labeled images of which image 2 does not load (decode cpu: the loader's None) or its JPEG
    bytes do not decode on the device (decode device: files travel as bytes): its step trains nothing, the epoch
    counts 1 skipped and 3 images, and the model saw 3 one-image steps."""
    src = FlakySource(4, unreadable={2} if decode == "cpu" else (), corrupt={2} if decode == "device" else ())
    model = RecordingStudent()
    _, hist = train_stage(model, _stage(tmp_path, ImageDataset(src, np.arange(4), 32),
                                        OptimConfig(epochs=1, batch_size=1, warmup_epochs=0), decode=decode))
    assert (hist[0]["skipped"], hist[0]["images"], hist[0]["steps"]) == (1, 3, 4)
    assert [len(ids) for ids, _ in model.seen] == [1, 1, 1]
    if decode == "cpu":
        assert sorted(int(ids[0]) for ids, _ in model.seen) == [0, 1, 3]


@pytest.mark.parametrize("epochs,every,validated", [(9, 4, [4, 7, 8, 9]), (3, 1, [1, 2, 3]), (5, 10, [4, 5])])
def test_validation_runs_every_eval_every_epochs_at_the_quarter_mark_and_at_the_end(tmp_path, epochs, every,
                                                                                    validated):
    """OptimConfig.eval_every: validate every N epochs, the last epoch always; budget.quarter_mark: also after epoch
    epochs - epochs // 4 when epochs >= 4 (9 epochs: 7; 5 epochs: 4)."""
    src = id_source()
    _, hist = train_stage(RecordingStudent(), _stage(
        tmp_path, _ids(4), OptimConfig(epochs=epochs, batch_size=4, warmup_epochs=0, eval_every=every),
        val=ValSet(src, np.arange(4, 8), 32)))
    assert [r["epoch"] for r in hist if "val_top1" in r] == validated
    assert all(("val_top5" in r) == ("val_top1" in r) for r in hist)


def _update_norm(tmp_path, clip: float) -> float:
    """The norm over all parameters of the one SGD step of a stage (lr 0.1, Nesterov momentum 0.9, no decay)."""
    model = RecordingStudent()
    before = [p.detach().clone() for p in model.parameters()]
    optim = OptimConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0,
                        warmup_epochs=0, grad_clip=clip)
    train_stage(model, _stage(tmp_path, _ids(4), optim, state=f"clip{clip}.pt"))
    return math.sqrt(sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(model.parameters(), before)))


def test_grad_clip_scales_the_gradient_to_its_norm(tmp_path):
    """torch's SGD with Nesterov momentum m starts its buffer at the gradient g, so the first step is
    lr (g + m g) = lr (1 + m) g; clip_grad_norm_ to c scales g to norm c when it is longer. grad_clip 0.5 (below
    1) clips; 0 does not."""
    free = _update_norm(tmp_path, 0.0)
    assert free > 2 * 0.1 * 1.9 * 0.5  # the gradient is longer than 0.5: the clip binds
    assert _update_norm(tmp_path, 0.5) == pytest.approx(0.1 * 1.9 * 0.5, rel=1e-5)


def test_warmup_lasts_warmup_epochs_times_steps_per_epoch_steps(tmp_path):
    """warmup_epochs 1.5 at 2 steps per epoch: 3 warmup steps of lr (s + 1) / 3, then the cosine over the other 3,
    lr (1 + cos(pi (s - 3) / 3)) / 2 (optim.lr_at's docstring); each row's lr is its epoch's last step's (1, 3, 5)."""
    optim = OptimConfig(epochs=3, batch_size=4, warmup_epochs=1.5, lr=0.3)
    _, hist = train_stage(RecordingStudent(), _stage(tmp_path, _ids(8), optim))
    want = [0.3 * 2 / 3, 0.3 * (1 + math.cos(0)) / 2, 0.3 * (1 + math.cos(math.pi * 2 / 3)) / 2]
    assert [r["lr"] for r in hist] == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx([0.2, 0.3, 0.075])


class Bar:
    """A stand-in for the progress bar that keeps its arguments."""

    made: list[dict] = []

    def __init__(self, **kw):
        Bar.made.append(kw)

    def update(self):
        pass

    def close(self):
        pass


def _rank_of_two(tmp_path, monkeypatch, rank: int, model: nn.Module, optim: OptimConfig, n: int):
    """run_epoch as rank `rank` of a two-rank run sees it: setup's Trainer with rank and world 2 (n labeled images,
    batch_size per rank and step: n / (2 batch_size) steps), progress bars recorded in Bar.made. Returns (trainer,
    epoch 1's row, its wall time)."""
    import nsbench.training.stage as stage_module

    monkeypatch.setattr(stage_module, "tqdm", Bar)
    monkeypatch.setattr(Bar, "made", [])
    cfg = _stage(tmp_path, _ids(n), optim)
    t = setup(model, cfg)
    steps = n // (2 * optim.batch_size)
    t.rank, t.world, t.steps_per_epoch, t.total_steps = rank, 2, steps, steps * optim.epochs
    t.sampler, t.batches = make_batches(t, cfg)
    start = time.time()
    row = run_epoch(t, cfg, 0)
    return t, row, time.time() - start


@pytest.mark.parametrize("rank", [0, 1])
def test_an_epochs_images_count_every_rank_and_only_rank_0_shows_a_bar(tmp_path, monkeypatch, rank):
    """Rank r of 2 trains its 4 of every 8 images; the row counts both ranks' (images = 2 x its own), images_per_s
    = images / seconds, seconds the epoch's wall time; the progress bar (total: steps, "name epoch e/E") is
    disabled on every rank but 0."""
    model = RecordingStudent()
    _, row, wall = _rank_of_two(tmp_path, monkeypatch, rank, model, OptimConfig(epochs=3, batch_size=4,
                                                                                 warmup_epochs=0), 16)
    assert [len(ids) for ids, _ in model.seen] == [4, 4]
    assert row["images"] == 16 and row["steps"] == 2
    assert 0 < row["seconds"] <= wall and row["images_per_s"] == pytest.approx(16 / row["seconds"], rel=1e-9)
    (bar,) = Bar.made
    assert (bar["total"], bar["desc"], bar["disable"]) == (2, "s epoch 1/3", rank != 0)


def test_the_ema_decay_counts_the_images_of_every_rank(tmp_path, monkeypatch):
    """ema_reference_batch 4 with 2 images a rank on 2 ranks: a step is 4 images, so the decay is ema_decay ** (4 / 4)
    (optim.ema_decay_at: batch is labeled images per step over all ranks); timm's rule: 0 on steps 0 and 1. Three
    steps: e = 0.5 e_1 + 0.5 w_2 with e_1 = w_1, against 0.5 ** (1 / 4) = 0.84 had the batch been one rank's share
    of it."""
    model = RecordingStudent()
    start = _float_state(model)
    before = []
    model.register_forward_pre_hook(lambda m, args: before.append(_float_state(m)))
    optim = OptimConfig(epochs=1, batch_size=2, warmup_epochs=0, lr=0.01, ema_decay=0.5, ema_reference_batch=4)
    t, _, _ = _rank_of_two(tmp_path, monkeypatch, 0, model, optim, 12)
    after = before[1:] + [_float_state(model)]
    assert len(after) == 3
    _assert_state_close(_float_state(t.final), _ema_by_hand(start, after, [0.0, 0.0, 0.5]))
    assert not torch.allclose(_ema_by_hand(start, after, [0.0, 0.0, 0.5 ** 0.25])["lin.weight"],
                              _ema_by_hand(start, after, [0.0, 0.0, 0.5])["lin.weight"], rtol=1e-5, atol=1e-6)


class FirstStepOnly(RecordingStudent):
    """A RecordingStudent with an extra logit bias that only its first forward pass uses."""

    def __init__(self):
        super().__init__()
        self.extra = nn.Parameter(torch.zeros(C))
        self.after_first: torch.Tensor | None = None

    def forward(self, x):
        out = super().forward(x)
        if len(self.seen) == 1:
            return out + self.extra
        if len(self.seen) == 2:
            self.after_first = self.extra.detach().clone()
        return out


def test_a_parameter_outside_a_steps_graph_is_not_moved_by_that_step(tmp_path):
    """Each step sets the gradients to None before its backward pass (torch: optimizer.zero_grad(set_to_none=True);
    an optimizer skips a parameter whose grad is None, and steps one whose grad is 0): a parameter that only the
    first step used keeps its weights after the first step, though AdamW's moments of it are not 0."""
    model = FirstStepOnly()
    train_stage(model, _stage(tmp_path, _ids(12)))  # 3 steps
    assert len(model.seen) == 3 and not torch.equal(model.after_first, torch.zeros(C))
    assert torch.equal(model.extra.detach(), model.after_first)


def test_on_a_cpu_the_noise_runs_in_the_loaders_one_persistent_worker(tmp_path):
    """make_batches: on a CPU the batch noise runs in the loader's workers, which start once for every epoch
    (persistent_workers); 1 worker, 2 epochs of 1 step: both noise calls in one process, not this one."""
    pids = tmp_path / "pids"

    class Noise:
        def on_batch(self, x, gen, natural=None):
            with open(pids, "a") as f:
                f.write(f"{os.getpid()}\n")
            return x

    src = id_source()
    train_stage(RecordingStudent(), _stage(tmp_path, ImageDataset(src, np.arange(4), 32, augment=Noise()),
                                           OptimConfig(epochs=2, batch_size=4, warmup_epochs=0), num_workers=1))
    got = pids.read_text().split()
    assert len(got) == 2 and got[0] == got[1] and int(got[0]) != os.getpid()
