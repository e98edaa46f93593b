"""The student's process: runs a submitted notebook in a sandbox, then calls its functions on the hidden tests' inputs.

    python -I runner.py SANDBOX      # SANDBOX/request.json says what to do; SANDBOX/work/ is the working folder

It confines itself first (``sandbox.confine``: nothing outside the Python installation and its sandbox is readable,
nothing but the sandbox writable), then runs every code cell in an IPython shell (shell escapes and ``%pip`` lines
are skipped, a cell that raises does not stop the others, each cell and call has a time limit), runs the public
checks (for the student's information only), and calls the student's functions, and only those, on the inputs of the
plan, with the library functions a question forbids switched off. What the functions return is written to
SANDBOX/outputs.json by ``wire.encode`` after every call. No expected value, reference or hidden test is ever here:
they stay with the checker.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sandbox  # noqa: E402
import wire  # noqa: E402

SKIPPED_LINE = re.compile(r"^\s*(!|%(pip|conda|matplotlib|load_ext|reload_ext|config|env|cd|autoreload|sx|system)\b)")
SKIPPED_CELL = re.compile(r"^\s*%%(bash|sh|script|system|perl|ruby|js|javascript|html|writefile)\b")


class TimeLimit(KeyboardInterrupt):
    """Raised in the student's code when a cell or a call runs past its limit (not an Exception: harder to swallow)."""


def _alarm(signum, frame):
    raise TimeLimit("time limit")


def clean(source: str) -> str:
    """A cell without shell escapes and environment magics (``!pip``, ``%pip``, ``%matplotlib`` ...)."""
    if SKIPPED_CELL.match(source):
        return "pass  # skipped by the grader: a shell cell"
    return "\n".join(re.match(r"^\s*", line).group(0) + "pass  # skipped by the grader" if SKIPPED_LINE.match(line)
                     else line for line in source.splitlines())


def otter_stub() -> None:
    """``import otter`` works and does nothing: the notebook's own checks are not part of grading."""
    otter = types.ModuleType("otter")

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    def test_case(*args, **kwargs):
        def mark(fn):
            fn.__public_test__ = True
            return fn
        return mark

    otter.Notebook = Notebook
    files = types.ModuleType("otter.test_files")
    files.test_case = test_case
    otter.test_files = files
    sys.modules["otter"], sys.modules["otter.test_files"] = otter, files


# --- switching library functions off while an answer runs ---------------------------------------------------------

def _trip_code(label: str, freevars: tuple[str, ...]):
    names = ", ".join(freevars)
    body = ("def outer():\n"
            + "".join(f"    {v} = None\n" for v in freevars)
            + "    def trip(*args, **kwargs):\n"
            + (f"        ({names},)\n" if freevars else "")
            + f"        raise RuntimeError({label!r} + ' is switched off while your answer runs: this question asks you "
              f"to write it yourself')\n"
            + "    return trip\n")
    namespace: dict = {}
    exec(compile(body, "<grader>", "exec"), namespace)
    return namespace["outer"]().__code__


