"""Atomic file writes: a temp file in the same folder, then `os.replace` (never half-written)."""

import contextlib
import json
import math
import numbers
import os
import tempfile


def default_file_mode():
    """The mode `open()` would give a new file under the current umask (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json_atomic(path, payload):
    """Writes `payload` as indented, strict JSON to `path` atomically and returns the path.

    NaN and infinities (an accuracy that diverged, the relative width of a zero MSE), which
    JSON does not have, are written as null; arrays and objects with `to_dict` are expanded.
    """
    # Serialise first: a payload that cannot be written leaves the old file untouched.
    text = json.dumps(_strict(payload), indent=2, allow_nan=False, default=_default) + "\n"
    return write_text_atomic(path, text)


def _strict(obj):
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        return float(obj) if math.isfinite(obj) else None  # numpy floats too
    if hasattr(obj, "tolist") or hasattr(obj, "to_dict"):
        return _strict(_default(obj))
    return obj


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temp path in `path`'s folder; on success it becomes `path`, on error it is removed.

    The file gets the mode `open()` would give it (mkstemp creates 0o600), and `os.replace` makes
    the switch atomic, so readers see the old file or the whole new one, never a partial write.

    Example:
    >>> with atomic_path("out/model.png", suffix=".png") as tmp:
    ...     figure.savefig(tmp)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Writes `text` to `path` atomically (temp file in the same folder, then `os.replace`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return os.fspath(path)


def _default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an inter-process lock on the file `path` (POSIX `flock`) for the `with` body.

    Processes that prepare the same files (two `lanmax` commands preparing one dataset) wait
    for one another instead of colliding. Where `fcntl` is missing (Windows) it does not lock.

    Args:
        path: the lock file (created with its folder if missing; left in place).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
