"""Grade submissions of one or more problem sets: the orchestration shared by local grading and Gradescope.

For each submission: check the autograder's files against the hashes recorded when they were written (and keep
the checked bytes in memory: the checker always runs from those, never from a file the student could have touched);
copy the notebook's code into a fresh sandbox folder; run ``runner.py`` there under ``supervise.py`` (time limit,
nothing left behind), confined by ``sandbox.py`` and, when grading runs as root, as an unprivileged user; read what
the student's functions returned; check the autograder's files again; and score those outputs in ``checker.py``, a
separate process that never ran student code. The sandbox is deleted whatever happens.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER_FILES = ("runner.py", "wire.py", "sandbox.py")
CHECKER_FILES = ("checker.py", "wire.py", "spec.py")
SET_FILES = ("solution.py", "hidden.py")
NOBODY = 65534
MAX_OUTPUTS = 256 * 2**20


class GradingError(RuntimeError):
    """The autograder itself is broken or was changed (not a problem of one submission)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Bundle:
    """One problem set's autograder folder, checked against its manifest and held in memory."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.exists():
            raise GradingError(f"{self.folder} has no manifest.json (run `python3 tasks.py assign`)")
        self.manifest_bytes = manifest_path.read_bytes()
        manifest = json.loads(self.manifest_bytes)
        self.name: str = manifest["set"]
        self.files: dict[str, bytes] = {}
        for rel, digest in manifest["files"].items():
            data = (self.folder / rel).read_bytes()
            if sha256(data) != digest:
                raise GradingError(f"{self.folder / rel} does not match the hash recorded by `assign`: it was changed "
                                   "after it was written; run `python3 tasks.py assign` again")
            self.files[rel] = data
        self.questions: list[dict] = json.loads(self.files["questions.json"])
        self.public: dict[str, str] = {Path(rel).stem: data.decode() for rel, data in self.files.items()
                                       if rel.startswith("public/")}
        self.lock = threading.Lock()

    def verify(self) -> list[str]:
        """Compare the files on disk with the checked bytes; put back any that changed; return their names."""
        changed = []
        with self.lock:
            for rel, data in [("manifest.json", self.manifest_bytes), *self.files.items()]:
                path = self.folder / rel
                try:
                    same = path.read_bytes() == data
                except OSError:
                    same = False
                if not same:
                    changed.append(rel)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if path.is_symlink() or path.is_dir():
                        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                    path.write_bytes(data)
        return changed

    def write(self, rel: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[rel])


def world_readable(path: Path, executable: bool = False) -> bool:
    """Whether the user nobody can reach ``path`` (every parent searchable) and read it (and run it, with
    ``executable``): the condition under which the grader drops student code to nobody."""
    try:
        path = path.resolve()
        for parent in path.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if executable or stat.S_ISDIR(mode) else 0)
        return mode & need == need
    except OSError:
        return False


def package_dirs(names: tuple[str, ...] = ("nodelib", "torch", "torchdiffeq", "IPython")) -> list[str]:
    found = []
    for name in names:
        try:
            module = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if module and module.submodule_search_locations:
            found += [str(Path(p).resolve()) for p in module.submodule_search_locations]
    return found


def drop_to() -> int | None:
    """The uid to run student code as: nobody when grading runs as root and nobody can read the interpreter."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    stdlib = Path(os.__file__).parent
    needed = [Path(sys.executable), stdlib, *[Path(p) for p in package_dirs()], Path(tempfile.gettempdir())]
    ok = world_readable(Path(sys.executable), executable=True) and all(world_readable(p) for p in needed[1:])
    return NOBODY if ok else None


def landlock_abi() -> int:
    sys.path.insert(0, str(HERE))
    try:
        import sandbox
    finally:
        sys.path.remove(str(HERE))
    return sandbox.landlock_abi()


def _rmtree(path: Path) -> None:
    def retry(func, name, _):
        try:
            os.chmod(name, 0o700)
            parent = os.path.dirname(name)
            os.chmod(parent, 0o700)
            func(name)
        except OSError:
            pass
    shutil.rmtree(path, onerror=retry)


def exchange(proc: subprocess.Popen, request: dict, timeout: float) -> dict | None:
    """Send ``request`` to ``proc`` as one JSON line and read its one-line reply, within ``timeout`` seconds. None
    if it did not answer in time; ``{}`` if it closed its output; ``{"ok": False, "error": ...}`` if the pipe
    broke or the reply was not JSON."""
    assert proc.stdin and proc.stdout
    result: dict = {}

    def talk() -> None:
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
            result.update(json.loads(line) if line else {})
        except (OSError, ValueError) as err:
            result.update({"ok": False, "error": f"the checker stopped ({err})"})

    worker = threading.Thread(target=talk, daemon=True)
    worker.start()
    worker.join(timeout)
    return None if worker.is_alive() else result


