"""The rendered book as readers meet it: headless Chromium at 1400 px (a laptop) and 390 px (a phone).

The site is served from the test build (``built_book``) on localhost and every request to any other host is
refused, as on a course network that blocks CDNs or an offline laptop: the math must still typeset. Needs
Chromium (Debian: ``apt-get install chromium``; Chrome works too) and the ``playwright`` package (in the test
extra), which drives the system's browser and downloads none; without a browser these tests skip and say so.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import load_tool

pytestmark = pytest.mark.slow

WIDTHS = {"laptop": 1400, "phone": 390}
BOOK_PAGES = ["book/intro.html", "book/how_to_use.html", "book/teaching.html", "book/notation.html",
              "book/bibliography.html", "book/execution_status.html"]
browser_tools = load_tool("browser")


@pytest.fixture(scope="module")
def site(built_book):
    with browser_tools.serve(built_book) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    executable = browser_tools.chromium_path()
    if executable is None:
        pytest.skip(f"{browser_tools.NOT_FOUND}; .ci/run installs Debian's chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=browser_tools.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def chapters(built_book) -> list[str]:
    return sorted(f"chapters/{p.name}" for p in (built_book / "chapters").glob("*.html"))


class Visit:
    """One page in a fresh tab: console errors, refused requests to other hosts, MathJax finished."""

    def __init__(self, browser, site: str, path: str, width: int):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route(site))
        self.page.goto(site + path, wait_until="load")
        self.has_mathjax = self.page.locator('script[src*="mathjax"]').count() > 0  # only pages with math
        if self.has_mathjax:
            self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                        timeout=30_000)
            self.page.evaluate("() => MathJax.startup.promise")

    def _route(self, site):
        def route(r):
            if r.request.url.startswith(site):
                r.continue_()
            else:
                self.external.append(r.request.url)
                r.abort()
        return route

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.page.close()


@pytest.mark.parametrize("device", WIDTHS)
def test_math_typesets_with_no_network_and_no_console_errors(browser, site, chapters, device):
    for path in chapters + BOOK_PAGES:
        with Visit(browser, site, path, WIDTHS[device]) as v:
            assert not v.external, f"{path} asked the network for {sorted(set(v.external))[:3]}"
            assert not v.errors, f"{path}: console errors {v.errors[:3]}"
            state = v.page.evaluate("""() => ({
                math: document.querySelectorAll('.math').length,
                typeset: document.querySelectorAll('mjx-container').length,
                untypeset: Array.from(document.querySelectorAll('div.math, span.math'))
                    .filter(m => !m.querySelector('mjx-container')).length,
                raw: /\\$\\$|\\\\\\[|\\\\\\(/.test(document.querySelector('article').innerText),
            })""")
            assert state["untypeset"] == 0 and not state["raw"], f"{path}: raw TeX left on the page {state}"
            if path.startswith("chapters/"):
                assert v.has_mathjax and state["typeset"] > 20, f"{path}: MathJax produced too little {state}"
                assert v.page.locator('script[src*="_static/mathjax/"]').count() == 1, "MathJax from _static"


WIDE = """() => {
  const over = el => el.scrollWidth > el.clientWidth + 1;
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const code = Array.from(document.querySelectorAll('div.cell_input pre'));
  const eqs = Array.from(document.querySelectorAll('div.math mjx-container[display="true"]'));
  return {
    page: document.documentElement.scrollWidth,
    codeTooWide: code.filter(over).map(p => p.innerText.split('\\n').find(l => l.length > 70) || ''),
    codeClipped: code.filter(p => over(p) && !scrolls(p)).length,
    eqTooWide: eqs.filter(over).map(m => m.closest('div.math').id),
    eqClipped: eqs.filter(m => over(m) && !scrolls(m)).map(m => m.closest('div.math').id),
    numberNotRight: eqs.filter(m => { const n = m.parentElement.querySelector(':scope > .eqno');
      return n && n.getBoundingClientRect().left < m.getBoundingClientRect().right - 1; })
      .map(m => m.closest('div.math').id),
  };
}"""


def test_code_and_equations_fit_the_laptop_column(browser, site, chapters):
    for path in chapters:
        with Visit(browser, site, path, WIDTHS["laptop"]) as v:
            r = v.page.evaluate(WIDE)
            assert r["page"] <= WIDTHS["laptop"], f"{path}: the page scrolls sideways ({r['page']} px)"
            assert not r["codeTooWide"], f"{path}: code wider than the column: {r['codeTooWide'][:2]}"
            assert not r["eqTooWide"], f"{path}: displayed equations wider than the column: {r['eqTooWide']}"
            assert not r["numberNotRight"], f"{path}: equation numbers not right of their equation"


def test_on_a_phone_nothing_is_clipped_or_widens_the_page(browser, site, chapters):
    for path in chapters:
        with Visit(browser, site, path, WIDTHS["phone"]) as v:
            r = v.page.evaluate(WIDE)
            assert r["page"] <= WIDTHS["phone"], f"{path}: the page is {r['page']} px wide on a 390 px phone"
            assert r["codeClipped"] == 0, f"{path}: code cut off instead of scrolling"
            assert not r["eqClipped"], f"{path}: equations cut off instead of scrolling: {r['eqClipped']}"
            assert not r["numberNotRight"], f"{path}: an equation number overlaps or precedes its equation"


def test_the_menu_buttons_open_the_sidebars_on_a_phone(browser, site):
    with Visit(browser, site, "chapters/01_resnets_are_euler_steps.html", WIDTHS["phone"]) as v:
        v.page.locator(".bd-header-article .primary-toggle").click()
        dialog = v.page.locator("#pst-primary-sidebar-modal")
        dialog.wait_for(state="visible", timeout=5000)
        assert dialog.get_attribute("open") is not None
        assert dialog.locator('a[href*="02_the_adjoint_method"]').count() >= 1, "the chapter list is in the drawer"
        v.page.keyboard.press("Escape")
        v.page.locator(".bd-header-article .secondary-toggle").click()
        contents = v.page.locator("#pst-secondary-sidebar-modal")
        contents.wait_for(state="visible", timeout=5000)
        assert contents.locator('a[href="#learning-goals"]').count() == 1, "the page contents are in the drawer"


def test_the_menu_button_collapses_the_sidebar_on_a_laptop(browser, site):
    with Visit(browser, site, "chapters/01_resnets_are_euler_steps.html", WIDTHS["laptop"]) as v:
        assert not v.page.locator("header.bd-header").is_visible(), "the theme's stray top search bar"
        v.page.keyboard.press("Control+k")
        v.page.locator("#pst-search-dialog, .search-button__wrapper.show").first.wait_for(state="visible", timeout=5000)
        v.page.keyboard.press("Escape")
        sidebar = v.page.locator("#pst-primary-sidebar")
        assert sidebar.is_visible()
        v.page.locator(".bd-header-article .primary-toggle").click()
        v.page.wait_for_function("() => document.querySelector('#pst-primary-sidebar')"
                                 ".classList.contains('pst-sidebar-hidden')", timeout=5000)


def test_launch_buttons_open_this_chapter(browser, site, chapters):
    for path in chapters:
        notebook = Path(path).with_suffix(".ipynb").as_posix()
        with Visit(browser, site, path, WIDTHS["laptop"]) as v:
            links = v.page.eval_on_selector_all("a", "as => as.map(a => a.href)")
            colab = [u for u in links if "colab.research.google.com" in u]
            binder = [u for u in links if "mybinder.org" in u]
            assert colab and all(u.endswith(notebook) for u in colab), f"{path}: Colab links {colab}"
            assert binder and all(notebook in u for u in binder), f"{path}: Binder links {binder}"


def test_figures_are_full_size_and_described(browser, site, chapters):
    for path in chapters:
        with Visit(browser, site, path, WIDTHS["laptop"]) as v:
            images = v.page.eval_on_selector_all("div.cell_output img", """is => is.map(i => ({
                alt: i.getAttribute('alt') || '', shown: i.clientWidth,
                meant: parseFloat(i.style.width) || +(i.getAttribute('width') || i.naturalWidth),
                natural: i.naturalWidth}))""")
            for image in images:
                assert len(image["alt"]) > 30 and not re.fullmatch(r"[0-9a-f]{32,}.*", image["alt"]), (
                    f"{path}: an image without a description: alt={image['alt']!r}")
                # shrunk by at most 10%: the chapters' 10-point labels stay at least 9 points on the page
                assert image["shown"] >= 0.9 * image["meant"], f"{path}: a figure shrunk to fit the column {image}"
                assert image["natural"] >= 1.9 * image["meant"], f"{path}: a low-resolution figure {image}"
