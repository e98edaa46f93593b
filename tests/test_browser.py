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
              "book/bibliography.html", "book/execution_status.html", "book/contributing.html"]
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
    return sorted(f"chapters/{p.name}" for p in (built_book / "chapters").glob("[0-9]*.html"))


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
            repeated = v.page.evaluate("""() => { const seen = new Set(), twice = new Set();
                for (const e of document.querySelectorAll('[id]')) { (seen.has(e.id) ? twice : seen).add(e.id); }
                return Array.from(twice); }""")
            assert not repeated, f"{path}: element ids used more than once: {repeated[:5]}"
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
    // printed outputs wrap inside their box: none hides lines past its right edge (scrolled or cut)
    outputTooWide: Array.from(document.querySelectorAll('div.cell_output pre')).filter(over)
      .map(p => p.innerText.split('\\n').find(l => l.length > 60) || p.innerText.slice(0, 60)),
    sidebarScrolled: (document.querySelector('div.bd-sidebar') || {}).scrollTop || 0,
  };
}"""

# Where inline code and text after inline math break across lines on a phone. Inline code may break at a space or
# after . _ / , ( = [ : - (a dotted name, a path, an argument list), never inside a word ("solver s"); punctuation
# after a formula never starts a line alone.
BREAKS = r"""() => {
  const lineOf = r => Math.round(r.top + r.height / 2);
  const badCode = [];
  for (const code of document.querySelectorAll('article code.literal')) {
    if (code.getClientRects().length < 2 && code.getBoundingClientRect().height < 30) continue;
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    let previous = null, line = null;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const ch = node.data[i];
        if (/\s/.test(ch)) { previous = ch; continue; }  // a break at a space is fine (its box may be empty)
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (!rect.width && !rect.height) continue;
        const here = lineOf(rect);
        if (line !== null && here > line + 4 && previous !== null && !/[\s._\/,(=\[:-]/.test(previous) && !/\s/.test(ch)) {
          badCode.push(code.textContent.slice(0, 60));
        }
        line = here; previous = ch;
      }
    }
  }
  const lonePunctuation = [];
  for (const math of document.querySelectorAll('article span.math')) {
    const after = math.nextSibling, box = math.querySelector('mjx-container');
    if (!box || !after || after.nodeType !== Node.TEXT_NODE || !/^[.,;:!?)]/.test(after.data)) continue;
    const range = document.createRange();
    range.setStart(after, 0); range.setEnd(after, 1);
    const p = range.getBoundingClientRect(), m = box.getBoundingClientRect();
    if (p.top >= m.bottom - 2) lonePunctuation.push(math.textContent.slice(0, 40) + after.data.slice(0, 3));
  }
  return {badCode: Array.from(new Set(badCode)), lonePunctuation};
}"""


def test_code_and_equations_fit_the_laptop_column(browser, site, chapters):
    for path in chapters:
        with Visit(browser, site, path, WIDTHS["laptop"]) as v:
            r = v.page.evaluate(WIDE)
            assert r["page"] <= WIDTHS["laptop"], f"{path}: the page scrolls sideways ({r['page']} px)"
            assert not r["codeTooWide"], f"{path}: code wider than the column: {r['codeTooWide'][:2]}"
            assert not r["eqTooWide"], f"{path}: displayed equations wider than the column: {r['eqTooWide']}"
            assert not r["numberNotRight"], f"{path}: equation numbers not right of their equation"
            assert not r["outputTooWide"], f"{path}: printed output cut at the column's edge: {r['outputTooWide'][:2]}"
            assert r["sidebarScrolled"] == 0, f"{path}: the sidebar loads scrolled by {r['sidebarScrolled']} px"


def test_on_a_phone_nothing_is_clipped_or_widens_the_page(browser, site, chapters):
    for path in chapters:
        with Visit(browser, site, path, WIDTHS["phone"]) as v:
            r = v.page.evaluate(WIDE)
            assert r["page"] <= WIDTHS["phone"], f"{path}: the page is {r['page']} px wide on a 390 px phone"
            assert r["codeClipped"] == 0, f"{path}: code cut off instead of scrolling"
            assert not r["eqClipped"], f"{path}: equations cut off instead of scrolling: {r['eqClipped']}"
            assert not r["numberNotRight"], f"{path}: an equation number overlaps or precedes its equation"
            assert not r["outputTooWide"], f"{path}: printed output cut at the screen's edge: {r['outputTooWide'][:2]}"
            breaks = v.page.evaluate(BREAKS)
            assert not breaks["badCode"], f"{path}: inline code broken inside a word: {breaks['badCode'][:3]}"
            assert not breaks["lonePunctuation"], f"{path}: punctuation alone after a formula {breaks['lonePunctuation'][:3]}"


def test_the_front_page_fits_a_phone(browser, site):
    """The chapter table fits a 390 px screen (no sideways scrolling, no cut column) and its inline code breaks
    only at sensible points."""
    with Visit(browser, site, "book/intro.html", WIDTHS["phone"]) as v:
        table = v.page.evaluate("""() => { const t = document.querySelector('article table');
            return {scroll: t.scrollWidth, client: t.clientWidth, right: t.getBoundingClientRect().right}; }""")
        assert table["scroll"] <= table["client"] + 1 and table["right"] <= WIDTHS["phone"], (
            f"the chapter table is wider than the phone: {table}")
        breaks = v.page.evaluate(BREAKS)
        assert not breaks["badCode"], f"inline code broken inside a word: {breaks['badCode'][:3]}"


def test_long_outputs_are_folded_and_open_in_full(browser, site, chapters):
    """An output of more than 30 lines shows about 20 with a button that shows all of it (chapter 5's model
    listing); shorter ones are shown whole."""
    path = next(c for c in chapters if c.startswith("chapters/05_"))
    with Visit(browser, site, path, WIDTHS["laptop"]) as v:
        found = v.page.evaluate("""() => Array.from(document.querySelectorAll('div.cell_output pre'))
            .map(p => ({lines: p.textContent.replace(/\\n$/, '').split('\\n').length,
                        hidden: p.scrollHeight > p.clientHeight + 2}))""")
        long = [f for f in found if f["lines"] > 30]
        assert long, "chapter 5 prints a model listing of more than 30 lines"
        assert all(f["hidden"] for f in long), f"long outputs shown in full: {found}"
        assert not any(f["hidden"] for f in found if f["lines"] <= 30), "a short output is folded"
        button = v.page.locator("button.output-fold").first
        assert button.get_attribute("aria-expanded") == "false" and "Show all" in button.inner_text()
        button.focus()
        v.page.keyboard.press("Enter")
        target = v.page.locator("#" + button.get_attribute("aria-controls") + " pre")
        assert target.evaluate("p => p.scrollHeight <= p.clientHeight + 2"), "the button shows the whole output"
        assert button.get_attribute("aria-expanded") == "true"


TAB_STOP = """() => { const e = document.activeElement, s = getComputedStyle(e);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';
  return {tag: e.tagName, cls: typeof e.className === 'string' ? e.className : '', label: e.getAttribute('aria-label'),
          text: (e.innerText || '').trim().slice(0, 40), ring,
          solution: !!(e.closest('.solution') && e.matches('button.toggle-button'))}; }"""


def test_the_keyboard_reaches_the_solutions_past_no_formula(browser, site, chapters):
    """Chapter 6 with the Tab key: formulas are not tab stops (MathJax put every one in the tab order: the first
    solution toggle was stop 237), every control shows a focus ring (the header's buttons showed none), and the
    toggle is named by what it opens."""
    path = next(c for c in chapters if c.startswith("chapters/06_"))
    with Visit(browser, site, path, WIDTHS["laptop"]) as v:
        v.page.wait_for_timeout(300)  # book.js takes the formulas out of the tab order once MathJax has finished
        stops = []
        for _ in range(400):
            v.page.keyboard.press("Tab")
            stops.append(v.page.evaluate(TAB_STOP))
            if stops[-1]["solution"]:
                break
        assert stops[-1]["solution"], f"no solution toggle within 400 tab stops: {stops[-3:]}"
        formulas = [s for s in stops if s["tag"] == "MJX-CONTAINER"]
        assert not formulas, f"{len(formulas)} of {len(stops)} tab stops before the first solution are formulas"
        assert len(stops) < 150, f"the first solution toggle is tab stop {len(stops)}"
        no_ring = [s for s in stops if not s["ring"]]
        assert not no_ring, f"controls without a visible focus ring: {no_ring[:4]}"
        assert stops[-1]["label"] == "Solution to Exercise 6.1", stops[-1]
        labels = v.page.eval_on_selector_all(".solution button.toggle-button", "bs => bs.map(b => b.getAttribute('aria-label'))")
        assert len(labels) >= 4 and all(re.fullmatch(r"Solution to Exercise 6\.\d+", x or "") for x in labels), labels
        hints = v.page.eval_on_selector_all(".solution button.toggle-button", "bs => bs.map(b => b.dataset.toggleHint)")
        assert set(hints) == {"Show solution"}, f"the toggles' visible text: {set(hints)}"
        v.page.keyboard.press("Enter")
        assert v.page.locator(".solution button.toggle-button").first.get_attribute("aria-expanded") == "true"


def test_a_figure_opens_full_size_by_keyboard_and_by_tap(browser, site, chapters):
    path = next(c for c in chapters if c.startswith("chapters/03_"))
    with Visit(browser, site, path, WIDTHS["phone"]) as v:
        link = v.page.locator("div.cell_output a:has(img)").first
        image = link.locator("img").get_attribute("src")
        link.focus()
        v.page.keyboard.press("Enter")
        v.page.wait_for_url("**/_images/*", timeout=10_000)
        assert v.page.url.endswith(Path(image).name), f"Enter opened {v.page.url}, not the figure {image}"
        shown = v.page.evaluate("() => document.images.length === 1 && document.images[0].naturalWidth")
        assert shown and shown >= 800, f"the full-size figure is {shown} px wide"


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


def test_search_snippets_show_no_tex(browser, site):
    """Search results quote the pages' text; a formula there is plain text, not its TeX source."""
    with Visit(browser, site, "search.html?q=adjoint", WIDTHS["laptop"]) as v:
        v.page.wait_for_selector("#search-results li p", timeout=30_000)
        v.page.wait_for_function("() => document.querySelectorAll('#search-results li p').length >= 8", timeout=30_000)
        snippets = v.page.eval_on_selector_all("#search-results li p", "ps => ps.map(p => p.textContent)")
        tex = [t for t in snippets if re.search(r"\\[()\[\]]|\\(mathrm|mathbf|frac|theta|alpha)\b", t)]
        assert not tex, f"raw TeX in search results: {tex[:2]}"


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
                link: (i.closest('a[href]') || {}).href || '', src: i.src,
                alt: i.getAttribute('alt') || '', shown: i.clientWidth,
                meant: parseFloat(i.style.width) || +(i.getAttribute('width') || i.naturalWidth),
                natural: i.naturalWidth}))""")
            for image in images:
                assert len(image["alt"]) > 30 and not re.fullmatch(r"[0-9a-f]{32,}.*", image["alt"]), (
                    f"{path}: an image without a description: alt={image['alt']!r}")
                # shrunk by at most 10%: the chapters' 10-point labels stay at least 9 points on the page
                assert image["shown"] >= 0.9 * image["meant"], f"{path}: a figure shrunk to fit the column {image}"
                assert image["natural"] >= 1.9 * image["meant"], f"{path}: a low-resolution figure {image}"
                assert image["link"] == image["src"], f"{path}: a figure that does not open full size {image}"
