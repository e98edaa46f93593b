"""Confine the process that runs a student's notebook (Linux): Landlock, an unprivileged user, resource limits.

``confine(readable, writable, secrets)`` is called by the runner before any student code runs. It

* sets resource limits (no core files, a file-size cap, a cap on processes for an unprivileged user);
* applies a Landlock ruleset (Linux 5.13 or newer, unprivileged): the process and everything it starts may read and
  execute only below ``readable`` (the Python installation, its packages, system libraries), may write only below
  ``writable`` (its own sandbox folder), may open no TCP connection (Landlock ABI 4), and may neither signal nor
  ptrace processes outside the sandbox (ABI 6; ptrace is scoped from ABI 1);
* then checks that every path in ``secrets`` (the autograder, the other submissions, the grades) is unreadable, and
  refuses to go on if one is not.

It returns a one-line description of what it could apply. Dropping to an unprivileged user is done by the supervisor
(``subprocess`` with ``user=``) when grading runs as root.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
from pathlib import Path

_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # the same numbers on x86-64 and arm64
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = EXECUTE | READ_FILE | READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where there is none (not Linux, an old kernel, disabled, blocked)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        version = libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _handled_fs(abi: int) -> int:
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= REFER
    if abi >= 3:
        mask |= TRUNCATE
    if abi >= 5:
        mask |= IOCTL_DEV
    return mask


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def readable_roots(extra: list[str], secrets: list[str]) -> list[Path]:
    """System folders, the interpreter and every import path, minus any part of them that holds a secret."""
    candidates = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev",
                  "/opt/conda", sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                  *[p for p in sys.path if p], *extra]
    hidden = [Path(os.path.realpath(s)) for s in secrets]
    roots: list[Path] = []

    def add(path: Path) -> None:
        try:
            if not path.exists() or any(_inside(path, r) for r in roots):
                return
        except OSError:  # a folder this user may not enter (the grader's own, when student code runs as nobody)
            return
        if any(_inside(path, s) for s in hidden):
            return
        if any(_inside(s, path) for s in hidden):  # a folder holding a secret: its other children only
            try:
                children = sorted(path.iterdir()) if path.is_dir() else []
            except OSError:
                children = []
            for child in children:
                add(Path(os.path.realpath(child)))
            return
        roots.append(path)

    for candidate in candidates:
        add(Path(os.path.realpath(candidate)))
    return roots


def _limits(unprivileged: bool) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cap = 512 * 2**20  # no file above 512 MiB (a notebook that prints without end fills the log, not the disk)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard == resource.RLIM_INFINITY or hard > cap:
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    if unprivileged:  # counts every process of the user: a fork bomb stops here
        resource.setrlimit(resource.RLIMIT_NPROC, (1024, 1024))


def check_secrets(secrets: list[str]) -> None:
    """The self-test: nothing secret may be readable from here on."""
    for secret in secrets:
        try:
            if os.path.isdir(secret):
                os.listdir(secret)
            else:
                with open(secret, "rb"):
                    pass
        except OSError:
            continue
        raise RuntimeError(f"sandbox self-test failed: {secret} is readable after confinement")


def confine(readable: list[str], writable: list[str], secrets: list[str], check: bool = True) -> str:
    """Apply what this machine allows; return what was applied. With ``check``, raises if a secret is readable."""
    unprivileged = os.geteuid() != 0
    _limits(unprivileged)
    parts = [f"uid {os.geteuid()}"]
    abi = landlock_abi()
    if abi < 1:
        if check:
            check_secrets(secrets)
        parts.append("no Landlock on this kernel: the notebook can read what this user can read")
        return ", ".join(parts)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(_handled_fs(abi), 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    handled = _handled_fs(abi)
    try:
        rules = [(p, READ & handled) for p in readable_roots(readable, secrets)]
        rules += [(Path(p), handled) for p in writable]
        rules += [(Path("/dev/null"), (READ_FILE | WRITE_FILE | TRUNCATE) & handled)]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    access &= FILE_ONLY
                rule = _PathBeneath(access, fd)
                if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_SYS_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    if check:
        check_secrets(secrets)
    parts.append(f"Landlock ABI {abi}: reads only the Python installation and system folders, writes only its "
                 f"sandbox{', no TCP' if abi >= 4 else ''}{', no signals out' if abi >= 6 else ''}")
    return ", ".join(parts)
