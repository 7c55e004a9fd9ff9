"""File writes (nsbench/utils.py): a full disk is one line naming the file; temporaries of killed writers are
recognised and only theirs removed."""
from __future__ import annotations

import errno
import os
import re

import pytest

from helpers import killed_pid_temp
from nsbench.utils import NsbenchError, write_json


def test_temporaries_of_killed_writers_are_recognised_and_only_theirs_removed(tmp_path):
    from nsbench.utils import clean_stale_temps

    stale = killed_pid_temp(tmp_path)
    assert re.fullmatch(r"\.big\.bin\.tmp-\d+-\w+", stale.name) and stale.stat().st_size == 100000
    live = tmp_path / f".other.tmp-{os.getpid()}-abc"
    live.write_bytes(b"a write in progress")
    assert clean_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


# one line instead of a traceback (issue 13, probe 10)

def test_disk_full_at_the_rename_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(NsbenchError, match=r"summary\.json: cannot write \(No space left on device\)$"):
        write_json(tmp_path / "summary.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # no temporary left behind
