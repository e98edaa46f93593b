"""The checker: runs the hidden tests in a process that never runs student code, with its own imports.

    python -I checker.py          # then one JSON request per line on stdin, one JSON reply per line on stdout

Requests: ``{"op": "load", "set": NAME, "dir": FOLDER}`` loads a problem set's hidden tests and master solution
from FOLDER (written there by the engine from hash-checked bytes), runs every hidden test against the solution,
recording the calls it makes (the *plan*, which the engine sends to the student's process), and fails if one does
not pass. ``{"op": "check", "set": NAME, "outputs": FILE}`` replays the tests with what the student's functions
returned for those calls (read with ``wire.decode``: data only) and replies with the score of every test.
Anything the tests print goes to stderr; stdout carries only replies.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import spec  # noqa: E402
import wire  # noqa: E402


class PlanMismatch(RuntimeError):
    """The replay made a call the plan does not have: the hidden test is not deterministic."""


class NotRun(wire.StudentError):
    """The student's function was never called for this input (the notebook stopped or ran out of time first)."""


class Recorder:
    """``student`` while planning: calls the master solution and records each call's inputs."""

    def __init__(self, solution: dict):
        self.solution, self.calls = solution, []

    def __call__(self, function: str, *args, **kwargs):
        message = {"function": function, "args": wire.encode(list(args)), "kwargs": wire.encode(kwargs)}
        self.calls.append(message)
        fresh_args = wire.decode(message["args"])  # what the student's process will be given
        fresh_kwargs = wire.decode(message["kwargs"])
        out = self.solution[function](*fresh_args, **fresh_kwargs)
        return wire.decode(wire.encode(out, tuple(fresh_args)), args=args)


class Replayer:
    """``student`` while checking: the i-th call returns what the student's function returned for the i-th input."""

    def __init__(self, planned: list[dict], outputs: list | None):
        self.planned, self.outputs, self.index = planned, outputs or [], 0

    def __call__(self, function: str, *args, **kwargs):
        i, self.index = self.index, self.index + 1
        message = {"function": function, "args": wire.encode(list(args)), "kwargs": wire.encode(kwargs)}
        if i >= len(self.planned) or wire.fingerprint(message) != wire.fingerprint(self.planned[i]):
            raise PlanMismatch(f"call {i} of this hidden test differs from its plan (is the test deterministic?)")
        if i >= len(self.outputs):
            raise NotRun(f"{function} was not called (the notebook stopped, or ran out of time, before)")
        value = wire.decode(self.outputs[i], args=args)
        if isinstance(value, wire.StudentError):
            raise value
        return value


class ProblemSet:
    def __init__(self, name: str, folder: Path):
        self.name = name
        spec.TESTS.clear()
        spec.FORBIDDEN.clear()
        spec.SOLUTION.clear()
        solution: dict = {"__name__": "solution"}
        exec(compile((folder / "solution.py").read_text(encoding="utf-8"), f"{name}/solution.py", "exec"), solution)
        spec.SOLUTION.update(solution)
        module_spec = importlib.util.spec_from_file_location(f"hidden_{name.replace('-', '_')}", folder / "hidden.py")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        self.tests = list(spec.TESTS)
        self.forbidden = {q: list(t) for q, t in spec.FORBIDDEN.items()}
        self.solution = solution
        self.plan = []
        for test in self.tests:
            recorder = Recorder(solution)
            try:
                test.run(recorder)
            except Exception as err:
                raise RuntimeError(f"the master solution fails hidden test {test.name}: "
                                   f"{type(err).__name__}: {err}") from err
            self.plan.append({"test": test.name, "question": test.question, "calls": recorder.calls})
        self.public_failures = self.public(folder)
        self.stub_passes = self.stubs()

    def public(self, folder: Path) -> list[str]:
        """Run the public checks (the student's own) against the master solution: they must pass."""
        import inspect

        failures = []
        for path in sorted((folder / "public").glob("*.py")):
            text = path.read_text(encoding="utf-8").replace("from otter.test_files import test_case",
                                                            "test_case = __test_case__")
            checks: list = []
            scope = {"__name__": f"public_{path.stem}", "__test_case__": lambda *a, **k: checks.append}
            exec(compile(text, f"public/{path.name}", "exec"), scope)
            for fn in checks:
                name = fn.__name__
                if callable(fn):
                    try:
                        fn(**{p: self.solution[p] for p in inspect.signature(fn).parameters})
                    except Exception as err:
                        failures.append(f"{path.stem}: {name}: {type(err).__name__}: {err}")
        return failures

    def stubs(self) -> list[str]:
        """The hidden tests that an answer returning a constant, or its first argument, would pass (should be none)."""
        def first(call):
            items = call["args"].get("items") or [None]
            return {"t": "arg", "i": 0, "value": items[0]} if items[0] is not None else None

        kinds = {"None": lambda c: None, "its first argument": first, "True": lambda c: True, "0.0": lambda c: 0.0,
                 "1.0": lambda c: 1.0}
        passes = []
        for kind, stub in kinds.items():
            outputs = {"calls": {p["test"]: [stub(c) for c in p["calls"]] for p in self.plan}}
            passes += [f"{r['name']} passes an answer that returns {kind}" for r in self.check(outputs) if r["passed"]]
        return passes

    def check(self, outputs: dict) -> list[dict]:
        calls = outputs.get("calls") if isinstance(outputs.get("calls"), dict) else {}
        results = []
        for test, planned in zip(self.tests, self.plan):
            got = calls.get(test.name)
            replay = Replayer(planned["calls"], got if isinstance(got, list) else None)
            passed, message = False, ""
            try:
                spec.SOLUTION.clear()
                spec.SOLUTION.update(self.solution)
                test.run(replay)
                passed = True
            except AssertionError as err:
                message = str(err) or "a check failed"
            except NotRun as err:
                message = str(err)
            except wire.StudentError as err:
                message = f"your function raised {err}"
            except wire.WireError as err:
                message = f"the output could not be read ({err})"
            except PlanMismatch as err:
                message = f"grader error: {err}"
            except Exception as err:  # e.g. a list where a tensor was expected
                message = f"{type(err).__name__}: {err}"
            results.append({"name": test.name, "question": test.question, "points": test.points if passed else 0.0,
                            "possible": test.points, "passed": passed, "message": message[:1000], "hint": test.doc})
        return results


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a test or the solution prints goes to stderr
    sys.stdout = sys.stderr
    import torch

    torch.set_default_dtype(torch.float64)
    sets: dict[str, ProblemSet] = {}
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request["op"] == "quit":
                break
            if request["op"] == "load":
                if request["set"] not in sets:
                    sets[request["set"]] = ProblemSet(request["set"], Path(request["dir"]))
                problem = sets[request["set"]]
                reply = {"ok": True, "plan": problem.plan, "forbidden": problem.forbidden,
                         "stubs": problem.stub_passes, "public": problem.public_failures,
                         "tests": [{"name": t.name, "question": t.question, "points": t.points} for t in problem.tests]}
            elif request["op"] == "check":
                raw = Path(request["outputs"]).read_bytes() if request.get("outputs") else b"{}"
                try:
                    outputs = json.loads(raw) if len(raw) < 512 * 2**20 else {}
                except ValueError:
                    outputs = {}
                if not isinstance(outputs, dict):
                    outputs = {}
                reply = {"ok": True, "results": sets[request["set"]].check(outputs)}
            else:
                reply = {"ok": False, "error": f"unknown op {request['op']!r}"}
        except Exception as err:
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
        replies.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
