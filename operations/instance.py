"""The identity of this process instance, recorded as the owner of the local operations it runs.

A new process (a restart) has a new id, so a running local operation owned by another id has lost
its worker and is marked interrupted on read.
"""

from __future__ import annotations

import os
import socket
import uuid

_INSTANCE_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def current_instance_id() -> str:
    return _INSTANCE_ID


def _set_instance_id_for_tests(value: str) -> None:
    """Simulate a restart: later reads see a process that owns none of the old operations."""
    global _INSTANCE_ID
    _INSTANCE_ID = value
