"""One training stage (training/stage.py): the student trains in train mode with input and model noise; the EMA of
the weights is what gets checkpointed; the losses and their weights by value (soft cross-entropy, label-smoothed
hard targets, the unlabeled weight, recomputed from the logits the student returned); a non-finite loss or
validation logit stops training, keeping the last good state."""
from __future__ import annotations

import math
import re

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
from nsbench.data.sources import ArraySource
from nsbench.data.targets import dense_targets
from nsbench.data.transforms import TrainAugment, prepare_batch
from nsbench.models import ModelSpec, build_model
from nsbench.training.stage import StageConfig, soft_cross_entropy, train_stage, unlabeled_weight
from nsbench.utils import NsbenchError


def stochastic_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules whose output is random in train mode (dropout, stochastic depth)."""
    from timm.layers import DropPath

    return [m for m in model.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d, DropPath)) and
            getattr(m, "p", getattr(m, "drop_prob", 0.0))]


def test_student_trains_in_train_mode_with_input_and_model_noise(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (32, 32, 32, 3), dtype=np.uint8)
    src = ArraySource("toy", images, rng.integers(0, 3, 32), ["a", "b", "c"])
    spec = ModelSpec("test_efficientnet", num_classes=3, drop_rate=0.3, drop_path_rate=0.2)
    model = build_model(spec)
    assert stochastic_modules(model), "the student must carry dropout / stochastic depth modules"
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
