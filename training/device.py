"""Which torch device a training run uses: `auto` (CUDA when present, else CPU), or named.

The choice is strategy-independent: the runner reads it from the operation's metadata
(`device`) or the `KTRDR["TRAINING_DEVICE"]` setting (default `auto`), so one strategy file
trains on a laptop's CPU and on a GPU agent alike.

* `auto` — `cuda` (the current CUDA device) when `torch.cuda.is_available()`, else `cpu`.
  Apple MPS is never picked automatically (untested here); name it to use it.
* `cpu`, `cuda`, `cuda:N`, `mps` — that device, or a `TrainingDeviceError` saying why it cannot
  be used (no CUDA in this torch build / on this machine, index out of range, …). The error
  fails the operation with that message; nothing crashes.

Determinism on CUDA (`enable_cuda_determinism`): cuDNN autotuning off, deterministic
algorithms on (`warn_only`, so an op without a deterministic kernel warns instead of failing
the run), and `CUBLAS_WORKSPACE_CONFIG=:4096:8` when the environment does not set it. That gives
run-to-run identical results on the same GPU model, driver, CUDA and torch versions; results on
CUDA differ from CPU results (a different order of floating-point sums), and
`torch.use_deterministic_algorithms` is process-wide.

No Django; torch is imported inside functions.
"""

from __future__ import annotations

import os
import re
from typing import Any

from training.errors import TrainingDeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def normalise_device(value: Any) -> str:
    """`None`/empty → `auto`; otherwise the lower-cased name, checked for its form only."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "auto"
    if not isinstance(value, str):
        raise TrainingDeviceError(
            f"training device must be a string ({', '.join(DEVICE_CHOICES)}), got {value!r}"
        )
    text = value.strip().lower()
    match = _DEVICE_RE.match(text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise TrainingDeviceError(
            f"unknown training device {value!r}; use one of {', '.join(DEVICE_CHOICES)}"
        )
    return text


def _cuda_missing_reason(torch: Any) -> str:
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    return "no CUDA device is visible on this machine (driver missing or CUDA_VISIBLE_DEVICES)"


def resolve_device(requested: Any = "auto") -> Any:
    """The `torch.device` for `requested`, or `TrainingDeviceError` naming the problem."""
    import torch

    name = normalise_device(requested)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingDeviceError(
                f"training device {name!r} was requested but CUDA is not available: "
                f"{_cuda_missing_reason(torch)}; use 'auto' or 'cpu'"
            )
        index = int(name.partition(":")[2] or torch.cuda.current_device())
        count = torch.cuda.device_count()
        if index >= count:
            raise TrainingDeviceError(
                f"training device {name!r} was requested but this machine has {count} CUDA "
                f"device(s) (cuda:0 to cuda:{count - 1})"
            )
        return torch.device("cuda", index)
    # mps
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise TrainingDeviceError(
            "training device 'mps' was requested but Apple MPS is not available on this machine; "
            "use 'auto' or 'cpu'"
        )
    return torch.device("mps")


def describe_device(device: Any) -> str:
    """`cpu`, `cuda:0 NVIDIA H100 80GB HBM3`, `mps` — for logs, progress and the result."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return str(device)


def enable_cuda_determinism() -> None:
    """Deterministic CUDA kernels where torch has them (process-wide; see the module doc)."""
    import torch

    # Read by cuBLAS when its first handle is created in this process; a value set by the
    # operator wins.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True, warn_only=True)


def cuda_available() -> bool:
    """Whether this process can train on a CUDA device (torch is imported on the first call)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available() and torch.cuda.device_count() > 0)


def gpu_unavailable_here(_metadata: dict[str, Any], require_gpu: bool) -> str:
    """An `OperationKind.local_unavailable` for work that trains: why this process cannot run
    work that asks for a GPU ("" when it can)."""
    if require_gpu and not cuda_available():
        return "this backend has no GPU"
    return ""
