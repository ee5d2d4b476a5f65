"""Which torch device an encoder runs on: ``device: auto`` (the default) picks CUDA, then
Apple's MPS, then the CPU; any other value (``cpu``, ``cuda``, ``cuda:1``, ``mps``) is used
as given and checked when the model loads.

Resolution imports torch, so it happens when a model loads (never in ``validate``, never
in a run served from the cache). The device is not part of an encoder's fingerprint: a
CPU and a GPU encode the same vectors to float rounding, as different batch sizes do.
"""

from __future__ import annotations

import os
import re

from evalharness.errors import UserError

AUTO = "auto"
_SYNTAX = re.compile(r"^(auto|cpu|mps|cuda|xpu|npu|hpu|meta)(:\d+)?$")


def check_syntax(value: str) -> str:
    """The option's value, normalised (``CUDA`` -> ``cuda``); rejects what no torch
    device looks like, without importing torch (``validate`` stays fast)."""
    v = str(value).strip().lower()
    if not _SYNTAX.match(v) or v.startswith("auto:"):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or "
                         f"'mps'. Got {value!r} instead.")
    return v


def _torch():
    import torch

    return torch


def cuda_available() -> bool:
    try:
        return bool(_torch().cuda.is_available())
    except Exception:  # a broken CUDA install is no CUDA
        return False


def mps_available() -> bool:
    try:
        mps = getattr(_torch().backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    except Exception:
        return False


def resolve_device(requested: str | None, *, field: str | None = None) -> str:
    """``auto`` -> ``cuda`` / ``mps`` / ``cpu`` (first available); an explicit device is
    checked: asking for CUDA or MPS where there is none is a UserError naming ``field``."""
    req = check_syntax(requested or AUTO)
    if req == AUTO:
        if cuda_available():
            return "cuda"
        if mps_available():
            return "mps"
        return "cpu"
    kind, _, num = req.partition(":")
    if kind == "cuda":
        if not cuda_available():
            raise UserError(f"device '{req}' was asked for, but torch sees no CUDA device",
                            field=field, hint="use device: auto (or cpu), or install a CUDA "
                            "build of torch")
        count = _torch().cuda.device_count()
        if num and int(num) >= count:
            raise UserError(f"device '{req}' was asked for, but torch sees {count} CUDA "
                            f"device(s) (cuda:0..cuda:{count - 1})", field=field)
    elif kind == "mps" and not mps_available():
        raise UserError(f"device '{req}' was asked for, but MPS is not available",
                        field=field, hint="use device: auto (or cpu)")
    return req


def accelerator_possible() -> bool:
    """False when this machine certainly has no device torch could use: no NVIDIA or AMD
    (ROCm) device files and not an Apple-silicon Mac. Needs no torch."""
    import glob
    import platform
    import sys

    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd")
                or os.path.exists("/dev/dxg"))


def planned_device(requested: str | None) -> str:
    """The device an encoder with this option runs (or would run) on, without loading a
    model, and without importing torch where the answer is certain (the CPU of a machine
    with no accelerator): what a run served from the cache records."""
    import sys

    req = check_syntax(requested or AUTO)
    if req != AUTO:
        return req
    if "torch" not in sys.modules and not accelerator_possible():
        return "cpu"
    return resolve_device(AUTO)


def is_accelerator(device: str) -> bool:
    return not str(device).startswith("cpu")


def device_name(device: str) -> str:
    """A human name: ``cuda:0 (NVIDIA H100 80GB HBM3)``, ``mps``, ``cpu``."""
    if str(device).startswith("cuda"):
        try:
            torch = _torch()
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        except Exception:
            return str(device)
    return str(device)


class TorchDevice:
    """Mixin of torch encoders: ``device`` (named) and ``describe()`` with device/dtype.
    The encoder sets ``_device_name`` when its model loads."""

    _device_name: str | None = None

    @property
    def device(self) -> str:
        """The device this encoder runs on, named; before the model loads (a run served
        from the cache), the one it would load on."""
        return self._device_name or device_name(planned_device(self.options.device))

    def describe(self) -> dict:
        return {**super().describe(), "device": self.device, "dtype": self.options.dtype}


__all__ = ["AUTO", "TorchDevice", "accelerator_possible", "check_syntax", "cuda_available", "device_name",
           "is_accelerator", "mps_available", "planned_device", "resolve_device"]
