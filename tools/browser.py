"""What the PDF printer (tools/pdf.py) and the browser test (tests/test_browser.py) share: the built site served on
localhost, and the system's Chromium or Chrome (playwright drives it; it downloads no browser of its own)."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

# As root and with no network beyond localhost: no sandbox, no GPU, none of Chromium's background requests.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
NOT_FOUND = ("no Chromium or Chrome found: install one (Debian/Ubuntu: apt-get install chromium) or set "
             "NODELIB_CHROMIUM to its path")


def chromium_path() -> str | None:
    """NODELIB_CHROMIUM if set, else the first Chromium or Chrome on PATH, else None."""
    if os.environ.get("NODELIB_CHROMIUM"):
        return os.environ["NODELIB_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the signature is the base class's
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve a folder on 127.0.0.1 (a free port) for the duration of the block; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
