"""Data sources: the IDX reader, folders with unreadable files, HF datasets from local disk, Parquet shards (a
damaged row group skipped and counted, string labels), 16-bit PNGs, splits, and sources whose classes differ from
the model's."""
from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest

from helpers import damage_row_group, make_image, png_bytes, write_parquet
from nsbench.data import fashion_mnist, labeled_split, open_source
from nsbench.data.loaders import ImageDataset, make_loader
from nsbench.data.sources import ArraySource
from nsbench.data.transforms import prepare
from nsbench.utils import NsbenchError


def write_idx(path, arr, magic):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">i", magic) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(np.uint8).tobytes())


def test_idx_reader_checks_magic_and_shape(tmp_path):
    imgs = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 255
    write_idx(tmp_path / "ok.gz", imgs, fashion_mnist.IMAGES_MAGIC)
    assert np.array_equal(fashion_mnist.read_idx(tmp_path / "ok.gz", fashion_mnist.IMAGES_MAGIC, 3), imgs)
    write_idx(tmp_path / "bad.gz", imgs, fashion_mnist.LABELS_MAGIC)
    with pytest.raises(NsbenchError, match="bad IDX magic number 2049"):
        fashion_mnist.read_idx(tmp_path / "bad.gz", fashion_mnist.IMAGES_MAGIC, 3)
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(struct.pack(">4i", fashion_mnist.IMAGES_MAGIC, 3, 28, 28) + b"\0" * 100)
    with pytest.raises(NsbenchError, match=r"short.gz: IDX body holds 100 bytes"):
        fashion_mnist.read_idx(tmp_path / "short.gz", fashion_mnist.IMAGES_MAGIC, 3)


def test_fashion_mnist_env_dir_must_hold_all_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NSBENCH_FASHION_MNIST", str(tmp_path))
    with pytest.raises(NsbenchError, match="missing the four Fashion-MNIST"):
        fashion_mnist.find_dir()


@pytest.mark.skipif(fashion_mnist.find_dir() is None, reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian():
    src = open_source("fashion-mnist", "test")
    assert len(src) == 10000 and src.images.shape == (10000, 28, 28, 1) and np.bincount(src.labels).tolist() == [1000] * 10
    assert prepare(src.load(0), 32, src.kind).shape == (32, 32, 3)


def test_unreadable_images_are_skipped_and_counted(tiny_folder, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_folder, root)
    (root / "train" / "class0" / "broken.png").write_bytes(b"not a png")
    src = open_source(f"folder:{root}", "train")
    assert len(src) == 161
    ds = ImageDataset(src, np.arange(len(src)), 32)
    seen, skipped = 0, 0
    for x, y, idx, sk in make_loader(ds, 32, 0):
        seen += 0 if x is None else len(x)
        skipped += sk
    assert (seen, skipped) == (160, 1)


def test_hf_dataset_from_local_disk_and_bad_column(tmp_path):
    import datasets
    from PIL import Image

    imgs = [Image.fromarray(np.full((20, 20), i * 40, np.uint8)) for i in range(6)]
    ds = datasets.Dataset.from_dict({"img": imgs, "y": [0, 1, 2, 0, 1, 2]},
                                    features=datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=list("abc"))}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    src = open_source(f"hf:{tmp_path / 'hf'}", "train", image_column="img", label_column="y")
    assert src.classes == list("abc") and src.labels.tolist() == [0, 1, 2, 0, 1, 2]
    out = prepare(src.load(1), 32, src.kind)
    assert out.shape == (32, 32, 3) and out[16, 16, 0] == 40 and out[0, 0, 0] == 0  # grey to RGB, padded to 32
    with pytest.raises(NsbenchError, match="no image column 'image'"):
        open_source(f"hf:{tmp_path / 'hf'}", "train")


def test_bad_source_specs_and_missing_splits(tiny_folder):
    with pytest.raises(NsbenchError, match="expected fashion-mnist, hf:ORG/NAME"):
        open_source("mnist", "train")
    with pytest.raises(NsbenchError, match="no 'val' split folder"):
        open_source(f"folder:{tiny_folder}", "val")


