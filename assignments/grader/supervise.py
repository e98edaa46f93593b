"""Run one command with a time limit and leave nothing of it behind.

    python -I supervise.py SECONDS UID -- COMMAND ...     # UID: a number to run COMMAND as, or - for this user

The supervisor makes itself the "subreaper" of everything COMMAND starts (Linux), so a process that detaches
(double fork, setsid) is still its descendant; when COMMAND ends or runs past SECONDS, the supervisor kills COMMAND's
process group and then every process left below itself, until none is left. Exit status: COMMAND's, 124 after the
time limit, 125 when COMMAND could not start.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36


def subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int]:
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def sweep() -> int:
    """Kill and reap every process below this one (they were re-parented here); return how many there were."""
    killed = 0
    for _ in range(200):
        left = children(os.getpid())
        if not left:
            break
        for pid in left:
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass
            killed += 1
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.01)
            except ChildProcessError:
                break
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return killed


def main() -> int:
    seconds, uid, command = float(sys.argv[1]), sys.argv[2], sys.argv[4:]
    subreaper()
    options: dict = {}
    if uid != "-":
        options = {"user": int(uid), "group": int(uid), "extra_groups": []}
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True, **options)
    except OSError as err:
        print(f"supervisor: could not start the runner: {err}", file=sys.stderr, flush=True)
        return 125
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        code = 124
        print(f"\nsupervisor: stopped after {seconds:g} s (the time limit of a submission)", file=sys.stderr, flush=True)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    stray = sweep()
    if stray:
        print(f"supervisor: killed {stray} process(es) the notebook left running", file=sys.stderr, flush=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
