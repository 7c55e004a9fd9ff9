"""Small shared helpers: atomic writes, hashing, seeding, devices, logging."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

log = logging.getLogger("nsbench")


class NsbenchError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 2."""


TEMP_MARK = ".tmp-"  # atomic_path's temporaries are named .NAME.tmp-PID-XXXX beside their target


def check_name(value, what: str) -> str:
    """A name that becomes one folder (a model's label, a study's name or scale): a non-empty string of printable
    characters that is not "." or "..", holds no path separator and is at most 200 characters. Names are never
    paths: a label "../x" would write outside --out."""
    if not isinstance(value, str) or not value:
        raise NsbenchError(f"{what}: must be a non-empty name, got {value!r}")
    bad = [c for c in value if c in "/\\" or not c.isprintable()]
    if bad or value in (".", "..") or len(value) > 200 or value != value.strip():
        why = ("holds a path separator" if any(c in "/\\" for c in bad) else "holds a control character" if bad
               else "is a relative path" if value in (".", "..") else "is longer than 200 characters"
               if len(value) > 200 else "starts or ends with white space")
        raise NsbenchError(f"{what} {value!r}: {why}; a name becomes one folder, never a path")
    return value


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A failed write (disk full, quota, permissions; torch's own writer included) becomes a one-line NsbenchError
    naming the file and the cause. The temporary is named `.NAME.tmp-PID-XXXX`, so a process killed mid-write
    leaves a file that `clean_stale_temps` recognises as its own.
    """
    path = Path(path)
    make_dir(path.parent)
    try:
        if path.is_dir():
            raise NsbenchError(f"{path}: is a folder, cannot write a file there")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-", suffix="", dir=path.parent)
    except OSError as e:
        raise NsbenchError(f"{path}: cannot write ({_os_cause(e)})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        raise NsbenchError(f"{path}: cannot write ({_os_cause(e)})") from None
    except Exception as e:  # noqa: BLE001 - writers that drop errno: torch's C++ writer, safetensors (Rust)
        if not _is_write_failure(e):
            raise
        raise NsbenchError(f"{path}: cannot write ({_write_cause(path, e)})") from None
    finally:
        with contextlib.suppress(OSError):
            if tmp_path.exists():
                tmp_path.unlink()


def make_dir(path: str | os.PathLike) -> Path:
    """Create folder `path` (and its parents); a failure (a file in the way, a read-only filesystem, a full disk,
    permissions) is one NsbenchError naming the folder and the cause."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NsbenchError(f"{path}: exists and is not a folder") from None
    except OSError as e:
        raise NsbenchError(f"{path}: cannot create the folder ({_os_cause(e)})") from None
    return path


def _os_cause(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


# How writers that do not raise OSError say that a write failed: torch's C++ stream writer ("unexpected pos",
# "PytorchStreamWriter failed writing file", and at some free-space levels the bare libstdc++ "basic_ios::clear:
# iostream error"), and safetensors' Rust writer (SafetensorError "Error while serializing: IoError(...)").
_WRITE_FAILURE = re.compile(r"write|inline_container|unexpected pos|PytorchStreamWriter|basic_ios|iostream error|"
                            r"IoError|serializ", re.IGNORECASE)


def _is_write_failure(e: Exception) -> bool:
    if isinstance(e, NsbenchError):
        return False
    kind = type(e).__name__
    return (isinstance(e, RuntimeError) or kind == "SafetensorError") and bool(_WRITE_FAILURE.search(str(e)))


def _write_cause(path: Path, e: Exception) -> str:
    """torch's and safetensors' writers drop errno (or bury it in their message); name the likely cause from what
    the message says and what can be checked."""
    import resource
    import shutil

    # safetensors: "I/O error: File too large (os error 27)" or "IoError(Os { code: 28, ..., message: \"...\" })"
    m = re.search(r'message: "([^"]+)"|I/O error: (.+?) \(os error \d+\)', str(e))
    if m:
        return m.group(1) or m.group(2)
    with contextlib.suppress(OSError):
        if shutil.disk_usage(path.parent).free < (16 << 20):
            return "No space left on device"
    with contextlib.suppress(OSError, ValueError):
        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return "the file size limit (ulimit -f) was reached"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return "the write was cut short: disk full or quota exceeded? (" + (lines[0][:160] if lines else type(e).__name__) + ")"


def stop_if_diverged(metrics: dict, *, stage: str, epoch: int, epochs: int, lr: float) -> None:
    """Stop training when the validation logits are not finite: the weights have diverged (the loss may still
    read finite, e.g. 2.9e9 after lr=1e4), and argmax over NaN logits would score class 0 as a prediction.
    `metrics` is the validation result with `non_finite` (images whose logits hold a NaN or inf) and `n`."""
    bad = int(metrics.get("non_finite") or 0)
    if bad <= 0:
        return
    m = re.search(r"\d+", stage)
    it = f"iteration {m.group(0)}" if m else f"stage {stage}"
    raise NsbenchError(f"{stage}: {it}, epoch {epoch}/{epochs}, learning rate {lr:.4g}: the validation logits are "
                       f"not finite (NaN or inf) for {bad} of {metrics.get('n')} images; the model diverged and is "
                       f"not saved; lower the learning rate or set grad_clip")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete atomic_path temporaries under `folder` whose writer process is dead; return what was removed."""
    pattern = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"(\d+)-\w+$")
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for dirpath, _, files in os.walk(folder):
        for f in files:
            m = pattern.match(f)
            if m and not pid_alive(int(m.group(1))):
                p = Path(dirpath) / f
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NsbenchError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise NsbenchError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")  # the devices nsbench runs on (config.py checks it too)


def resolve_device(name: str = "auto") -> torch.device:
    """auto, cpu, cuda, cuda:N or mps; anything else (tpu, a typo) one line naming the valid ones."""
    if not isinstance(name, str) or not DEVICE.match(name):
        raise NsbenchError(f"device {name!r}: unknown; valid: auto, cpu, cuda, cuda:N, mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NsbenchError(f"device {name!r} requested but CUDA is not available")
    return dev


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("nsbench", "torch", "torchvision", "timm", "numpy", "imagecorruptions-imaug"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def log_file_handler(path: str | os.PathLike) -> logging.FileHandler:
    """A logging handler appending to `path`; a log that cannot be opened is one NsbenchError naming it."""
    make_dir(Path(path).parent)
    try:
        return logging.FileHandler(path)
    except OSError as e:
        raise NsbenchError(f"{path}: cannot write ({_os_cause(e)})") from None


@contextlib.contextmanager
def log_to(path: str | os.PathLike, *, enabled: bool = True) -> Iterator[None]:
    """Also log nsbench's messages to `path` for the block (at INFO unless the caller chose a level), then remove
    only that handler: where else the log goes is the caller's choice. `enabled=False` (ranks other than 0) logs
    nowhere new."""
    if not enabled:
        yield
        return
    root = logging.getLogger("nsbench")
    handler = log_file_handler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    level = root.level
    root.setLevel(level or logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to a file (used by the CLI, never by library code)."""
    root = logging.getLogger("nsbench")
    rank = os.environ.get("RANK", "0")
    if rank not in ("", "0"):  # under torchrun only rank 0 speaks; other ranks report errors, marked with the rank
        level = max(level, logging.ERROR)
    elif root.level:  # `nsbench -v` set DEBUG before the command's setup: keep the more verbose level
        level = min(level, root.level)
    root.setLevel(level)
    fmt = logging.Formatter(("" if rank in ("", "0") else f"[rank {rank}] ") + "%(asctime)s %(levelname)s %(name)s: "
                            "%(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    if log_file is not None:
        log_file = str(Path(log_file).resolve())
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == log_file for h in root.handlers):
            fh = log_file_handler(log_file)
            fh.setFormatter(fmt)
            root.addHandler(fh)


def tqdm(*args, **kwargs):
    """A tqdm progress bar that stays off when stderr is not a terminal (a piped or redirected log gets the log
    lines only, not hundreds of carriage-return updates and blank lines); notebooks keep theirs."""
    from tqdm.auto import tqdm as _tqdm

    if not kwargs.get("disable"):
        kwargs["disable"] = not (_stderr_is_terminal() or "ipykernel" in sys.modules)
    return _tqdm(*args, **kwargs)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