def test_labeled_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(4), 10)
    a, rest = labeled_split(labels, 3, seed=1)
    b, _ = labeled_split(labels, 3, seed=1)
    c, _ = labeled_split(labels, 3, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(labels[a]).tolist() == [3] * 4 and len(rest) == 28 and not set(a) & set(rest)
    with pytest.raises(NsbenchError, match="fewer than labels_per_class=11"):
        labeled_split(labels, 11, seed=0)


def write_parquet_shards(root, images, labels=None, per_file=10, row_group=4):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for f, s in enumerate(range(0, len(images), per_file)):
        blobs = []
        for img in images[s : s + per_file]:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            blobs.append(buf.getvalue())
        cols = {"image": pa.array([{"bytes": b, "path": None} for b in blobs])}
        if labels is not None:
            cols["label"] = pa.array(labels[s : s + per_file])
        pq.write_table(pa.table(cols), root / f"shard-{f:03d}.parquet", row_group_size=row_group)


def test_parquet_shards_stream_by_row_group(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(25) % 3
    images = [make_image(int(c), rng) for c in labels]
    write_parquet_shards(tmp_path / "pq", images, labels)
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train")
    assert len(src) == 25 and src.labels.tolist() == labels.tolist() and src.classes == ["0", "1", "2"]
    for i in (0, 13, 24, 7):
        assert np.array_equal(src.load(i), images[i])
    assert len(src._cache) <= 4  # only a few row groups decoded at a time
    with pytest.raises(NsbenchError, match="no .parquet shards"):
        open_source(f"parquet:{tmp_path}", "train")
    write_parquet_shards(tmp_path / "nolabel", images[:5])
    assert open_source(f"parquet:{tmp_path / 'nolabel'}", "train").labels.tolist() == [-1] * 5


def test_fashion_mnist_missing_everywhere_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("NSBENCH_FASHION_MNIST", raising=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    with pytest.raises(NsbenchError) as e:
        open_source("fashion-mnist", "train")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "zalando-datasets/fashion_mnist" in msg and "\n" not in msg


# 16-bit images (issue 13, probe 2)

def _grey16(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (32, 32)).astype(np.uint16)


def test_16_bit_pngs_scale_to_uint8_in_every_source(tmp_path):
    from PIL import Image

    import pyarrow as pa
    import pyarrow.parquet as pq

    imgs = [_grey16(i) for i in range(4)]
    expect = [np.round(a / 257.0) for a in imgs]
    for c in range(2):
        d = tmp_path / "folder" / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(imgs[2 * c + i]).save(d / f"{i}.png")
    assert Image.open(d / "0.png").mode.startswith("I")
    folder = open_source(f"folder:{tmp_path / 'folder'}", "train")
    for i in range(4):
        got = folder.load(i)
        assert got.dtype == np.uint8 and got.shape == (32, 32, 3)
        assert np.abs(got[..., 0].astype(float) - expect[i]).max() <= 1

    blobs = []
    for a in imgs:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": blobs, "label": [0, 0, 1, 1]}), tmp_path / "pq" / "part-0.parquet")
    parquet = open_source(f"parquet:{tmp_path / 'pq'}", "train")
    assert np.abs(parquet.load(3).astype(float) - expect[3]).max() <= 1

    arr = ArraySource("u16", np.stack(imgs), np.zeros(4), ["a"])
    assert arr.images.dtype == np.uint8 and np.abs(arr.load(1)[..., 0].astype(float) - expect[1]).max() <= 1


# a checkpoint scored on a dataset with other classes (issue 13, probe 3)

def test_sources_with_other_classes_than_the_model_are_refused(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    monkeypatch.setattr(fashion_mnist, "load_split", lambda split: (rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
                                                                    np.arange(20) % 10))
    four = ["class0", "class1", "class2", "class3"]
    with pytest.raises(NsbenchError, match=r"10 classes \(T-shirt.*model's 4 classes \(class0"):
        open_source("fashion-mnist", "test", classes=four)
    assert open_source("fashion-mnist", "test", classes=list(fashion_mnist.CLASSES)).classes == list(fashion_mnist.CLASSES)

    buf = io.BytesIO()
    Image.fromarray(make_image(0, rng)).save(buf, format="PNG")
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": [buf.getvalue()] * 10, "label": list(range(10))}), tmp_path / "pq" / "a.parquet")
    with pytest.raises(NsbenchError, match=r"labels go up to 9 \(10 classes\) but the model has 4 classes"):
        open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=four)

    import datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y", "z", "w"])})
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(make_image(0, rng))] * 4, "label": [0, 1, 2, 3]},
                                    features=feats)
    ds.save_to_disk(tmp_path / "hf")
    with pytest.raises(NsbenchError, match=r"4 classes \(x, y, z, w\) differ from the model's 4 classes \(class0"):
        open_source(f"hf:{tmp_path / 'hf'}", "train", classes=four)
    assert open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["x", "y", "z", "w"]).classes == ["x", "y", "z", "w"]


