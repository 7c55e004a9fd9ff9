"""Models (nsbench/models.py): the default model's noise acts in train mode; stochastic depth that cannot act is
reported."""
from __future__ import annotations

from nsbench.models import ModelSpec, build_model


def test_stochastic_depth_that_cannot_act_is_reported():
    """timm applies stochastic depth on residual connections only; test_efficientnet has none, so a drop_path_rate
    there does nothing, and nsbench says so (the run's summary.json `warnings` and train.log)."""
    from nsbench.models import inert_stochastic_depth

    assert inert_stochastic_depth(build_model(ModelSpec("test_efficientnet", num_classes=3, drop_path_rate=0.1)))
    assert not inert_stochastic_depth(build_model(ModelSpec("test_efficientnet", num_classes=3)))
    assert not inert_stochastic_depth(build_model(ModelSpec("test_resnet", num_classes=3, drop_path_rate=0.1)))


def test_the_default_models_noise_all_acts_in_train_mode():
    """Every model of the default recipe's ladder has residual blocks, so stochastic depth acts there (timm applies
    it on skip connections only), and dropout acts too: with the same weights and input, train-mode outputs move
    when either is switched on, and the inert-stochastic-depth warning does not fire."""
    import dataclasses

    import torch

    from nsbench.config import load_train_config
    from nsbench.models import build_model, inert_stochastic_depth
    from nsbench.resources import resolve
    from nsbench.training.ladder import model_spec

    cfg = load_train_config(resolve("recipe", "default"))
    for k in range(cfg.ns.iterations + 1):
        spec = model_spec(cfg.teacher if k == 0 else cfg.student_for(k), 10, 32)
        assert spec.drop_path_rate > 0 and spec.drop_rate > 0
        quiet = build_model(dataclasses.replace(spec, drop_rate=0.0, drop_path_rate=0.0))
        assert not inert_stochastic_depth(build_model(spec))
        x = torch.rand(8, 3, 32, 32)
        outputs = {}
        for name, change in {"none": {}, "drop_path": {"drop_path_rate": spec.drop_path_rate},
                             "dropout": {"drop_rate": spec.drop_rate}}.items():
            m = build_model(dataclasses.replace(spec, **{"drop_rate": 0.0, "drop_path_rate": 0.0, **change}))
            m.load_state_dict(quiet.state_dict())
            m.train()
            torch.manual_seed(0)
            outputs[name] = m(x)
        assert not torch.allclose(outputs["none"], outputs["drop_path"]), f"iteration {k}: drop_path does nothing"
        assert not torch.allclose(outputs["none"], outputs["dropout"]), f"iteration {k}: dropout does nothing"
