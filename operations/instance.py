"""The identity of this process instance, recorded as the owner of the local operations it runs.

The id is `host:pid:start:nonce` (`start` is the process start time from /proc where there is
one). A reader in another process uses it to tell a live owner on this host — e.g. a
`manage.py train` run beside the server, whose owner refresh keeps the row fresh
(`docs/architecture.md` §5) — from a gone one (a restart): only the latter's running operations
are marked interrupted.
"""

from __future__ import annotations

import os
import socket
import uuid


def _start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), or "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # Field 22; the command name (field 2) may hold spaces, so split after its ')'.
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


_HOST = socket.gethostname()
_INSTANCE_ID = f"{_HOST}:{os.getpid()}:{_start_time(os.getpid())}:{uuid.uuid4().hex[:8]}"


def current_instance_id() -> str:
    return _INSTANCE_ID


def owner_is_alive(owner: str) -> bool:
    """True when `owner` is another process on this host that is still running."""
    if not owner or owner == _INSTANCE_ID:
        return False
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != _HOST:
        return False  # another host, or an id we cannot check: treat as gone
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # an earlier incarnation of this very process id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    # A recycled pid has another start time.
    return parts[2] == "" or _start_time(pid) == parts[2]


def _set_instance_id_for_tests(value: str) -> None:
    """Simulate a restart: later reads see a process that owns none of the old operations."""
    global _INSTANCE_ID
    _INSTANCE_ID = value