# damaged Parquet row groups are skipped and counted; string labels (issue 21, probe 6)

@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("columns", [(0,), (0, 1)], ids=["image chunk", "image and label chunks"])
def test_a_damaged_parquet_row_group_is_skipped_and_counted(tmp_path, columns):
    from nsbench.data.loaders import iterate_clean
    from nsbench.data.sources import UnreadableImage, open_source

    path = write_parquet(tmp_path / "pq", [i % 4 for i in range(12)])
    damage_row_group(path, 1, columns)
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=[f"class{c}" for c in range(4)])
    assert len(src) == 12
    with pytest.raises(UnreadableImage, match=r"row group 1"):
        src.load(5)
    assert src.load(8).shape == (32, 32, 3)
    ids, skipped = [], 0
    for _, _, i, sk in iterate_clean(src, np.arange(12), 32, 5, 0):
        ids += i.tolist()
        skipped += sk
    assert ids == [0, 1, 2, 3, 8, 9, 10, 11] and skipped == 4


@pytest.mark.usefixtures("fresh_log_handlers")
def test_parquet_string_labels_map_by_class_names_or_fail_in_one_line(tmp_path):
    from nsbench.data.sources import open_source

    names = ["cat", "dog", "cow"]
    write_parquet(tmp_path / "pq", ["dog", "cat", None, "cow", "dog", "cat"], group=3)
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train")  # no model: the sorted names
    assert src.classes == ["cat", "cow", "dog"] and src.labels.tolist() == [2, 0, -1, 1, 2, 0]
    src = open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=names)  # a model's order
    assert src.classes == names and src.labels.tolist() == [1, 0, -1, 2, 1, 0]
    with pytest.raises(NsbenchError, match=r"label 'cow' is not among the model's 2 classes \(cat, dog\)$"):
        open_source(f"parquet:{tmp_path / 'pq'}", "train", classes=["cat", "dog"])


@pytest.mark.usefixtures("fresh_log_handlers")
def test_hf_rows_that_cannot_be_read_are_skipped_and_string_labels_map(tmp_path):
    import datasets

    from nsbench.data.loaders import iterate_clean
    from nsbench.data.sources import open_source

    rng = np.random.default_rng(0)
    good = [{"bytes": png_bytes(i % 3, rng), "path": None} for i in range(6)]
    good[2] = {"bytes": b"\x89PNG damaged", "path": None}
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": good, "label": ["dog", "cat", "cow", None, "dog", "cat"]},
                               features=feats).save_to_disk(tmp_path / "hf")
    src = open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["cat", "dog", "cow"])
    assert src.labels.tolist() == [1, 0, 2, -1, 1, 0]
    ids, skipped = [], 0
    for _, _, i, sk in iterate_clean(src, np.arange(6), 32, 4, 0):
        ids += i.tolist()
        skipped += sk
    assert ids == [0, 1, 3, 4, 5] and skipped == 1
    with pytest.raises(NsbenchError, match=r"label 'cow' is not among the model's 2 classes"):
        open_source(f"hf:{tmp_path / 'hf'}", "train", classes=["cat", "dog"])
