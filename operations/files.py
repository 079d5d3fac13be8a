"""Files the product writes: the mode they get, and disk errors said plainly.

Files are written to a temporary name and renamed into place (atomic). `tempfile.mkstemp` creates
them mode 0600 whatever the umask; `new_file_mode()` is what `open()` would have given them (0666
less the process umask), so bar files, models and artifacts follow the operator's umask like any
other file. `disk_error_message` turns an `OSError` into one line naming the path and the cause.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_DEFAULT_UMASK = 0o022


def _process_umask() -> int:
    # Reading it with os.umask() means setting it, which races with other threads: Linux says it.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _DEFAULT_UMASK


def new_file_mode() -> int:
    return 0o666 & ~_process_umask()


def follow_umask(fd: int) -> None:
    """Give a file made by `mkstemp` the mode a plain `open()` would have given it."""
    os.fchmod(fd, new_file_mode())


def write_atomic(path: Path, content: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `content` (bytes, or a function writing to the open file) to `path` atomically:
    a temporary file beside it, flushed and fsynced, renamed into place; on any error it is
    removed and `path` is left as it was."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(content, bytes):
                fh.write(content)
            else:
                content(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(directory: Path) -> None:
    """Make the renames in `directory` durable (where the file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def disk_error_message(action: str, path: Path | str, exc: OSError) -> str:
    """`"could not save the model to /x/y.pt: the disk is full (12.0 MB free)"`."""
    cause = _CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
    free = free_bytes(Path(path))
    room = f" ({free / 1e6:.1f} MB free)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"could not {action} {path}: {cause}{room}"


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system of `path` (or of its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stat = os.statvfs(probe)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize
