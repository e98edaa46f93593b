"""The CPU code paths a chapter's checked numbers must not depend on.

PyTorch on x86 picks, at start-up, the widest instruction set the processor has for three libraries: its own
vectorised kernels (ATen: AVX-512, AVX2 or plain), Intel's MKL (BLAS) and oneDNN (convolutions). Each path
rounds differently in the last bits, and training amplifies those bits. Three environment variables, read
when a process starts, force a narrower path:

- ``ATEN_CPU_CAPABILITY`` (``avx512``, ``avx2``, ``default``),
- ``MKL_ENABLE_INSTRUCTIONS`` (``AVX512``, ``AVX2``, ``SSE4_2``; MKL honours it on Intel processors),
- ``ONEDNN_MAX_CPU_ISA`` (``AVX512_CORE``, ``AVX2``, ``SSE41``).

:func:`other_path` is the setting a test runs the chapters under, beside the machine's own path: on an
AVX-512 machine the AVX2 path (the committed outputs' path on the machine that found this problem), on an
AVX2 machine the plain SSE path; on a processor with one path only (ARM, old x86) there is nothing to compare
and the test says so. :func:`describe` names the processor and the path a process actually took, for the
execution records and the book's execution-status page.

    python tools/cpupaths.py            # this machine's processor, its own path and the other one
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

#: The variables that choose a CPU code path (all of them are cleared or set together).
VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")
AVX2_PATH = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PLAIN_PATH = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def cpu_flags() -> set[str]:
    """The processor's feature flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_name() -> str:
    """Vendor and model, e.g. 'AuthenticAMD AMD EPYC' or 'GenuineIntel Intel(R) Xeon(R) ...'."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    vendor = re.search(r"^vendor_id\s*:\s*(.*)$", text, re.MULTILINE)
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    parts = [m.group(1).strip() for m in (vendor, model) if m]
    return " ".join(parts) or platform.processor() or platform.machine()


def other_path(flags: set[str] | None = None) -> tuple[dict[str, str] | None, str]:
    """``(environment, description)`` of a CPU path other than the machine's own, or ``(None, why not)``."""
    flags = cpu_flags() if flags is None else flags
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None, f"a {platform.machine()} processor: PyTorch has one code path there"
    if "avx512f" in flags:
        return dict(AVX2_PATH), "AVX2 (the machine's own path is AVX-512)"
    if "avx2" in flags:
        return dict(PLAIN_PATH), "plain SSE (the machine's own path is AVX2)"
    return None, "this processor has neither AVX-512 nor AVX2: there is one code path only"


def own_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without any variable that forces a path."""
    env = dict(os.environ if base is None else base)
    for name in VARIABLES:
        env.pop(name, None)
    return env


_PROBE = r"""
import json, os, re, subprocess, sys
import torch
torch.set_num_threads(1)
a = torch.randn(64, 64)
(a @ a).sum()
torch.nn.functional.conv2d(torch.randn(8, 16, 28, 28), torch.randn(32, 16, 3, 3), padding=1)
print(json.dumps({"aten": torch.backends.cpu.get_cpu_capability()}))
"""


def describe(env: dict[str, str] | None = None, python: str | None = None) -> dict[str, str]:
    """The processor and the path a fresh Python process takes under ``env``: ATen's capability, oneDNN's ISA and
    MKL's (from their verbose start-up lines), e.g. ``{"cpu": "AuthenticAMD AMD EPYC", "aten": "AVX2", ...}``."""
    run_env = dict(os.environ if env is None else env, ONEDNN_VERBOSE="1", MKL_VERBOSE="1")
    result = subprocess.run([python or sys.executable, "-c", _PROBE], env=run_env, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout + result.stderr
    info = {"cpu": cpu_name()}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            info.update(json.loads(line))
    isa = re.search(r"onednn_verbose[^\n]*,info,cpu,isa:([^\n]*)", out)
    if isa:
        info["onednn"] = isa.group(1).strip()
    mkl = re.search(r"MKL_VERBOSE oneMKL[^\n]* architecture (?P<isa>[^\n]*?), Lnx", out)
    if mkl:
        info["mkl"] = mkl.group("isa").strip()
    forced = {k: v for k, v in (env or os.environ).items() if k in VARIABLES}
    if forced:
        info["forced"] = ", ".join(f"{k}={v}" for k, v in sorted(forced.items()))
    return info


def summary(info: dict[str, str]) -> str:
    """One line for a record: processor, then ATen's path (and what forced it)."""
    text = f"{info.get('cpu', '?')}; ATen {info.get('aten', '?')}"
    if "onednn" in info:
        text += f"; oneDNN {info['onednn']}"
    if "forced" in info:
        text += f" (forced: {info['forced']})"
    return text


def main() -> int:
    own = describe(own_environment())
    env, why = other_path()
    print("this machine:", summary(own))
    if env is None:
        print("other path: none:", why)
    else:
        print(f"other path, {why}:", summary(describe(own_environment() | env)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
