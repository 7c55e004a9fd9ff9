"""A lock file per folder, so that two processes never write one run folder (or one cache) at once.

The lock is `FOLDER/.nsbench.lock`, created with O_EXCL and holding JSON {pid, host, what, since}. A lock whose
holder is a dead process on this host is stale: it is taken over (a kill -9 never wedges a folder). A lock held by
another host cannot be checked from here; the error names it and the file to delete if that run is gone.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .utils import NsbenchError, pid_alive

LOCK_NAME = ".nsbench.lock"


def _read(lock: Path) -> dict | None:
    """The holder's record; None when the file is gone. A torn or foreign file reads as {} (treated as stale)."""
    try:
        text = lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _stale(holder: dict, lock: Path) -> bool:
    if not holder:  # torn write (killed between create and write) or garbage: stale once it is a few seconds old
        with contextlib.suppress(OSError):
            return time.time() - lock.stat().st_mtime > 5.0
        return True
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    return not isinstance(pid, int) or not pid_alive(pid)


def describe(holder: dict) -> str:
    return (f"{holder.get('what', 'a run')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")


def _try_acquire(lock: Path, record: bytes) -> dict | None:
    """Create the lock; return None on success, else the current holder's record."""
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(lock)
            if holder is None:
                continue  # released between our open and our read: try again
            if _stale(holder, lock):
                # take over atomically: rename the stale file away first, so two takers cannot both win
                grave = lock.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
                try:
                    os.replace(lock, grave)
                except FileNotFoundError:
                    continue
                if _read(grave) != holder:  # someone else replaced it meanwhile: put theirs back, retry
                    with contextlib.suppress(OSError):
                        os.replace(grave, lock)
                    continue
                grave.unlink(missing_ok=True)
                continue
            return holder
        except OSError as e:
            raise NsbenchError(f"{lock}: cannot create the lock file ({e.strerror or e})") from None
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        return None


@contextlib.contextmanager
def run_lock(folder: Path, *, what: str, wait: bool = False, poll: float = 1.0) -> Iterator[Path]:
    """Hold FOLDER/.nsbench.lock for the block. A live holder -> one-line NsbenchError (or wait when `wait`)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NsbenchError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NsbenchError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
    lock = folder / LOCK_NAME
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                         "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}).encode()
    told = False
    while (holder := _try_acquire(lock, record)) is not None:
        if not wait:
            raise NsbenchError(f"{folder}: in use by {describe(holder)}; wait for it to finish, or delete {lock} "
                               f"if that process is gone")
        if not told:
            logging.getLogger("nsbench").info("%s: in use by %s; waiting for it", folder, describe(holder))
            told = True
        time.sleep(poll)
    try:
        yield lock
    finally:
        if _read(lock) == json.loads(record):
            lock.unlink(missing_ok=True)
