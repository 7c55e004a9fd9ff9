"""What the harness scores (bench/eval_model.py), by what a model gives and records: torchvision models at 224 px
with ImageNet's mean and std inside (torchvision's documented transforms: mean (0.485, 0.456, 0.406), std
(0.229, 0.224, 0.225), Resize(256) + CenterCrop(224), i.e. crop_pct 0.875); local state dicts in the usual
containers; class names or counts (docs/own-models.md: "Default: the 1,000 ImageNet classes", `--num-classes N`
matches outputs to the dataset's classes in its own order); hub weights keyed by name and tag; a module's label;
weights that do not fit (the --num-classes hint only for a size mismatch)."""
from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from helpers import synsets, tiny_checkpoint, write_folder
from nsbench.bench import eval_model, hub
from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import from_module, load_eval_model
from nsbench.bench.suite import SuiteConfig, SuiteData
from nsbench.utils import NsbenchError

CLASSES = [f"class{i}" for i in range(4)]
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def by_hand_normalised(net, x):
    return net((x - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1))


# ---- torchvision:NAME

@pytest.fixture(scope="module")
def squeezenet_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.get_model("squeezenet1_1", weights=None, num_classes=4).eval()
    path = tmp_path_factory.mktemp("tv") / "sq.pt"
    torch.save(net.state_dict(), path)
    return net, path


def test_torchvision_with_local_weights_is_scored_at_224_with_imagenet_mean_and_std_inside(squeezenet_file):
    net, path = squeezenet_file
    em = load_eval_model("torchvision:squeezenet1_1", checkpoint=path, classes=4)
    assert em.input_size == 224 and em.label == "sq" and em.classes == ["0", "1", "2", "3"]
    m = em.meta["model"]
    assert m["mean"] == pytest.approx([0.485, 0.456, 0.406]) and m["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert (m["crop_pct"], m["interpolation"]) == (0.875, "bilinear")  # Resize(256) + CenterCrop(224): 224 / 256
    assert em.meta["role"] == "state-dict" and em.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(em.model(x), by_hand_normalised(net, x), atol=1e-5)


def test_torchvision_hub_weights_are_for_1000_classes_only(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: False)
    with pytest.raises(NsbenchError, match=r"^torchvision:squeezenet1_1: hub weights predict 1,000 classes; pass "
                                           r"--checkpoint for 4$"):
        load_eval_model("torchvision:squeezenet1_1", classes=4)
    # 1,000 classes get as far as the hub (which is not there)
    with pytest.raises(NsbenchError, match=r"^torchvision:squeezenet1_1: pretrained weights are not in torch's hub cache"):
        load_eval_model("torchvision:squeezenet1_1")


def test_torchvision_hub_weights_are_labelled_by_name_and_keyed_by_the_torchvision_version(monkeypatch):
    import torchvision

    monkeypatch.setattr(eval_model, "torchvision_pretrained", lambda name, builder: builder(weights=None))  # no download
    em = load_eval_model("torchvision:squeezenet1_1")
    assert em.label == "squeezenet1_1" and em.meta["role"] == "pretrained" and len(em.classes) == 1000
    assert em.sha256 == hashlib.sha256(f"torchvision:squeezenet1_1:DEFAULT:{torchvision.__version__}".encode()).hexdigest()


# ---- timm:NAME: hub weights from the HF cache, keyed by name and tag

def test_timm_hub_weights_are_keyed_by_the_pretrained_tag(monkeypatch, tmp_path):
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    root = tmp_path / "hf" / "models--timm--test_resnet.r160_in1k"  # test_resnet's default tag: r160_in1k
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("c0ffee")
    (root / "snapshots" / "c0ffee").mkdir(parents=True)
    save_file(timm.create_model("test_resnet").state_dict(), str(root / "snapshots" / "c0ffee" / "model.safetensors"))
    em = load_eval_model("timm:test_resnet")
    assert em.label == "test_resnet" and em.meta["role"] == "pretrained" and em.path is None
    assert em.sha256 == hashlib.sha256(f"timm:test_resnet:r160_in1k:{timm.__version__}".encode()).hexdigest()


# ---- local state dicts

@pytest.fixture(scope="module")
def resnet():
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=4).eval()


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module."])
def test_torch_state_dicts_in_the_usual_containers_load_with_their_values(tmp_path, resnet, wrap):
    sd = resnet.state_dict()
    payload = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd},
               "module.": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    torch.save(payload, tmp_path / "w.pt")
    em = load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.pt", classes=4)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(em.model.net(x), resnet(x))


@pytest.mark.parametrize("payload", [[torch.zeros(2)], {}, {"w": 1.0}])
def test_a_torch_file_that_is_not_a_state_dict_of_tensors_is_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "w.pt")
    with pytest.raises(NsbenchError, match=rf"^{tmp_path / 'w.pt'}: not a state dict of tensors$"):
        load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.pt", classes=4)


@pytest.mark.parametrize("shape, given, size", [((3, 160, 160), None, 160), ((3, 96, 64), 80, 80)])
def test_a_timm_model_is_scored_at_its_pretrained_configs_side(tmp_path, resnet, monkeypatch, shape, given, size):
    """The config's input_size is (3, H, W): a square config gives its side; a config that is not square needs the
    side given (--input-size)."""
    import timm.data

    real = timm.data.resolve_data_config
    monkeypatch.setattr(timm.data, "resolve_data_config", lambda *a, **kw: {**real(*a, **kw), "input_size": shape})
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    em = load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.pt", classes=4, input_size=given)
    assert em.input_size == size


