"""The CLI's errors under torch.distributed (nsbench/cli.py): only rank 0 reports an input error, a rank failing
alone is named, each line is printed once under torchrun."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from helpers import ENV, ROOT, teacher_only
from nsbench.cli import main
from nsbench.utils import NsbenchError


# only rank 0 speaks (issue 13, probe 15)

@pytest.mark.parametrize("rank", ["0", "1"])
def test_non_zero_ranks_keep_input_errors_to_rank_0(tmp_path, monkeypatch, capsys, rank):
    """An input error found before the ranks meet is found by every rank: rank 0 alone reports it."""
    import logging

    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "level", logger.level)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--out", str(tmp_path / "x"), "teacher_optim.batch_size=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("teacher_optim.batch_size: must be >= 1") == (1 if rank == "0" else 0)
    assert err.strip() == "" or len(err.strip().splitlines()) == 1


def test_a_rank_failing_alone_is_named_and_other_ranks_do_not_log(monkeypatch, capsys):
    import logging

    import nsbench.cli as cli

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setattr(cli, "_joined_group", lambda: True)
    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    seen = {}

    def fail(args):
        seen["info"] = logger.isEnabledFor(logging.INFO)
        raise NsbenchError("shard 3: device lost")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser(), fail))
    assert cli.main(["ls"]) == 2
    assert seen == {"info": False}
    assert capsys.readouterr().err.strip() == "nsbench: error: [rank 3] shard 3: device lost"


def _with_handler(parser, fn):
    parser.set_defaults(handler=fn)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(handler=fn)
    return parser


@pytest.mark.slow
def test_under_torchrun_each_line_is_printed_once(tiny_folder, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(teacher_only(tiny_folder)))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                           "nsbench", "train", "--recipe", str(recipe), "--out", str(tmp_path / "run")],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    for line in ("iteration 0: supervised teacher", "iter0 epoch 1/1 loss", "iteration 0: val top-1"):
        assert text.count(line) == 1, (line, text[-3000:])