def _collect(obj, prefix: str, found: dict, depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(obj, types.FunctionType):
        if (obj.__module__ or "").startswith(prefix):
            found[id(obj)] = obj
        return
    if isinstance(obj, (staticmethod, classmethod)):
        _collect(obj.__func__, prefix, found, depth + 1)
    elif isinstance(obj, property):
        for accessor in (obj.fget, obj.fset):
            if accessor is not None:
                _collect(accessor, prefix, found, depth + 1)
    elif isinstance(obj, type):
        if (obj.__module__ or "").startswith(prefix):
            for value in vars(obj).values():
                _collect(value, prefix, found, depth + 1)
    elif isinstance(obj, types.ModuleType):
        if obj.__name__.startswith(prefix):
            for value in list(vars(obj).values()):
                _collect(value, prefix, found, depth + 1)
    elif isinstance(obj, dict):
        for value in list(obj.values()):
            _collect(value, prefix, found, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _collect(value, prefix, found, depth + 1)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _collect(getattr(obj, name, None), prefix, found, depth + 1)


def forbidden_functions(targets: list[str]) -> list[types.FunctionType]:
    import importlib

    found: dict = {}
    for target in targets:
        try:
            module = importlib.import_module(target)
            for name, loaded in list(sys.modules.items()):
                if loaded is not None and (name == target or name.startswith(target + ".")):
                    _collect(loaded, target, found)
            _collect(module, target, found)
        except ImportError:
            module_name, _, attribute = target.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError, ValueError):
                continue
            _collect(obj, module_name, found)
    return list(found.values())


class Switched:
    """Swap the code of the given functions for one that raises, and back (every alias sees the swap)."""

    def __init__(self, functions: list[types.FunctionType]):
        self.swaps = []
        for fn in functions:
            label = f"{fn.__module__}.{fn.__qualname__}"
            try:
                self.swaps.append((fn, fn.__code__, _trip_code(label, fn.__code__.co_freevars)))
            except (SyntaxError, ValueError):
                continue

    def __enter__(self):
        for fn, _, trip in self.swaps:
            try:
                fn.__code__ = trip
            except (ValueError, TypeError):
                pass
        return self

    def __exit__(self, *exc):
        for fn, original, _ in self.swaps:
            try:
                fn.__code__ = original
            except (ValueError, TypeError):
                pass
        return False


# --- the run ---------------------------------------------------------------------------------------------------------

class Outputs:
    def __init__(self, path: Path, confinement: str):
        self.path = path
        self.data = {"sandbox": confinement, "cells": [], "public": {}, "calls": {}, "finished": False}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def limited(seconds: float, fn, *args, **kwargs):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_cells(cells: list[str], limit: float, out: Outputs):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Plain"
    shell = InteractiveShell.instance(config=config)
    for index, source in enumerate(cells):
        started = time.perf_counter()
        print(f"\n----- cell {index + 1} of {len(cells)} -----", flush=True)
        note = ""
        try:
            result = limited(limit, shell.run_cell, clean(source), store_history=False, silent=False)
            error = result.error_before_exec or result.error_in_exec
            if isinstance(error, TimeLimit):
                note = f"stopped after {limit:g} s (the time limit of a cell)"
            elif error is not None:
                note = f"{type(error).__name__}: {error}"[:500]
        except TimeLimit:
            note = f"stopped after {limit:g} s (the time limit of a cell)"
            print(note, flush=True)
        except BaseException as err:  # a SystemExit the shell let through, ...
            note = f"{type(err).__name__}: {err}"[:500]
        sys.stdout.flush()
        out.data["cells"].append({"cell": index + 1, "seconds": round(time.perf_counter() - started, 3),
                                  "error": note})
    return shell.user_ns


def run_public(public: dict[str, str], namespace: dict, limit: float, out: Outputs) -> None:
    """The checks students can run themselves: informational (a note in the grades), never scored."""
    import inspect

    for question, source in public.items():
        failures = []
        scope: dict = {"__name__": f"public_{question}"}
        try:
            exec(compile(source, f"public/{question}.py", "exec"), scope)
            tests = [fn for fn in scope.values() if callable(fn) and getattr(fn, "__public_test__", False)]
            for test in tests:
                params = {p: namespace.get(p) for p in inspect.signature(test).parameters}
                try:
                    limited(limit, test, **params)
                except BaseException as err:
                    failures.append(f"{test.__name__}: {type(err).__name__}: {err}"[:300])
        except BaseException as err:
            failures.append(f"{type(err).__name__}: {err}"[:300])
        out.data["public"][question] = {"passed": not failures, "failures": failures}
        print(f"public checks of {question}: {'passed' if not failures else failures}", flush=True)


def run_calls(plan: list[dict], forbidden: dict[str, list[str]], namespace: dict, limit: float, out: Outputs) -> None:
    import torch

    torch.set_default_dtype(torch.float64)  # the problem set's own set-up, whatever the notebook did to it
    switched = {q: forbidden_functions(targets) for q, targets in forbidden.items()}
    for test in plan:
        results = out.data["calls"].setdefault(test["test"], [])
        for call in test["calls"]:
            name = call["function"]
            fn = namespace.get(name)
            started = time.perf_counter()
            try:
                args = wire.decode(call["args"])
                kwargs = wire.decode(call["kwargs"])
                if not callable(fn):
                    raise NameError(f"the notebook defines no function named {name}")
                with Switched(switched.get(test["question"], [])):
                    value = limited(limit, fn, *args, **kwargs)
                results.append(wire.encode(value, tuple(args)))
            except TimeLimit:
                results.append(wire.encode_error(TimeoutError(f"{name} ran past the time limit of a call ({limit:g} s)")))
            except BaseException as err:
                results.append(wire.encode_error(err, traceback.format_exc()))
            print(f"{test['test']}: {name}(...) in {time.perf_counter() - started:.2f} s", flush=True)
            out.save()


def run(box: Path) -> None:
    """Run the sandbox's request in this process (which confines itself first) and end it."""
    request = json.loads((box / "request.json").read_text())
    os.chdir(box / "work")
    os.umask(0o077)
    confinement = sandbox.confine(request["readable"], [str(box)], request["secrets"], request.get("check", True))
    print(f"sandbox: {confinement}", flush=True)
    out = Outputs(box / "outputs.json", confinement)
    out.save()
    signal.signal(signal.SIGALRM, _alarm)
    otter_stub()
    sys.argv = ["notebook"]
    namespace = run_cells(request["cells"], request["cell_limit"], out)
    out.save()
    run_public(request["public"], namespace, request["call_limit"], out)
    out.save()
    run_calls(request["plan"], request["forbidden"], namespace, request["call_limit"], out)
    out.data["finished"] = True
    out.save()
    sys.stdout.flush()
    os._exit(0)  # no atexit handler or finaliser of the notebook's runs after this


# --- the zygote: a process with the libraries imported, forked for each submission -----------------------------------

PRELOAD = ("IPython.core.interactiveshell", "traitlets.config", "torch", "numpy", "nodelib", "nodelib.blocks",
           "nodelib.data", "nodelib.augment", "nodelib.ace", "nodelib.anodev2", "nodelib.gode", "torchdiffeq")


def _child(request: dict) -> None:
    """In the forked runner: the environment, the user and the process group of a fresh process, then run."""
    import tempfile

    os.setpgid(0, 0)
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # computed again from TMPDIR, the sandbox's
    if request.get("uid") is not None:
        os.setgroups([])
        os.setgid(request["uid"])
        os.setuid(request["uid"])
    run(Path(request["box"]))


def _supervise(request: dict) -> int:
    """In the forked supervisor: the log as stdout and stderr, nothing else inherited; fork the runner, wait for it
    (time limit), then kill whatever it left (this process is the subreaper of everything below it)."""
    import supervise

    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 65536)  # the zygote's pipes to the grader stay out of the sandbox
    sys.stdin = open(0)
    sys.stdout = open(1, "w", buffering=1)
    sys.stderr = open(2, "w", buffering=1)
    supervise.subreaper()
    pid = os.fork()
    if pid == 0:
        try:
            _child(request)
        except BaseException:
            traceback.print_exc()
        os._exit(125)
    deadline, code = time.monotonic() + request["timeout"], None
    while code is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        elif time.monotonic() > deadline:
            code = 124
            print(f"\nsupervisor: stopped after {request['timeout']:g} s (the time limit of a submission)", flush=True)
        else:
            time.sleep(0.02)
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass
    stray = supervise.sweep()
    if stray:
        print(f"supervisor: killed {stray} process(es) the notebook left running", flush=True)
    return code if code >= 0 else 128 - code


def zygote() -> int:
    """Read one request per line (sandbox, log, time limit, uid, environment); fork a supervisor for it; reply with
    its exit status. The zygote holds libraries only: it never reads a hidden test, and runs no torch operation (so
    no thread exists when it forks)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 125
            try:
                code = _supervise(request)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--zygote":
        sys.exit(zygote())
    run(Path(sys.argv[1]).resolve())
