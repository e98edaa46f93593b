"""How pytest-xdist shares the test suite among processes (``python3 tasks.py test``: ``-n auto --dist loadfile``).

A chapter's cells under nbval share one kernel, so they must run in order in one process: a work unit is a whole
file (a test module, or a notebook). The three files that read the built book (``tests/test_book.py``,
``test_browser.py``, ``test_pdf.py``) are one unit, so that one process builds the book once for them.

This lives at the repository's root so that it applies to any arguments (``python3 tasks.py test
chapters/07_anodev2.ipynb`` too). It replaces pytest-xdist's ``xdist_group`` marks, which pytest 9 ignores (xdist
3.8 renames ``item._nodeid``, which pytest 9 no longer reads): the chapters' cells were then shared among
processes and failed with ``NameError``.
"""

from __future__ import annotations

import pytest

BOOK_TESTS = ("test_book.py", "test_browser.py", "test_pdf.py")  # the files that read the session's one built book


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or ``"built book"`` for the files that read the built book."""
    path = nodeid.split("::", 1)[0]
    return "built book" if path.rsplit("/", 1)[-1] in BOOK_TESTS else path


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, which plain ``pytest`` does not load
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None  # another --dist asked for on the command line: pytest-xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return FileScheduling(config, log)
