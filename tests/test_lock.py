"""The run lock (nsbench/lock.py): a live holder is refused or waited for, a dead one's lock taken over."""
from __future__ import annotations

import json
import os

import pytest

from helpers import dead_lock
from nsbench.utils import NsbenchError


# two runs into one folder (issue 13, probe 7)

def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path):
    from nsbench.lock import LOCK_NAME, run_lock

    with run_lock(tmp_path, what="first"):
        with pytest.raises(NsbenchError, match=rf"in use by first \(pid {os.getpid()} on "):
            with run_lock(tmp_path, what="second"):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    dead_lock(tmp_path)
    with run_lock(tmp_path, what="after a kill") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_run_lock_waits_for_a_live_holder_when_asked(tmp_path):
    import threading

    from nsbench.lock import run_lock

    order = []
    with run_lock(tmp_path, what="first"):
        t = threading.Thread(target=lambda: _take(tmp_path, order))
        t.start()
        t.join(0.3)
        order.append("first releases")
    t.join()
    assert order == ["first releases", "second holds"]


def _take(folder, order):
    from nsbench.lock import run_lock

    with run_lock(folder, what="second", wait=True, poll=0.05):
        order.append("second holds")
