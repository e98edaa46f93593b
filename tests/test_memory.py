"""nodelib.memory: the saved-tensor instrument counts each storage once."""
from __future__ import annotations

import torch

from nodelib.memory import saved_tensor_bytes


def test_two_views_of_one_storage_are_counted_once():
    x = torch.randn(1000, requires_grad=True)

    def product_of_halves():
        y = x * 2.0  # one fresh 4,000-byte storage
        return (y[:500] * y[500:]).sum()  # mul saves both halves: two views of y's storage

    _, nbytes = saved_tensor_bytes(product_of_halves)
    assert nbytes == 4000


def test_the_same_tensor_saved_twice_counts_once():
    x = torch.randn(256, requires_grad=True)
    _, once = saved_tensor_bytes(lambda: (x * x).sum())  # mul saves x for both operands
    assert once == 256 * 4
    _, exp_out = saved_tensor_bytes(lambda: (x * 1.0).exp().sum())  # exp saves its output
    assert exp_out == 256 * 4


def test_nodelib_imports_without_the_resource_module():
    """Windows has no module ``resource``: every module of nodelib imports without it (it is imported where the
    high-water mark is read), and reading the mark there says what is missing."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['resource'] = None  # `import resource` now raises ImportError, as on Windows\n"
        "import nodelib, nodelib.memory\n"
        "for module in pkgutil.walk_packages(nodelib.__path__, 'nodelib.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)\n"
        "try:\n"
        "    nodelib.memory.rss_high_water_bytes()\n"
        "except OSError as err:\n"
        "    print('OSError:', err)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OSError: the resident-set high-water mark needs the module 'resource'" in result.stdout


def test_the_high_water_mark_on_windows_is_the_peak_working_set(monkeypatch):
    from nodelib import memory

    monkeypatch.setattr(memory.sys, "platform", "win32")
    monkeypatch.setattr(memory, "_windows_peak_working_set", lambda: 123 * 2**20)
    assert memory.rss_high_water_bytes() == 123 * 2**20
    monkeypatch.undo()
    assert memory.rss_high_water_bytes() > 2**20  # here: getrusage's ru_maxrss, in bytes
