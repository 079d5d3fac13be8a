"""Files the product writes: the mode they get, and disk errors said plainly.

Files are written to a temporary name and renamed into place (atomic). `tempfile.mkstemp` creates
them mode 0600 whatever the umask; `new_file_mode()` is what `open()` would have given them (0666
less the process umask), so bar files, models and artifacts follow the operator's umask like any
other file. `disk_error_message` turns an `OSError` into one line naming the path and the cause.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

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
