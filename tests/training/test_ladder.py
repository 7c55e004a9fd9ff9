"""The model ladder and the shipped recipes (training/ladder.py): a smaller student is refused unless allowed,
no shipped recipe's ladder shrinks, the ImageNet recipes mirror the released per-size settings."""
from __future__ import annotations

import pytest

from helpers import tiny_recipe
from nsbench.config import load_train_config
from nsbench.training import ladder
from nsbench.utils import NsbenchError


def test_smaller_student_is_refused_unless_allowed(tiny_folder):
    recipe = tiny_recipe(f"folder:{tiny_folder}", iterations=1)
    recipe["students"] = [{"arch": "test_efficientnet", "kwargs": {"channel_multiplier": 0.5}}]
    cfg = load_train_config(recipe)
    with pytest.raises(NsbenchError, match="smaller than its teacher"):
        ladder.check_ladder(cfg, 4)
    cfg = load_train_config(recipe, ["ns.allow_smaller_student=true"])
    assert len(ladder.check_ladder(cfg, 4)) == 2


def test_every_shipped_recipe_loads_and_its_ladder_never_shrinks():
    from nsbench.resources import headline, list_shipped

    recipes = list_shipped("recipe")
    assert {p.stem for p in recipes} >= {"default"} | {f"imagenet_b{k}" for k in range(8)}
    for path in recipes:
        cfg = load_train_config(path)
        assert headline(path).split()[0] in ("nsbench", "torchrun"), f"{path} is not headed by its command"
        if cfg.data.image_size <= 64:  # building 1000-class B0-B2 ladders is slow on a CPU; sizes are checked for small ones
            ladder.check_ladder(cfg, 10)


def test_the_default_recipe_keeps_no_ema():
    from nsbench.resources import resolve

    cfg = load_train_config(resolve("recipe", "default"))
    for o in (cfg.teacher_optim, cfg.student_optim):
        assert (o.ema_decay, o.ema_warmup, o.ema_reference_batch) == (0.0, False, 0)


def test_imagenet_recipes_mirror_the_released_per_size_settings():
    """google-research/noisystudent: efficientnet_builder.py efficientnet_params (resolution, dropout) and
    local_scripts/imagenet/train_offline.sh (unlabel_ratio, train_ratio, randaug_mag per size)."""
    from nsbench.resources import resolve

    size = {0: 224, 1: 240, 2: 260, 3: 300, 4: 380, 5: 456, 6: 528, 7: 600}
    dropout = {0: 0.2, 1: 0.2, 2: 0.3, 3: 0.3, 4: 0.4, 5: 0.4, 6: 0.5, 7: 0.5}
    magnitude = {0: None, 1: None, 2: 6, 3: 12, 4: 15, 5: 18, 6: 24, 7: 27}
    for k in range(8):
        cfg = load_train_config(resolve("recipe", f"imagenet_b{k}"))
        assert cfg.data.image_size == size[k] and cfg.teacher.arch == cfg.students[0].arch == f"efficientnet_b{k}"
        assert cfg.students[0].drop_rate == dropout[k] and cfg.students[0].drop_path_rate == 0.2
        assert cfg.ns.unlabeled_ratio == (1 if k == 0 else 3) and cfg.ns.loss_weighting == "ratio"
        assert cfg.student_optim.epochs == (700 if k <= 4 else 350) and cfg.teacher_optim.epochs == 350
        assert cfg.noise.randaugment == (magnitude[k] is not None) and cfg.noise.natural_crop == "inception"
        if magnitude[k]:
            assert cfg.noise.ra_magnitude == magnitude[k] and cfg.noise.ra_ops == "tf"
        assert cfg.student_optim.optimizer == "rmsprop" and cfg.student_optim.ema_decay == 0.9999
        for o in (cfg.teacher_optim, cfg.student_optim):  # main.py: 0.9999 per 4,096-image step, num_updates ramp
            assert (o.ema_decay, o.ema_warmup, o.ema_reference_batch) == (0.9999, True, 4096)
        assert cfg.pseudo.threshold == 0.3 and cfg.pseudo.soft and cfg.pseudo.filter_on == "untempered"
        assert cfg.student_optim.lr == pytest.approx(0.016 * cfg.student_optim.batch_size * 8 / 256)


def test_check_pretrained_builds_each_pretrained_model_still_to_train(tiny_folder, monkeypatch):
    """Iterations 0..3: the teacher and the second student entry pretrained (iteration 3 repeats the last entry),
    the first student not. Each pretrained model not yet trained is built up front; none when every student starts
    from its teacher, except the teacher itself."""
    recipe = tiny_recipe(f"folder:{tiny_folder}", iterations=3)
    recipe["teacher"] = {**recipe["teacher"], "pretrained": True}
    recipe["students"] = [{"arch": "test_efficientnet"}, {"arch": "test_efficientnet", "pretrained": True}]
    built = []
    monkeypatch.setattr(ladder, "build", lambda spec, k, cfg: built.append((spec, k)))
    specs = [(f"spec{k}", 0) for k in range(4)]

    def check(done, *overrides):
        built.clear()
        ladder.check_pretrained(load_train_config(recipe, list(overrides)), specs, set(done))
        return [k for _, k in built]

    assert check(()) == [0, 2, 3]
    assert [s for s, _ in built] == ["spec0", "spec2", "spec3"]
    assert check((0, 2)) == [3]
    assert check((0, 1, 2, 3)) == []
    assert check((), "ns.init_from_teacher=true") == [0]
    assert check((0,), "ns.init_from_teacher=true") == []


def test_the_stochastic_depth_warning_only_where_it_cannot_act():
    """test_efficientnet's blocks hold DropPath without a skip connection (inert); test_resnet's act."""
    from nsbench.models import ModelSpec, build_model

    recipe = load_train_config(tiny_recipe("folder:/nonexistent", iterations=1))
    for arch, rate, warns in (("test_efficientnet", 0.1, True), ("test_resnet", 0.1, False),
                              ("test_efficientnet", 0.0, False)):
        spec = ModelSpec(arch=arch, num_classes=4, input_size=32, drop_path_rate=rate)
        got = ladder.inert_depth_warning(build_model(spec), spec, 0, recipe)
        assert (got is not None) == warns, (arch, rate)
        if warns:
            assert got.startswith(f"teacher.drop_path_rate={rate} has no effect: none of {arch}'s blocks")
