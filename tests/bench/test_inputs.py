"""Checks before scoring (bench/inputs.py), against docs/own-models.md ("Images at most half the input's side count
as far smaller; a chosen size is used with a warning. Small images are zero-padded to the input size (28 -> 32)")
and docs/commands.md (an input size of 1..4096 px; an unwritable --cache refused in one line; an --out folder
holding another model's results refused unless --overwrite)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from nsbench.bench.inputs import check_input_size, check_out_folder, check_side, check_writable
from nsbench.utils import NsbenchError


class Images:
    """A source of blank images of the given (height, width) sizes, in order."""

    name = "folder:/data/mine[test]"

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def load(self, i):
        return np.zeros((*self.sizes[i], 3), np.uint8)


def refusal(sizes, size) -> str:
    with pytest.raises(NsbenchError) as e:
        check_input_size(Images(sizes), size, explicit=False, model="mine", size_from="the timm model's pretrained config")
    return str(e.value)


def test_28_px_images_at_224_are_refused_naming_the_padded_size_32():
    msg = refusal([(28, 28)] * 4, 224)
    assert msg.startswith("folder:/data/mine[test]: images are 28x28 px, far smaller than mine's 224 px input (the "
                          "timm model's pretrained config); scoring would upscale them 8x")  # 224 / 28
    assert "Pass --input-size 32 (input_size=32 in Python)" in msg  # 28 rounded up to a multiple of 8
    assert "or --input-size 224 to upscale on purpose" in msg


@pytest.mark.parametrize("side, padded", [(17, 24), (24, 24), (25, 32), (30, 32)])
def test_the_suggested_size_is_the_side_rounded_up_to_a_multiple_of_8(side, padded):
    assert f"Pass --input-size {padded} " in refusal([(side, side)], 224)


def test_exactly_half_the_input_side_is_far_smaller_one_more_pixel_is_not():
    assert "images are 32x32 px, far smaller than mine's 64 px input" in refusal([(32, 32)], 64)
    assert check_input_size(Images([(33, 33)]), 64, explicit=False, model="mine", size_from="x") == \
        {"source_image_size": [33, 33]}
    assert check_input_size(Images([(40, 24)]), 64, explicit=False, model="mine", size_from="x") == \
        {"source_image_size": [40, 24]}  # the longer side counts: 40 > 64 / 2


def test_the_message_names_the_typical_image_not_an_outlier():
    """One large image among small ones: the median side (16) decides, and the size named is a 16 px image's."""
    sizes = [(16, 16), (100, 100), (16, 16), (16, 16)]
    assert "images are 16x16 px" in refusal(sizes, 64)


def test_a_chosen_size_is_used_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="nsbench"):
        seen = check_input_size(Images([(28, 28)]), 224, explicit=True, model="mine", size_from="--input-size")
    assert seen == {"source_image_size": [28, 28]}
    assert "mine: images of 28x28 px are scored at 224 px as asked (upscaled 8.0x)" in caplog.text


@pytest.mark.parametrize("value", [1, 32, 4096, None])
def test_input_sizes_from_1_to_4096_are_accepted(value):
    check_side(value, "--input-size")


@pytest.mark.parametrize("value", [0, 4097, -32])
def test_input_sizes_outside_1_to_4096_are_refused(value):
    with pytest.raises(NsbenchError, match=rf"^--input-size: {value} pixels is outside 1\.\.4096$"):
        check_side(value, "--input-size")


@pytest.mark.parametrize("value, shown", [("32", "str '32'"), (32.5, "float 32.5"), (True, "bool True")])
def test_an_input_size_that_is_not_a_whole_number_is_refused(value, shown):
    with pytest.raises(NsbenchError, match=rf"^input_size: expected a whole number of pixels, got {shown}$"):
        check_side(value)


def test_a_missing_cache_folder_is_created_with_its_parents(tmp_path):
    folder = tmp_path / "a" / "b" / "cache"
    check_writable(folder, "--cache")
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone


def held(tmp_path, model) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "meta.json").write_text(model if isinstance(model, str) else json.dumps({"model": model}))
    return folder


def test_an_out_folder_is_refused_only_when_it_holds_another_models_results(tmp_path):
    check_out_folder(tmp_path / "empty", "aa", "new", overwrite=False)  # no meta.json: nothing to replace
    folder = held(tmp_path, {"sha256": "aa", "label": "old", "path": "/m/old.pt"})
    check_out_folder(folder, "aa", "new", overwrite=False, path="/m/new.pt")  # the same weights: its own results
    check_out_folder(folder, "bb", "new", overwrite=True, path="/m/new.pt")
    with pytest.raises(NsbenchError) as e:
        check_out_folder(folder, "bb", "new", overwrite=False, path="/m/new.pt")
    assert str(e.value) == (f"{folder}: already holds the results of another model (old, from /m/old.pt); new, from "
                            "/m/new.pt would replace them: choose another --out or --label, or pass --overwrite "
                            "(overwrite=True)")


@pytest.mark.parametrize("meta, named", [({"sha256": "aa"}, "an unreadable model record"),
                                         ({"label": "old"}, "old"), ("{not json", "an unreadable model record")])
def test_a_held_model_without_its_record_is_named_as_far_as_it_is_known(tmp_path, meta, named):
    folder = held(tmp_path, meta)
    with pytest.raises(NsbenchError, match=rf"another model \({named}\); new would replace"):
        check_out_folder(folder, "bb", "new", overwrite=False)