class Checker:
    """A checker process (one per grading thread): loads sets, hands out their plans, scores outputs."""

    def __init__(self, root: Path):
        self.root, self.proc, self.loaded = root, None, {}

    def _start(self, bundle: Bundle) -> None:
        if self.proc is None:
            for rel in CHECKER_FILES:
                bundle.write(f"grader/{rel}", self.root / "grader" / rel)
            self.log = open(self.root / "checker.log", "ab")
            self.proc = subprocess.Popen([sys.executable, "-I", str(self.root / "grader" / "checker.py")],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                         cwd=self.root, env=quiet_env(self.root))
            self.loaded = {}

    def _ask(self, request: dict, timeout: float) -> dict:
        assert self.proc is not None
        reply = exchange(self.proc, request, timeout)
        if reply is None:
            self.close()
            return {"ok": False, "error": f"the checker took more than {timeout:g} s"}
        return reply if "error" in reply or reply.get("ok") is not None else {"ok": False, "error": "the checker stopped"}

    def load(self, bundle: Bundle) -> dict:
        self._start(bundle)
        if bundle.name not in self.loaded:
            folder = self.root / "sets" / bundle.name
            for rel in [*SET_FILES, *(r for r in bundle.files if r.startswith("public/"))]:
                bundle.write(rel, folder / rel)
            reply = self._ask({"op": "load", "set": bundle.name, "dir": str(folder)}, 600)
            if not reply.get("ok"):
                self.close()
                raise GradingError(f"{bundle.name}: the hidden tests could not be loaded: {reply.get('error')}\n"
                                   f"{reply.get('traceback', '')}")
            self.loaded[bundle.name] = reply
        return self.loaded[bundle.name]

    def check(self, bundle: Bundle, outputs: Path | None, timeout: float) -> dict:
        for attempt in range(2):
            self.load(bundle)
            reply = self._ask({"op": "check", "set": bundle.name, "outputs": str(outputs) if outputs else ""}, timeout)
            if reply.get("ok") or attempt:
                return reply
            self.close()  # a checker that died is started again, once
        return reply

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.proc = None
            self.loaded = {}


