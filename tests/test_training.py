"""Training core: noise on for the student, ladder checks, checkpoints, resume and the CLI end to end."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_recipe
from nsbench.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from nsbench.cli import main
from nsbench.config import OptimConfig, RuntimeConfig, load_train_config
from nsbench.data.augment import to_float
from nsbench.data.loaders import ImageDataset, stack_uint8
from nsbench.data.sources import ArraySource
from nsbench.data.targets import dense_targets
from nsbench.data.transforms import TrainAugment, prepare_batch
from nsbench.models import ModelSpec, build_model
from nsbench.training import driver, ladder
from nsbench.training.stage import StageConfig, train_stage
from nsbench.utils import NsbenchError, file_sha256


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


def test_smaller_student_is_refused_unless_allowed(tiny_folder):
    recipe = tiny_recipe(f"folder:{tiny_folder}", iterations=1)
    recipe["students"] = [{"arch": "test_efficientnet", "kwargs": {"channel_multiplier": 0.5}}]
    cfg = load_train_config(recipe)
    with pytest.raises(NsbenchError, match="smaller than its teacher"):
        ladder.check_ladder(cfg, 4)
    cfg = load_train_config(recipe, ["ns.allow_smaller_student=true"])
    assert len(ladder.check_ladder(cfg, 4)) == 2


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    spec = ModelSpec("test_efficientnet", num_classes=5, drop_rate=0.2, kwargs={"channel_multiplier": 1.25})
    model = build_model(spec).eval()
    x = torch.rand(4, 3, 32, 32)
    sha = save_checkpoint(tmp_path / "m.pt", model, spec, classes=list("abcde"), iteration=2, parent_sha256="ab" * 32,
                          config={"seed": 1}, metrics={"val_top1": 50.0})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(model(x), loaded(x))
    assert meta["sha256"] == sha == file_sha256(tmp_path / "m.pt")
    assert meta["iteration"] == 2 and meta["parent_sha256"] == "ab" * 32 and meta["classes"] == list("abcde")
    assert meta["model"]["kwargs"] == {"channel_multiplier": 1.25} and "torch" in meta["versions"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    for name, write in [("zip.pt", lambda p: torch.save({"state_dict": _Payload(marker)}, p)),
                        ("raw.pkl", lambda p: p.write_bytes(pickle.dumps(_Payload(marker))))]:
        path = tmp_path / name
        write(path)
        assert not marker.exists()
        with pytest.raises(NsbenchError) as e:
            load_checkpoint(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert not marker.exists(), "loading executed the pickled payload"


def test_non_checkpoint_files_get_one_line_errors(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    for name, msg in [("text.pt", "not an nsbench checkpoint"), ("plain.pt", "no 'nsbench-checkpoint' tag"),
                      ("missing.pt", "file not found")]:
        with pytest.raises(NsbenchError, match=msg):
            read_checkpoint(tmp_path / name)


def test_main_train_two_iterations_end_to_end(tiny_folder, tmp_path):
    import yaml

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(f"folder:{tiny_folder}", iterations=2)))
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "pseudo.soft=false"]) == 0
    for f in ["config.yaml", "split.json", "train.log", "history.csv", "summary.json", "iter0.pt", "iter1.pt", "iter2.pt",
              "iter1/pseudo/stats.json", "iter2/pseudo/selection-00000-of-00001.parquet"]:
        assert (out / f).exists(), f
    assert not (out / "iter2" / "state.pt").exists()
    metas = [load_checkpoint(out / f"iter{k}.pt")[1] for k in range(3)]
    assert [m["iteration"] for m in metas] == [0, 1, 2]
    assert metas[0]["parent_sha256"] is None
    assert metas[1]["parent_sha256"] == metas[0]["sha256"] and metas[2]["parent_sha256"] == metas[1]["sha256"]
    assert metas[2]["config"]["pseudo"]["soft"] is False and metas[1]["role"] == "student"
    hist = pd.read_csv(out / "history.csv")
    assert sorted(hist["iteration"].unique()) == [0, 1, 2] and hist["val_top1"].notna().all()
    # the same out folder again is refused; unknown override keys are refused with the valid ones listed
    assert main(["train", "--recipe", str(recipe), "--out", str(out)]) == 2
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "x"), "ns.iteration=3"]) == 2


def test_interrupted_run_resumes_without_redoing_finished_work(tiny_folder, tmp_path, monkeypatch):
    import yaml

    recipe = tmp_path / "tiny.yaml"
    cfg = tiny_recipe(f"folder:{tiny_folder}", iterations=2, student_optim={"epochs": 2})
    recipe.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    real = driver.train_stage
    calls = []

    def crash_in_iter2(model, stage):  # kill iteration 2 after its first epoch has been saved
        calls.append(stage.name)
        if stage.name == "iter2":
            stage.optim.epochs = 1
            real(model, stage)
            raise KeyboardInterrupt
        return real(model, stage)

    monkeypatch.setattr(driver, "train_stage", crash_in_iter2)
    assert main(["train", "--recipe", str(recipe), "--out", str(out)]) == 130
    assert (out / "iter1.pt").exists() and not (out / "iter2.pt").exists()
    assert (out / "iter2" / "state.pt").exists() and (out / "iter2" / "pseudo" / "stats.json").exists()
    before = {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in
              [out / "iter0.pt", out / "iter1.pt", *sorted((out / "iter2" / "pseudo").glob("*.parquet"))]}

    monkeypatch.setattr(driver, "train_stage", lambda model, stage: (calls.append(stage.name), real(model, stage))[1])
    calls.clear()
    assert main(["train", "--resume", str(out)]) == 0
    assert calls == ["iter2"], "finished iterations were trained again"
    after = {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in
             [out / "iter0.pt", out / "iter1.pt", *sorted((out / "iter2" / "pseudo").glob("*.parquet"))]}
    assert before == after, "finished checkpoints or the existing pseudo-label store were rewritten"
    hist = pd.read_csv(out / "history.csv")
    assert hist[hist.iteration == 2]["epoch"].tolist() == [1, 2]  # epoch 1 from before the kill, epoch 2 after
    meta = load_checkpoint(out / "iter2.pt")[1]
    assert meta["parent_sha256"] == file_sha256(out / "iter1.pt")


def test_every_shipped_recipe_loads_and_its_ladder_never_shrinks():
    from nsbench.resources import headline, list_shipped

    recipes = list_shipped("recipe")
    assert {p.stem for p in recipes} >= {"default"} | {f"imagenet_b{k}" for k in range(8)}
    for path in recipes:
        cfg = load_train_config(path)
        assert headline(path).split()[0] in ("nsbench", "torchrun"), f"{path} is not headed by its command"
        if cfg.data.image_size <= 64:  # building 1000-class B0-B2 ladders is slow on a CPU; sizes are checked for small ones
            ladder.check_ladder(cfg, 10)


def test_config_rejects_unknown_and_ill_typed_keys():
    with pytest.raises(NsbenchError, match=r"unknown key\(s\) colour; valid: source"):
        load_train_config({"data": {"colour": 1}})
    with pytest.raises(NsbenchError, match="expected an integer"):
        load_train_config({}, ["ns.iterations=three"])
    with pytest.raises(NsbenchError, match="no list item '5'"):
        load_train_config({}, ["students.5.arch=x"])
    cfg = load_train_config({}, ["students.0.kwargs={channel_multiplier: 2.0}", "pseudo.per_class=500"])
    assert cfg.students[0].kwargs == {"channel_multiplier": 2.0} and cfg.pseudo.per_class == 500


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
        assert cfg.pseudo.threshold == 0.3 and cfg.pseudo.soft and cfg.pseudo.filter_on == "untempered"
        assert cfg.student_optim.lr == pytest.approx(0.016 * cfg.student_optim.batch_size * 8 / 256)


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
