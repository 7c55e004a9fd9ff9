"""FGSM and PGD (bench/attacks.py) by value without torchattacks: on a linear model the input gradient of the mean
cross-entropy is (softmax(z) - onehot(y)) W / N, so every signed step is written out here in numpy and compared
pixel by pixel; with torchattacks installed, the same adversarial images as its FGSM and PGD."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.bench.attacks import adversarial
from nsbench.models import ModelSpec, build_model
from nsbench.utils import NsbenchError

C, N = 3, 5


class Linear(nn.Module):
    """logits = W flatten(x) + b, behind a dropout that would randomise the gradient if the attack ran in
    training mode."""

    def __init__(self, w: np.ndarray, b: np.ndarray):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float32))
        self.drop = nn.Dropout(0.9)

    def forward(self, x):
        return self.drop(x.flatten(1)) @ self.w.T + self.b


def setup(seed=0):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(C, 12)), rng.normal(size=C)
    x = rng.random((N, 3, 2, 2)).astype(np.float32)
    x[0, 0, 0, :] = [0.0, 1.0]  # pixels on the bounds: the clamp must act on one side
    x[1, 1, 1, :] = [0.001, 0.999]
    y = rng.integers(0, C, N)
    return Linear(w, b), w.astype(np.float32), b.astype(np.float32), x, y


def grad_by_hand(w, b, x, y):
    z = x.reshape(len(x), -1).astype(np.float64) @ w.T.astype(np.float64) + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return (p @ w.astype(np.float64) / len(x)).reshape(x.shape)


def test_fgsm_is_one_signed_gradient_step_of_eps_clamped_to_unit_range():
    model, w, b, x, y = setup()
    model.train()
    eps_255 = 8.0
    g = grad_by_hand(w, b, x, y)
    assert (np.abs(g) > 1e-6).all()  # every sign is defined
    expect = np.clip(x + eps_255 / 255 * np.sign(g), 0, 1)
    adv = adversarial(model, torch.tensor(x), torch.tensor(y), eps_255).numpy()
    np.testing.assert_allclose(adv, expect, atol=1e-6)
    assert model.training  # the attack ran in eval mode (else dropout would change the gradient) and restored it
    # the step has size eps wherever no bound was hit, and increases the loss
    inside = (expect > 0) & (expect < 1)
    np.testing.assert_allclose(np.abs(adv - x)[inside], 8 / 255, atol=1e-6)
    assert adv[0, 0, 0, 0] in (0.0, 8 / 255) and adv[0, 0, 0, 1] in (1.0, 1 - 8 / 255)
    model.eval()
    ce = nn.functional.cross_entropy
    assert ce(model(torch.tensor(adv)), torch.tensor(y)) > ce(model(torch.tensor(x)), torch.tensor(y))


def test_pgd_steps_by_hand_with_projection_onto_the_eps_ball():
    model, w, b, x, y = setup(1)
    eps_255, alpha_255, steps, seed = 6.0, 4.0, 4, 3
    eps, alpha = eps_255 / 255, alpha_255 / 255
    gen = torch.Generator().manual_seed(seed)  # the random start: uniform in [-eps, eps], the seed's generator
    start = torch.empty(x.shape).uniform_(-eps, eps, generator=gen).numpy()
    adv = np.clip(x + start, 0, 1)
    for _ in range(steps):
        adv = adv + alpha * np.sign(grad_by_hand(w, b, adv.astype(np.float32), y))
        adv = np.clip(x + np.clip(adv - x, -eps, eps), 0, 1)
    got = adversarial(model, torch.tensor(x), torch.tensor(y), eps_255, attack="pgd", steps=steps,
                      alpha_255=alpha_255, seed=seed).numpy()
    np.testing.assert_allclose(got, adv, atol=1e-6)
    assert np.abs(got - x).max() <= eps + 1e-6
    # alpha > eps here, so after the first step most pixels sit on the ball's surface
    assert (np.isclose(np.abs(got - x), eps, atol=1e-6) | (got == 0) | (got == 1)).mean() > 0.9
    again = adversarial(model, torch.tensor(x), torch.tensor(y), eps_255, attack="pgd", steps=steps,
                        alpha_255=alpha_255, seed=seed).numpy()
    np.testing.assert_array_equal(got, again)  # the random start is the seed's


def test_pgd_with_zero_steps_is_the_clamped_random_start():
    model, w, b, x, y = setup(2)
    gen = torch.Generator().manual_seed(5)
    start = torch.empty(x.shape).uniform_(-2 / 255, 2 / 255, generator=gen).numpy()
    got = adversarial(model, torch.tensor(x), torch.tensor(y), 2.0, attack="pgd", steps=0, seed=5).numpy()
    np.testing.assert_allclose(got, np.clip(x + start, 0, 1), atol=1e-7)


def test_bad_attack_inputs_are_refused():
    model, _, _, x, y = setup()
    with pytest.raises(NsbenchError, match="unknown attack 'cw'; valid: fgsm, pgd"):
        adversarial(model, torch.tensor(x), torch.tensor(y), 1.0, attack="cw")
    with pytest.raises(NsbenchError, match=r"got values in \[-0\.5, 0\.5\]"):
        adversarial(model, torch.tensor(x) - 0.5, torch.tensor(y), 1.0)
    with pytest.raises(NsbenchError, match=r"got values in \[0\.5, 1\.5\]"):
        adversarial(model, torch.tensor(x) + 0.5, torch.tensor(y), 1.0)
    unit = torch.tensor(x)
    unit[0, 0, 0, 0], unit[0, 0, 0, 1] = 0.0, 1.0
    adversarial(model, unit, torch.tensor(y), 1.0)  # exactly 0 and 1 are valid


def test_pixels_without_gradient_do_not_move():
    """A pixel the model ignores has a zero gradient: sign 0, so neither FGSM nor a PGD step moves it."""
    model, w, b, x, y = setup(3)
    with torch.no_grad():
        model.w[:, :4] = 0.0  # the first channel is ignored
    adv = adversarial(model, torch.tensor(x), torch.tensor(y), 8.0).numpy()
    np.testing.assert_array_equal(adv[:, 0], x[:, 0])
    assert (np.abs(adv[:, 1:] - x[:, 1:]) > 0).mean() > 0.8
    # PGD from a zero-size start (eps 0 keeps x) moves nothing at all
    pgd0 = adversarial(model, torch.tensor(x), torch.tensor(y), 0.0, attack="pgd", steps=3, alpha_255=2.0).numpy()
    np.testing.assert_array_equal(pgd0, x)
    # with eps, the ignored channel moves only by its random start
    gen = torch.Generator().manual_seed(0)
    start = torch.empty(x.shape).uniform_(-4 / 255, 4 / 255, generator=gen).numpy()
    pgd = adversarial(model, torch.tensor(x), torch.tensor(y), 4.0, attack="pgd", steps=3, alpha_255=2.0).numpy()
    np.testing.assert_allclose(pgd[:, 0], np.clip(x + start, 0, 1)[:, 0], atol=1e-7)


def test_pgd_defaults_are_ten_steps_of_one_grey_level_from_seed_zero():
    model, _, _, x, y = setup(4)
    args = (model, torch.tensor(x), torch.tensor(y), 8.0)
    np.testing.assert_array_equal(adversarial(*args, attack="pgd").numpy(),
                                  adversarial(*args, attack="pgd", steps=10, alpha_255=1.0, seed=0).numpy())
    assert not np.array_equal(adversarial(*args, attack="pgd").numpy(),
                              adversarial(*args, attack="pgd", steps=11, alpha_255=1.0, seed=0).numpy())
    assert not np.array_equal(adversarial(*args, attack="pgd").numpy(),
                              adversarial(*args, attack="pgd", steps=10, alpha_255=1.0, seed=1).numpy())
    assert not np.array_equal(adversarial(*args, attack="pgd").numpy(),
                              adversarial(*args, attack="pgd", steps=10, alpha_255=2.0, seed=0).numpy())


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
