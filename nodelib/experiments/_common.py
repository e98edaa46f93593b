"""Conventions shared by the full experiments: machine description and atomic JSON results (:mod:`nodelib._impl.atomic`)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from .._impl.atomic import atomic_path, write_json_atomic
from ..errors import RunError

__all__ = ["atomic_path", "code_revision", "describe_machine", "finished_comparison", "write_json_atomic"]


def describe_machine(device: torch.device) -> dict[str, Any]:
    """What produced a result: device name, CPU, thread count and software versions."""
    info: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": code_revision(),
    }
    return info


def code_revision() -> str:
    """The git commit of the code that ran, with '+dirty' if it had uncommitted changes; 'unknown' outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        # recorded results (data, not code) do not make the revision dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nodelib", ":(exclude)nodelib/experiments/results"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(name: str, config: Any, ctx: Any, device: torch.device) -> dict[str, Any]:
    """The first entries of every result file: the experiment, the command that ran it, its settings, the machine."""
    from .base import config_to_dict

    settings = config.describe() if hasattr(config, "describe") else config_to_dict(config)
    return {"experiment": name, "command": ctx.command, "config": settings, "machine": describe_machine(device)}


def finished_comparison(source: str, ctx: Any) -> tuple[Path, dict[str, Any]]:
    """The folder and result of the comparison ``source`` that an analysis reads: beside the analysis's own folder
    (``OUT/SOURCE``, or ``OUT/SOURCE-smoke`` for a smoke run), with a clear error if it has not run there."""
    folder = Path(ctx.out).parent / (source + ("-smoke" if ctx.smoke else ""))
    result = folder / "result.json"
    if not result.is_file():
        raise RunError(f"no finished comparison at {folder}: run `python -m nodelib.experiments run {source}"
                       f"{' --smoke' if ctx.smoke else ''}` with the same --out first")
    return folder, json.loads(result.read_text())
