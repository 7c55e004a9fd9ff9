"""Data sources: the IDX reader, folders with unreadable files, HF datasets from local disk, splits."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from nsbench.data import fashion_mnist as FM
from nsbench.data import labeled_split, open_source
from nsbench.data.loaders import ImageDataset, make_loader
from nsbench.data.transforms import prepare
from nsbench.utils import NsbenchError


def write_idx(path, arr, magic):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">i", magic) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(np.uint8).tobytes())


def test_idx_reader_checks_magic_and_shape(tmp_path):
    imgs = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 255
    write_idx(tmp_path / "ok.gz", imgs, FM.IMAGES_MAGIC)
    assert np.array_equal(FM.read_idx(tmp_path / "ok.gz", FM.IMAGES_MAGIC, 3), imgs)
    write_idx(tmp_path / "bad.gz", imgs, FM.LABELS_MAGIC)
    with pytest.raises(NsbenchError, match="bad IDX magic number 2049"):
        FM.read_idx(tmp_path / "bad.gz", FM.IMAGES_MAGIC, 3)
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(struct.pack(">4i", FM.IMAGES_MAGIC, 3, 28, 28) + b"\0" * 100)
    with pytest.raises(NsbenchError, match=r"short.gz: IDX body holds 100 bytes"):
        FM.read_idx(tmp_path / "short.gz", FM.IMAGES_MAGIC, 3)


def test_fashion_mnist_env_dir_must_hold_all_files(tmp_path, monkeypatch):
    monkeypatch.setenv("NSBENCH_FASHION_MNIST", str(tmp_path))
    with pytest.raises(NsbenchError, match="missing the four Fashion-MNIST"):
        FM.find_dir()


@pytest.mark.skipif(FM.find_dir() is None, reason="Debian's dataset-fashion-mnist is not installed")
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
    from conftest import make_image

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
    monkeypatch.setattr(FM, "DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    with pytest.raises(NsbenchError) as e:
        open_source("fashion-mnist", "train")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "zalando-datasets/fashion_mnist" in msg and "\n" not in msg