class Zygote:
    """A runner process with the libraries imported that forks one supervised runner per submission (``runner.py
    --zygote``): a notebook then starts in a fraction of a second instead of importing torch again."""

    def __init__(self, root: Path, bundle: Bundle):
        root.mkdir(parents=True, exist_ok=True)
        for rel in (*RUNNER_FILES, "supervise.py"):
            bundle.write(f"grader/{rel}", root / rel)
        self.log = open(root / "zygote.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-I", str(root / "runner.py"), "--zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, cwd=root, env=quiet_env(root),
                                     start_new_session=True)

    def run(self, request: dict, timeout: float) -> int:
        reply = exchange(self.proc, request, timeout)
        if reply is None or "code" not in reply:
            self.close()
            return 125
        return int(reply["code"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        self.proc.wait()
        self.log.close()


def quiet_env(home: Path) -> dict[str, str]:
    """The environment of the grader's processes: nothing of the instructor's (tokens, paths), one thread each."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(home),
            "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(home), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "IPYTHONDIR": str(Path(home) / ".ipython"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def code_cells(nb: dict) -> list[str]:
    cells = []
    for cell in nb.get("cells", []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            cells.append("".join(source) if isinstance(source, list) else str(source))
    return cells


class Engine:
    """Grades notebooks with the given bundles; one instance per grading run (it may be used from several threads)."""

    def __init__(self, bundles: dict[str, Bundle], secrets: list[Path], timeout: float = 300,
                 allow_unconfined: bool = False):
        self.bundles, self.timeout = bundles, timeout
        self.uid = drop_to()
        self.abi = landlock_abi()
        if self.abi < 1 and self.uid is None and not allow_unconfined:
            raise GradingError(
                "this machine cannot confine student code (no Landlock in this kernel, and grading does not run as "
                "root with an interpreter an unprivileged user can read): a submission could read the hidden tests. "
                "Grade in a container (see 'Teaching with this book'), or pass --unconfined if you trust the students.")
        self.weak = self.abi < 1 and self.uid is None
        self.private = Path(tempfile.mkdtemp(prefix="nodelib-grading-"))
        self.secrets = [str(Path(s).resolve()) for s in secrets] + [str(self.private)]
        self.secrets += [str(b.folder) for b in bundles.values()]
        self.local = threading.local()
        self.checkers: list[Checker] = []
        self.zygotes: list[Zygote] = []
        self.use_zygote = hasattr(os, "fork") and sys.platform.startswith("linux")
        self.lock = threading.Lock()

    @property
    def confinement(self) -> str:
        parts = [f"Landlock ABI {self.abi}" if self.abi else "no Landlock"]
        parts.append(f"student code as uid {self.uid}" if self.uid is not None else "student code as this user")
        return ", ".join(parts) + (" (UNCONFINED: a submission can read the hidden tests)" if self.weak else "")

    def zygote(self, bundle: Bundle) -> Zygote:
        key = sha256(b"".join(bundle.files[f"grader/{rel}"] for rel in (*RUNNER_FILES, "supervise.py")))
        zygotes = self.local.__dict__.setdefault("zygotes", {})
        if key not in zygotes or not zygotes[key].alive():
            with self.lock:
                folder = self.private / f"zygote-{len(self.zygotes)}"
                zygotes[key] = Zygote(folder, bundle)
                self.zygotes.append(zygotes[key])
        return zygotes[key]

    def checker(self) -> Checker:
        if not hasattr(self.local, "checker"):
            with self.lock:
                folder = self.private / f"checker-{len(self.checkers)}"
                folder.mkdir()
                self.local.checker = Checker(folder)
                self.checkers.append(self.local.checker)
        return self.local.checker

    def close(self) -> None:
        for checker in self.checkers:
            checker.close()
        for zygote in self.zygotes:
            zygote.close()
        _rmtree(self.private)

    def supervised(self, bundle: Bundle, box: Path, log_path: Path, env: dict) -> int:
        """The runner as a fresh interpreter under supervise.py (where there is no fork)."""
        supervisor = self.private / "supervise.py"
        if not supervisor.exists():
            bundle.write("grader/supervise.py", supervisor)
        command = [sys.executable, "-I", str(supervisor), str(self.timeout), "-" if self.uid is None else str(self.uid),
                   "--", sys.executable, "-I", str(box / "grader" / "runner.py"), str(box)]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=box / "work",
                                    env=env, start_new_session=True)
            try:
                return proc.wait(timeout=self.timeout + 60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                return proc.wait()

    def grade(self, nb: dict, bundle: Bundle, log_path: Path) -> dict:
        """Run one notebook of ``bundle``'s set; return ``{"tests", "public", "cells", "note", "tampered", ...}``."""
        started = time.perf_counter()
        checker = self.checker()
        changed = bundle.verify()
        plan = checker.load(bundle)
        if self.weak:
            checker.close()  # no checker lives while an unconfined notebook runs
        box = Path(tempfile.mkdtemp(prefix="nodelib-sandbox-"))
        outputs_copy = None
        note = ""
        try:
            (box / "work").mkdir()
            (box / "tmp").mkdir()
            for rel in RUNNER_FILES:
                bundle.write(f"grader/{rel}", box / "grader" / rel)
            request = {"cells": code_cells(nb), "plan": plan["plan"], "forbidden": plan["forbidden"],
                       "public": bundle.public, "readable": package_dirs(), "secrets": self.secrets, "check": not self.weak,
                       "cell_limit": max(self.timeout / 2, 1.0), "call_limit": max(self.timeout / 4, 1.0)}
            (box / "request.json").write_text(json.dumps(request))
            if self.uid is not None:
                for path in [box, *box.rglob("*")]:
                    os.chown(path, self.uid, self.uid)
            env = quiet_env(box / "tmp")
            env["HOME"] = str(box / "work")
            if self.use_zygote:
                request = {"box": str(box), "log": str(log_path), "timeout": self.timeout, "uid": self.uid, "env": env}
                code = self.zygote(bundle).run(request, self.timeout + 60)
            else:
                code = self.supervised(bundle, box, log_path, env)
            if code == 124:
                note = f"timed out after {self.timeout:g} s"
            elif code == 125:
                note = "the sandbox could not be started"
            outputs = box / "outputs.json"
            if outputs.is_file() and not outputs.is_symlink() and outputs.stat().st_size <= MAX_OUTPUTS:
                outputs_copy = self.private / f"outputs-{threading.get_ident()}.json"
                shutil.copyfile(outputs, outputs_copy)
            elif not note:
                note = "the notebook could not be run (see the log)"
        finally:
            _rmtree(box)
        changed += [rel for rel in bundle.verify() if rel not in changed]
        reply = checker.check(bundle, outputs_copy, timeout=max(self.timeout, 120))
        run: dict = {}
        if outputs_copy is not None:
            try:
                run = json.loads(outputs_copy.read_text())
            except ValueError:
                run = {}
            outputs_copy.unlink()
        if not reply.get("ok"):
            raise GradingError(f"{bundle.name}: the checker failed: {reply.get('error')}\n{reply.get('traceback', '')}")
        cells = run.get("cells") if isinstance(run.get("cells"), list) else []
        stopped = [f"cell {c.get('cell')} {c.get('error')}".split(" (")[0] for c in cells
                   if isinstance(c, dict) and str(c.get("error", "")).startswith("stopped after")]
        if not note and stopped:
            note = "; ".join(stopped)
        if not note and run and run.get("finished") is not True:
            note = "the notebook ended its own process before all its functions were called"
        return {"tests": reply["results"], "public": run.get("public") if isinstance(run.get("public"), dict) else {},
                "cells": cells,
                "sandbox": str(run.get("sandbox", ""))[:300], "finished": run.get("finished") is True,
                "note": note, "tampered": changed, "seconds": time.perf_counter() - started}
