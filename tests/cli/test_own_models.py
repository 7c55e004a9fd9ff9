"""Your own model, your own data: input size, labels and folders, class counts on folders, exports that load as the
README says, nsbench.train, --json, offline hubs, and an eval with warnings as errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import make_image, tiny_recipe
from nsbench import ModelInfo, ScoreSettings
from nsbench.cli import main
from nsbench.utils import NsbenchError

README = Path(__file__).resolve().parents[2] / "README.md"
DOC_PAGES = [README, *sorted(README.parent.glob("docs/*.md"))]  # the README and its pages (docs/results/ holds data)
CLEAN_ONLY = ["corruptions.enabled=false", "perturbations.enabled=false", "natural_adversarial.enabled=false",
              "fgsm.enabled=false"]


def clean_top1(folder: Path) -> float:
    df = pd.read_csv(folder / "results.csv")
    return float(df[(df.task == "clean") & (df.metric == "top1_acc")].value.iloc[0])


@pytest.fixture(scope="module")
def net32(tiny_folder, tmp_path_factory):
    """timm's test_resnet (pretrained config: 160 px) trained outside nsbench on the tiny folder's 32 px images."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = sorted((tiny_folder / "train").glob("*/*.png"))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p))).permute(2, 0, 1).float() / 255 for p in src])
    y = torch.tensor([int(p.parent.name[len("class"):]) for p in src])
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("test_resnet"))
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    net = timm.create_model("test_resnet", num_classes=4)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(6):
        for i in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net((x[i] - mean) / std), y[i]).backward()
            opt.step()
    root = tmp_path_factory.mktemp("byo")
    save_file(net.state_dict(), str(root / "mine32.safetensors"))
    (root / "classes.txt").write_text("\n".join(f"class{i}" for i in range(4)) + "\n")
    return root, net.eval(), (mean, std)


def own_accuracy(net, norm, folder: Path) -> float:
    """The model's accuracy on the test split at 32 px, computed here without nsbench."""
    paths = sorted((folder / "test").glob("*/*.png"))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p))).permute(2, 0, 1).float() / 255 for p in paths])
    y = torch.tensor([int(p.parent.name[len("class"):]) for p in paths])
    with torch.no_grad():
        return float((net((x - norm[0]) / norm[1]).argmax(1) == y).float().mean() * 100)


def test_a_32px_model_is_refused_at_its_default_size_and_scores_right_with_input_size(net32, tiny_folder, tmp_path,
                                                                                    capsys, caplog):
    root, net, norm = net32
    args = ["eval", "timm:test_resnet", "--checkpoint", str(root / "mine32.safetensors"), "--classes",
            str(root / "classes.txt"), "--suite", "quick", "--out", str(tmp_path / "out"), "--cache",
            str(tmp_path / "cache"), "--device", "cpu", f"data.source=folder:{tiny_folder}", *CLEAN_ONLY]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "images are 32x32 px, far smaller than mine32's 160 px input" in err[0]
    assert "Pass --input-size 32" in err[0] and not (tmp_path / "out" / "mine32").exists()
    assert main([*args, "--input-size", "32"]) == 0
    folder = tmp_path / "out" / "mine32"  # labelled after the weights' file
    assert clean_top1(folder) == pytest.approx(own_accuracy(net, norm, tiny_folder))
    meta = json.loads((folder / "meta.json").read_text())
    pre = meta["preprocessing"]
    assert pre["image_size"] == 32 and pre["source_image_size"] == [32, 32] and "given" in pre["image_size_from"]
    # upscaling on purpose is allowed, warned about, and recorded (another cell: the cache is keyed by size)
    assert main([*args, "--input-size", "160", "--out", str(tmp_path / "up")]) == 0
    assert "scored at 160 px as asked (upscaled 5.0x)" in caplog.text
    assert json.loads((tmp_path / "up" / "mine32" / "meta.json").read_text())["preprocessing"]["image_size"] == 160


