"""`optimizer: rmsprop` is TF's RMSProp as the released Noisy Student code runs it (utils.py build_optimizer:
tf.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1e-3)), checked step by step against the update
rule written out here, not against the library that implements it; the EMA decay (ema_decay_at): timm's rule by
default, TF's num_updates ramp and the released code's window per image when asked."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.config import OptimConfig
from nsbench.training.optim import ema_decay_at, lr_at, make_optimizer


def tf_rmsprop(w0: np.ndarray, grads: list[np.ndarray], lr: float, wd: float, decay=0.9, momentum=0.9, eps=1e-3):
    """TF1 RMSPropOptimizer (training_ops ApplyRMSProp), with the code's L2 term (weight_decay * l2_loss(w), whose
    gradient is weight_decay * w) added to the loss gradient:
        ms  <- decay * ms + (1 - decay) * g^2          (ms starts at 1: the slot's ones initializer)
        mom <- momentum * mom + lr * g / sqrt(ms + eps)   (eps inside the square root)
        w   <- w - mom"""
    w, ms, mom = w0.astype(np.float64), np.ones_like(w0, np.float64), np.zeros_like(w0, np.float64)
    out = []
    for g in grads:
        g = g + wd * w
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        w = w - mom
        out.append(w.copy())
    return out


def run(opt_cls_or_cfg, model: nn.Module, grads: dict[str, list[np.ndarray]], lrs: list[float]):
    opt = make_optimizer(model, opt_cls_or_cfg) if isinstance(opt_cls_or_cfg, OptimConfig) else opt_cls_or_cfg
    params = dict(model.named_parameters())
    out = {k: [] for k in params}
    for step, lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = lr  # the training loop sets the scheduled lr before every step
        for k, p in params.items():
            p.grad = torch.as_tensor(grads[k][step], dtype=p.dtype)
        opt.step()
        for k, p in params.items():
            out[k].append(p.detach().numpy().astype(np.float64).copy())
    return out


def test_rmsprop_recipes_follow_the_tf_update_rule():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)  # weight: L2-decayed group; bias: no decay (as make_optimizer splits them)
    w0 = {k: p.detach().numpy().copy() for k, p in model.named_parameters()}
    rng = np.random.default_rng(0)
    steps = 6
    grads = {k: [rng.normal(scale=s, size=v.shape).astype(np.float32) for s in np.geomspace(1e-3, 1.0, steps)]
             for k, v in w0.items()}
    lrs = [0.016 * (k + 1) / 3 if k < 3 else 0.016 * 0.9 ** k for k in range(steps)]  # warmup, then decay
    cfg = OptimConfig(optimizer="rmsprop", lr=0.016, momentum=0.9, weight_decay=1e-5)
    got = run(cfg, model, grads, lrs)
    for name, wd in (("weight", 1e-5), ("bias", 0.0)):
        want = []
        w, ms, mom = w0[name].astype(np.float64), np.ones_like(w0[name], np.float64), np.zeros_like(w0[name], np.float64)
        for g, lr in zip(grads[name], lrs):  # the rule above, with the scheduled lr of each step
            g = g + wd * w
            ms = 0.9 * ms + 0.1 * g * g
            mom = 0.9 * mom + lr * g / np.sqrt(ms + 1e-3)
            w = w - mom
            want.append(w.copy())
        for k in range(steps):
            np.testing.assert_allclose(got[name][k], want[k], rtol=1e-5, atol=1e-7, err_msg=f"{name}, step {k + 1}")
    # a constant lr: the helper above, as written in the docstring
    model2 = nn.Linear(5, 3)
    model2.load_state_dict({k: torch.as_tensor(v) for k, v in w0.items()})
    got2 = run(cfg, model2, grads, [0.016] * steps)
    for k, want in enumerate(tf_rmsprop(w0["weight"], grads["weight"], 0.016, 1e-5)):
        np.testing.assert_allclose(got2["weight"][k], want, rtol=1e-5, atol=1e-7)


def test_the_rmsprop_recipe_takes_tfs_steps_not_torchs():
    """What make_optimizer builds for `optimizer: rmsprop`, two steps on a tiny parameter against TF's update
    written out number by number (ms starts at 1, epsilon inside the square root, momentum on the scaled step), and
    against torch.optim.RMSprop's rule written out the same way (ms from 0, epsilon outside the root), which takes a
    first step about 700 times larger with gradients of 1e-3: the recipes ran that once."""
    model = nn.Linear(2, 1, bias=False)  # one 1 x 2 weight, in the L2-decayed group (weight_decay 0 here)
    with torch.no_grad():
        model.weight.zero_()  # from 0, float32 holds the steps (about 1e-5) to about 1e-12
    opt = make_optimizer(model, OptimConfig(optimizer="rmsprop", lr=0.016, momentum=0.9, weight_decay=0.0))
    grads = [np.array([1e-3, -2e-3]), np.array([3e-3, 1e-3])]
    got = []
    for g in grads:
        model.weight.grad = torch.tensor(g[None], dtype=torch.float32)
        opt.step()
        got.append(model.weight.detach().numpy()[0].astype(np.float64).copy())
    # TF RMSProp by hand, element 0: g = 1e-3, then 3e-3
    #   step 1: ms = 0.9 * 1 + 0.1 * 1e-6 = 0.9000001;  mom = 0.016 * 1e-3 / sqrt(0.9000001 + 1e-3);  w = 0 - mom
    #   step 2: ms = 0.9 * 0.9000001 + 0.1 * 9e-6;      mom = 0.9 * mom + 0.016 * 3e-3 / sqrt(ms + 1e-3)
    ms1 = 0.9 * 1.0 + 0.1 * 1e-6
    mom1 = 0.016 * 1e-3 / np.sqrt(ms1 + 1e-3)
    ms2 = 0.9 * ms1 + 0.1 * 9e-6
    mom2 = 0.9 * mom1 + 0.016 * 3e-3 / np.sqrt(ms2 + 1e-3)
    assert mom1 == pytest.approx(1.68561e-5, rel=1e-5)
    np.testing.assert_allclose([got[0][0], got[1][0]], [-mom1, -mom1 - mom2], rtol=1e-6)
    # both elements, by the rule of tf_rmsprop above
    want = tf_rmsprop(np.zeros(2), grads, 0.016, 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # torch's rule on the same first gradient: ms = 0.1 * 1e-6, step = lr * g / (sqrt(ms) + eps)
    torch_first = 0.016 * 1e-3 / (np.sqrt(0.1 * 1e-6) + 1e-3)
    assert torch_first > 700 * mom1
    assert abs(got[0][0] - -torch_first) > 0.01


def test_ema_ramp_is_tfs_num_updates_formula():
    """tf.train.ExponentialMovingAverage(decay, num_updates=global_step): min(decay, (1 + n) / (10 + n)), n the
    global step after the step's increment (the released main.py applies the EMA after minimize counted it)."""
    cfg = OptimConfig(ema_decay=0.9999, ema_warmup=True)
    for step, n in ((0, 1), (10, 11), (1000, 1001)):
        assert ema_decay_at(cfg, step, 128) == min(0.9999, (1 + n) / (10 + n))
    assert ema_decay_at(cfg, 0, 128) == 2 / 11 and ema_decay_at(cfg, 10, 128) == 12 / 21
    assert ema_decay_at(cfg, 1000, 128) == 1002 / 1011
    assert ema_decay_at(cfg, 89_988, 128) < 0.9999 == ema_decay_at(cfg, 89_990, 128)  # the ramp meets the cap


def test_ema_without_the_new_options_is_timms_fixed_decay():
    from timm.utils import ModelEmaV3

    timm_ema = ModelEmaV3(nn.Linear(2, 2), decay=0.99)
    cfg = OptimConfig(ema_decay=0.99)
    got = [ema_decay_at(cfg, step, 32) for step in range(6)]
    assert got == [timm_ema.get_decay(step) for step in range(6)] == [0.0, 0.0, 0.99, 0.99, 0.99, 0.99]


def test_ema_reference_batch_keeps_the_window_per_image():
    cfg = OptimConfig(ema_decay=0.9999, ema_reference_batch=4096)
    assert ema_decay_at(cfg, 5, 4096) == 0.9999
    quarter = ema_decay_at(cfg, 5, 1024)
    assert quarter == pytest.approx(0.999975, abs=1e-7) and quarter**4 == pytest.approx(0.9999, rel=1e-12)
    ramp = OptimConfig(ema_decay=0.9999, ema_warmup=True, ema_reference_batch=4096)
    # four steps of 1,024 images after 4,096 images: the reference's first update (n = 1), spread over them
    assert ema_decay_at(ramp, 3, 1024) ** 4 == pytest.approx(2 / 11, rel=1e-12)
    assert ema_decay_at(ramp, 4 * 1000 + 3, 1024) ** 4 == pytest.approx(1002 / 1011, rel=1e-12)


# ---- issue 31: which parameters decay, SGD's Nesterov step, and the schedule by its formula


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.ones(2, 2))  # a 2-D tensor named bias: no decay, as every bias


