"""Measuring the memory a gradient costs (chapter 2, reused by later chapters).

Two instruments:

- :func:`saved_tensor_bytes` counts the bytes autograd keeps alive between the forward and the backward pass
  (every tensor saved for backward, each storage counted once). This is the part of training memory that
  grows with the number of solver steps; it is exact, deterministic and the same on every device.
- :func:`peak_memory` measures the peak of the whole process during a call: on a CUDA device with
  ``torch.cuda.max_memory_allocated``, on the CPU with the operating system's high-water mark of the process
  (``ru_maxrss``; run each configuration in a fresh process, since that mark never goes down).

The high-water mark comes from the standard module ``resource`` on Linux and macOS, imported only when it is read
(Windows has no ``resource``: importing nodelib must work there), and from the Win32 call
``GetProcessMemoryInfo`` (the peak working set) on Windows.
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def saved_tensor_bytes(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn()`` and return its result and the bytes of the tensors autograd saved for backward meanwhile."""
    seen: dict[tuple, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        key = (tensor.device.type, tensor.device.index, storage.data_ptr())
        seen[key] = max(seen.get(key, 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn()
    return result, sum(seen.values())


def rss_high_water_bytes() -> int:
    """The process's resident-set high-water mark in bytes (it never goes down).

    ``ru_maxrss`` of ``getrusage`` on Linux and macOS; on Windows, where the module ``resource`` does not exist, the
    peak working set that ``GetProcessMemoryInfo`` reports (the same quantity: the most physical memory the process
    has held). Raises ``OSError`` where neither can be read.
    """
    if sys.platform == "win32":
        return _windows_peak_working_set()
    try:
        import resource  # POSIX only: imported here, so that importing nodelib works on Windows
    except ImportError as exc:  # pragma: no cover - a platform that is neither POSIX nor Windows
        raise OSError(f"the resident-set high-water mark needs the module 'resource', which {sys.platform} lacks") from exc
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024  # Linux reports KiB, macOS bytes


def _windows_peak_working_set() -> int:
    """PeakWorkingSetSize of PROCESS_MEMORY_COUNTERS for this process (kernel32's K32GetProcessMemoryInfo)."""
    if sys.platform != "win32":
        raise OSError(f"GetProcessMemoryInfo is a Windows call; this is {sys.platform}")
    import ctypes
    from ctypes import wintypes

    class ProcessMemoryCounters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in ("PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                                                 "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                                                 "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

    counters = ProcessMemoryCounters()
    counters.cb = ctypes.sizeof(counters)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.K32GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.POINTER(ProcessMemoryCounters), wintypes.DWORD]
    kernel32.K32GetProcessMemoryInfo.restype = wintypes.BOOL
    if not kernel32.K32GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
        raise ctypes.WinError(ctypes.get_last_error())
    return int(counters.PeakWorkingSetSize)


def peak_memory(fn: Callable[[], T], device: torch.device) -> tuple[T, int]:
    """Run ``fn()`` and return its result and the peak memory it added, in bytes, on ``device``.

    On CUDA this is the peak allocated by PyTorch during the call above what was allocated before it. On the
    CPU it is the growth of the process's resident-set high-water mark, which is only meaningful for the
    first measurement in a fresh process.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before
    before = rss_high_water_bytes()
    result = fn()
    return result, rss_high_water_bytes() - before