def test_a_timm_model_whose_pretrained_config_is_not_square_is_refused_without_a_side(tmp_path, resnet, monkeypatch):
    import timm.data

    real = timm.data.resolve_data_config
    monkeypatch.setattr(timm.data, "resolve_data_config", lambda *a, **kw: {**real(*a, **kw), "input_size": (3, 96, 64)})
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    with pytest.raises(NsbenchError, match=r"^timm:test_resnet: its pretrained config's input size is 96x64, not "
                                           r"square; nsbench scores square images: give the side with --input-size$"):
        load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.pt", classes=4)


# ---- nsbench checkpoints and their options

def test_a_checkpoints_input_size_may_be_replaced_by_any_positive_size(tmp_path):
    path = tiny_checkpoint(tmp_path / "iter0.pt", CLASSES)
    assert load_eval_model(str(path), input_size=1).input_size == 1
    for bad in (0, -8):
        with pytest.raises(NsbenchError, match=rf"^input size must be positive, got {bad}$"):
            load_eval_model(str(path), input_size=bad)


@pytest.mark.parametrize("kw", [{"classes": 4}, {"checkpoint": "w.safetensors"}])
def test_classes_and_checkpoint_are_refused_for_an_nsbench_checkpoint(tmp_path, kw):
    path = tiny_checkpoint(tmp_path / "iter0.pt", CLASSES)
    with pytest.raises(NsbenchError, match="--checkpoint and --num-classes/--classes apply to timm:NAME and "
                                           "torchvision:NAME only"):
        load_eval_model(str(path), **kw)


def test_a_timm_name_is_everything_after_the_first_colon():
    with pytest.raises(NsbenchError, match=r"^timm:hf-hub:org/x: unknown timm model$"):
        load_eval_model("timm:hf-hub:org/x")


# ---- classes: names, a count, or ImageNet's 1,000

def test_1000_classes_are_imagenets_names_matched_by_name():
    em = from_module(nn.Identity(), classes=1000, input_size=32)
    assert em.classes == synsets() and "classes_from" not in em.meta


@pytest.mark.parametrize("n", [1, 4])
def test_a_count_is_that_many_outputs_matched_by_position(n):
    em = from_module(nn.Identity(), classes=n, input_size=32)
    assert em.classes == [str(i) for i in range(n)] and em.meta["classes_from"] == "count"


def test_zero_classes_are_refused():
    with pytest.raises(NsbenchError, match=r"^number of classes must be >= 1, got 0$"):
        from_module(nn.Identity(), classes=0, input_size=32)


def test_named_classes_are_matched_to_the_data_by_name_a_count_by_the_datas_order(tmp_path):
    data = write_folder(tmp_path / "data", 4, {"test": 1})
    suite = SuiteConfig(name="t", data=SuiteData(source=f"folder:{data}", split="test"))
    names = ["class3", "class1", "class0", "class2"]
    em = from_module(nn.Identity(), classes=names, input_size=32)
    EvalContext(em, suite, tmp_path / "cache", torch.device("cpu")).check_data()
    assert em.classes == names  # the outputs keep the order the names give
    em = from_module(nn.Identity(), classes=4, input_size=32)
    EvalContext(em, suite, tmp_path / "cache", torch.device("cpu")).check_data()
    assert em.classes == CLASSES  # output k is the dataset's k-th class (sorted folder names)


def test_a_module_given_mean_and_std_normalises_inside():
    em = from_module(nn.Identity(), classes=3, input_size=8, mean=MEAN.tolist(), std=STD.tolist())
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(em.model(x), by_hand_normalised(nn.Identity(), x))


def test_a_module_is_labelled_as_given_else_by_its_class_name_in_lower_case():
    assert from_module(nn.Identity(), classes=3, input_size=8, label="mine").label == "mine"
    assert from_module(nn.Identity(), classes=3, input_size=8).label == "identity"  # type(module).__name__.lower()


# ---- weights that do not fit the network

def test_weights_of_another_class_count_hint_at_num_classes_other_misfits_do_not(tmp_path, resnet):
    """A size mismatch (4-class weights into a 10-class head) asks "is --num-classes right?"; a missing key does not
    (the message then names the key, the second line of torch's error)."""
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    with pytest.raises(NsbenchError, match=rf"^{tmp_path / 'w.pt'}: weights do not fit timm:test_resnet "
                                           r"\(is --num-classes right\?\): size mismatch for fc\.weight"):
        load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.pt", classes=10)
    sd = {k: v for k, v in resnet.state_dict().items() if k != "fc.bias"}
    torch.save(sd, tmp_path / "part.pt")
    with pytest.raises(NsbenchError, match=rf"^{tmp_path / 'part.pt'}: weights do not fit timm:test_resnet: "
                                           r'Missing key\(s\) in state_dict: "fc\.bias"\.$'):
        load_eval_model("timm:test_resnet", checkpoint=tmp_path / "part.pt", classes=4)