def test_weight_decay_reaches_matrices_and_kernels_not_biases_or_norm_scales():
    """AdamW's decoupled decay on a zero gradient: p <- p (1 - lr wd) for the decayed group, p unchanged for the
    rest (Adam's own step is 0 / (0 + eps) = 0)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm(4), nn.Linear(4, 2), _Scaled())
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    opt = make_optimizer(model, OptimConfig(optimizer="adamw", lr=0.1, weight_decay=0.5))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed = {"0.weight", "2.weight"}  # the conv kernel (4-D) and the linear weight (2-D)
    for k, p in model.named_parameters():
        want = before[k] * (1 - 0.1 * 0.5) if k in decayed else before[k]
        torch.testing.assert_close(p.detach(), want, rtol=1e-6, atol=0, msg=k)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "rmsprop"])
def test_a_model_without_weight_matrices_gets_an_optimizer(optimizer):
    model = nn.LayerNorm(4)  # 1-D parameters only: nothing in the decayed group
    opt = make_optimizer(model, OptimConfig(optimizer=optimizer, lr=0.1))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert (model.weight.detach() != 1).all()


def test_sgd_takes_nesterov_momentum_steps():
    """`optimizer: sgd` is SGD with Nesterov momentum and L2 weight decay, two steps written out:
        g <- g + wd w;  buf <- m buf + g (buf = g on the first step);  w <- w - lr (g + m buf)"""
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    opt = make_optimizer(model, OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.1))
    w, buf, got, want = np.array([1.0, -2.0]), None, [], []
    for g0 in (np.array([0.5, 0.25]), np.array([-1.0, 0.5])):
        model.weight.grad = torch.tensor(g0[None], dtype=torch.float32)
        opt.step()
        got.append(model.weight.detach().numpy()[0].astype(np.float64).copy())
        g = g0 + 0.1 * w
        buf = g if buf is None else 0.9 * buf + g
        w = w - 0.1 * (g + 0.9 * buf)
        want.append(w.copy())
    np.testing.assert_allclose(want[0], [0.886, -2.0095], rtol=1e-12)  # by hand: g = [0.6, 0.05], step 0.1 * 1.9 g
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_lr_is_linear_warmup_then_cosine_to_zero():
    """lr(s) = base (s + 1) / W for s < W, then base / 2 (1 + cos(pi min(1, (s - W) / max(1, T - W))))."""
    base, w, total = 2.0, 10, 110
    assert [lr_at(s, total, w, base) for s in (0, 4, 9)] == pytest.approx([0.2, 1.0, 2.0])
    assert lr_at(10, total, w, base) == pytest.approx(2.0)  # the warmup's end: the cosine's start
    assert lr_at(35, total, w, base) == pytest.approx(1 + np.sqrt(0.5))  # a quarter in: base / 2 (1 + cos(pi / 4))
    assert lr_at(60, total, w, base) == pytest.approx(1.0)  # half way
    assert lr_at(110, total, w, base) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(150, total, w, base) == pytest.approx(0.0, abs=1e-12)  # past the end it stays at zero
    assert lr_at(0, 100, 0, base) == pytest.approx(2.0) and lr_at(50, 100, 0, base) == pytest.approx(1.0)
    assert lr_at(1, 1, 0, base) == pytest.approx(0.0, abs=1e-12)  # one cosine step: T - W = 1
    assert lr_at(11, 11, 10, base) == pytest.approx(0.0, abs=1e-12)