def test_two_checkpoints_in_one_command_and_a_foreign_folder_is_not_overwritten(net32, tiny_folder, tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    root, _, _ = net32
    save_file(timm.create_model("test_efficientnet", num_classes=4).state_dict(), str(tmp_path / "other.safetensors"))
    common = ["--classes", str(root / "classes.txt"), "--input-size", "32", "--suite", "quick", "--cache",
              str(tmp_path / "cache"), "--device", "cpu", f"data.source=folder:{tiny_folder}", *CLEAN_ONLY]
    out = tmp_path / "out"
    assert main(["eval", "timm:test_resnet", "--checkpoint", str(root / "mine32.safetensors"), "timm:test_efficientnet",
                 "--checkpoint", str(tmp_path / "other.safetensors"), "--out", str(out), *common]) == 0
    metas = {p.parent.name: json.loads(p.read_text())["model"] for p in out.glob("*/meta.json")}
    assert sorted(metas) == ["mine32", "other"]
    assert metas["mine32"]["arch"] == "timm:test_resnet" and metas["other"]["arch"] == "timm:test_efficientnet"
    capsys.readouterr()
    # another model labelled like an existing folder: refused before any work, in one line; --overwrite replaces
    again = ["eval", "timm:test_efficientnet", "--checkpoint", str(tmp_path / "other.safetensors"), "--label", "mine32",
             "--out", str(out), *common]
    before = (out / "mine32" / "results.csv").read_bytes()
    assert main(again) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds the results of another model (mine32, from " in err[0] and "--overwrite" in err[0]
    assert (out / "mine32" / "results.csv").read_bytes() == before
    assert main([*again, "--overwrite"]) == 0
    assert json.loads((out / "mine32" / "meta.json").read_text())["model"]["arch"] == "timm:test_efficientnet"
    # the Python API refuses the same way and writes the same layout
    from nsbench import evaluate

    with pytest.raises(NsbenchError, match="already holds the results of another model"):
        evaluate("timm:test_resnet", "quick", out, info=ModelInfo(checkpoint=root / "mine32.safetensors", label="mine32", classes=4, input_size=32),
                 settings=ScoreSettings(overrides=[f"data.source=folder:{tiny_folder}", *CLEAN_ONLY], cache_dir=tmp_path / "cache", device="cpu"))


def test_num_classes_on_a_class_folder_dataset_follows_imagefolder_order(net32, tiny_folder, tmp_path, capsys):
    """Folders named zero..three (as in the README's case): with --num-classes 4, output k is ImageFolder's class k
    (sorted names: one, three, two, zero), whatever the names mean; the score is the one ImageFolder's targets give."""
    import shutil

    from torchvision.datasets import ImageFolder

    root, net, norm = net32
    data = tmp_path / "named"
    for k, name in enumerate(["zero", "one", "two", "three"]):
        shutil.copytree(tiny_folder / "test" / f"class{k}", data / "test" / name)
    common = ["timm:test_resnet", "--checkpoint", str(root / "mine32.safetensors"), "--input-size", "32",
              "--suite", "quick", "--cache", str(tmp_path / "cache"), "--device", "cpu",
              f"data.source=folder:{data}", *CLEAN_ONLY]
    assert main(["eval", *common, "--num-classes", "4", "--out", str(tmp_path / "n")]) == 0
    ds = ImageFolder(str(data / "test"))
    with torch.no_grad():
        x = torch.stack([torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float() / 255 for img, _ in ds])
        want = float((net((x - norm[0]) / norm[1]).argmax(1) == torch.tensor(ds.targets)).float().mean() * 100)
    assert clean_top1(tmp_path / "n" / "mine32") == pytest.approx(want)
    meta = json.loads((tmp_path / "n" / "mine32" / "meta.json").read_text())
    assert meta["model"]["label"] == "mine32"
    # a dataset with another number of class folders: refused in one line, pointing to --classes
    shutil.copytree(tiny_folder / "test" / "class0", data / "test" / "four")
    capsys.readouterr()
    assert main(["eval", *common, "--num-classes", "4", "--out", str(tmp_path / "five")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5 classes" in err[0] and "--num-classes 4" in err[0] and "--classes FILE" in err[0]


def readme_block(containing: str) -> str:
    """The one ```python block of the README or a docs/ page that contains `containing`."""
    blocks = [b for page in DOC_PAGES for b in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"),
                                                          flags=re.S)]
    (block,) = [b for b in blocks if containing in b]
    return block


def test_every_readme_line_that_loads_an_export_runs_verbatim_and_gives_nsbenchs_logits(tmp_path, monkeypatch):
    """A checkpoint of a model on 28 px images (Fashion-MNIST's size) at 32 px: the README's lines load the export
    in plain timm, and timm's own transform pads 28 -> 32 as nsbench does, so the logits agree image by image."""
    from nsbench.checkpoint import load_checkpoint, save_checkpoint
    from nsbench.data.transforms import prepare
    from nsbench.models import ModelSpec, build_model

    rng = np.random.default_rng(0)
    data = tmp_path / "data28"
    for c in range(3):
        (data / "test" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(make_image(c, rng, size=28)[..., 0]).save(data / "test" / f"c{c}" / f"{i}.png")  # grey
    spec = ModelSpec("test_efficientnet", num_classes=3, input_size=32, kwargs={"channel_multiplier": 1.25})
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "iter3.pt", build_model(spec), spec, classes=["c0", "c1", "c2"], iteration=3,
                    parent_sha256=None, config=None, metrics=None,
                    extra={"dataset": {"source": f"folder:{data}", "val_split": "test"}})
    monkeypatch.chdir(tmp_path)
    assert main(["export", "iter3.pt", "--to", "timm", "--out", "exported/iter3"]) == 0
    pre = json.loads(Path("exported/iter3/config.json").read_text())["nsbench"]["preprocessing"]
    assert pre["source_image_size"] == [28, 28] and pre["resize"].startswith("zero-padded 28 -> 32")
    ours, _ = load_checkpoint("iter3.pt")
    block = readme_block("local-dir:exported/iter3")
    for path in sorted(data.glob("test/*/*.png")):
        image = Image.open(path)
        scope = {"image": image}
        with torch.no_grad():
            exec(compile(block, "README.md", "exec"), scope)  # verbatim: both loads, the transform, the logits
            want = ours.eval()(torch.from_numpy(prepare(np.asarray(image), 32, "small").copy()).permute(2, 0, 1)
                               .float().unsqueeze(0) / 255)
        assert torch.allclose(scope["logits"], want, atol=1e-5), path
    # the first of the README's two loads, on its own, gives the same network
    local = __import__("timm").create_model("local-dir:exported/iter3", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(local.state_dict().values(), scope["m"].state_dict().values()))


def test_nsbench_train_from_python_returns_the_run_summary_and_writes_tensorboard(tiny_folder, tmp_path):
    import nsbench

    pytest.importorskip("tensorboard")
    recipe = tiny_recipe(f"folder:{tiny_folder}", iterations=0)
    recipe["teacher_optim"]["epochs"] = 1
    summary = nsbench.train(config=recipe, out=tmp_path / "run", overrides=["runtime.tensorboard=true"])
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["run_dir"] == str(tmp_path / "run")
    assert [e["sha256"] for e in summary["iterations"]] == [e["sha256"] for e in on_disk["iterations"]]
    assert (tmp_path / "run" / "iter0.pt").is_file() and (tmp_path / "run" / "train.log").stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    loss = acc.Scalars(f"{history.stage.iloc[0]}/train_loss")
    assert [s.step for s in loss] == list(history.epoch) and loss[0].value == pytest.approx(history.train_loss.iloc[0], rel=1e-4)
    with pytest.raises(NsbenchError, match="already holds a run"):
        nsbench.train(config=recipe, out=tmp_path / "run")


def test_offline_hub_models_fail_at_once_or_load_from_the_cache(monkeypatch, tmp_path):
    import timm
    from safetensors.torch import save_file

    from nsbench.bench import hub
    from nsbench.bench.eval_model import load_eval_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: pytest.fail("probed the network although offline"))
    with pytest.raises(NsbenchError, match="not in the local HF cache and HF_HUB_OFFLINE is set"):
        load_eval_model("timm:test_resnet")  # at once: neither a probe nor huggingface_hub's retries
    # weights already in the cache load offline
    net = timm.create_model("test_resnet")
    save_file(net.state_dict(), str(tmp_path / "model.safetensors"))
    monkeypatch.setattr(hub, "timm_cached_file", lambda name: str(tmp_path / "model.safetensors"))
    em = load_eval_model("timm:test_resnet")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(em.model.net(x), net.eval()(x))


def example_lines(text: str) -> list[list[str]]:
    """Every `nsbench ...` line of a text as argv, continuations joined, comments dropped."""
    import shlex

    lines = []
    for ln in re.sub(r"\\\n\s*", " ", text).splitlines():
        ln = ln.strip()
        if ln.startswith("nsbench "):
            lines.append(shlex.split(ln.split("  #")[0])[1:])
    return lines


def help_examples() -> list[list[str]]:
    """Every `nsbench ...` line of the CLI's and the subcommands' --help examples, continuations joined."""
    from nsbench import cli
    from nsbench.commands import eval as eval_cmd
    from nsbench.commands import export, report, study, train

    texts = (cli.EPILOG, eval_cmd.EXAMPLES, export.EXAMPLES, report.EXAMPLES, study.EXAMPLES, train.EXAMPLES)
    return [argv for text in texts for argv in example_lines(text)]


def doc_examples() -> dict[str, list[list[str]]]:
    """Every `nsbench ...` line of the command blocks (fenced, not ```python) of the README and each docs/ page."""
    examples = {}
    for page in DOC_PAGES:
        blocks = re.findall(r"```([^\n]*)\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
        examples[page.relative_to(README.parent).as_posix()] = [
            argv for lang, block in blocks if lang.strip() != "python" for argv in example_lines(block)]
    return examples


def test_help_examples_parse_and_their_baselines_are_labels_they_make():
    from nsbench.cli import build_parser

    def model_label(ckpt: str) -> str:  # runs.model_label of the run's checkpoint once the run exists
        p = Path(ckpt)
        return f"{p.parent.name}-{p.stem}" if re.fullmatch(r"iter\d+", p.stem) else p.stem

    parser = build_parser()
    docs = doc_examples()
    assert {argv[0] for argv in docs["README.md"]} >= {"train", "eval", "report", "study"}, docs["README.md"]
    assert len(docs) > 5 and sum(map(len, docs.values())) > 15, docs  # the pages under docs/ are checked too
    examples = help_examples()
    assert len(examples) > 15
    examples += [argv for page in docs.values() for argv in page]  # README first: its eval precedes its report
    for argv in examples:
        args, extra = parser.parse_known_args(argv)
        assert all("=" in e for e in extra) or getattr(args, "positional_extras", False), argv
    evaluated = {}  # eval --out folder -> labels written there
    for argv in examples:
        args, extra = parser.parse_known_args(argv)
        if args.command == "eval":
            models = [m.replace("iter*", f"iter{k}") for m in [*args.models, *extra] if "=" not in m for k in range(4)]
            labels = [model_label(m) for m in models if not m.startswith(("timm:", "torchvision:"))]
            evaluated.setdefault(args.out, set()).update(labels)
            if args.baseline:
                assert args.baseline in labels, argv
        if args.command == "report" and args.baseline:
            labels = {model_label(f"{i}/iter{k}.pt") for i in args.inputs for k in range(4)} | {Path(i).name for i in args.inputs}
            for i in args.inputs:
                labels |= evaluated.get(i, set())
            assert args.baseline in labels, argv


def test_the_python_api_is_typed_and_lazy():
    import inspect
    import subprocess
    import sys

    import nsbench

    for fn in (nsbench.evaluate, nsbench.train):
        params = inspect.signature(fn).parameters.values()
        assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params), fn
    assert {"info", "settings"} <= set(inspect.signature(nsbench.evaluate).parameters)  # typed options (issue 29)
    assert {"input_size", "checkpoint", "classes"} <= set(inspect.signature(nsbench.ModelInfo).parameters)
    assert {"overwrite", "limit", "precision"} <= set(inspect.signature(nsbench.ScoreSettings).parameters)
    assert {"config", "overrides", "out", "resume"} <= set(inspect.signature(nsbench.train).parameters)
    code = "import sys, nsbench; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ}).returncode == 0
