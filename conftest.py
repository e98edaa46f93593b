"""How pytest-xdist shares the test suite among processes (``python3 tasks.py test``: ``-n auto --dist loadfile``).

A chapter's cells under nbval share one kernel, so they must run in order in one process: a work unit is a whole
file (a test module, or a notebook), except in ``tests/test_cpu_paths.py``, whose tests (a chapter each, run in
a process of their own) are a unit each. The three files that read the built book (``tests/test_book.py``,
``test_browser.py``, ``test_pdf.py``) are one unit, so that one process builds the book once for them.

This lives at the repository's root so that it applies to any arguments (``python3 tasks.py test
chapters/07_anodev2.ipynb`` too). It replaces pytest-xdist's ``xdist_group`` marks, which pytest 9 ignores (xdist
3.8 renames ``item._nodeid``, which pytest 9 no longer reads): the chapters' cells were then shared among
processes and failed with ``NameError``.
"""

from __future__ import annotations

import pytest

BOOK_TESTS = ("test_book.py", "test_browser.py", "test_pdf.py")  # the files that read the session's one built book
#: Files whose tests are each a long, self-contained job (a chapter run in a process of its own): a unit per test,
#: so that the chapters share the workers instead of queueing on one at the end of the suite.
EACH_TEST_ALONE = ("test_cpu_paths.py",)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, ``"built book"`` for the files that read the built book, or the
    test itself in a file of :data:`EACH_TEST_ALONE`."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return "built book" if name in BOOK_TESTS else nodeid if name in EACH_TEST_ALONE else path


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, which plain ``pytest`` does not load
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None  # another --dist asked for on the command line: pytest-xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return FileScheduling(config, log)
