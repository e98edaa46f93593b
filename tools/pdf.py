"""The whole book as one PDF: ``python3 tasks.py pdf [--no-solutions]``.

Jupyter Book's HTML build of the committed notebooks (nothing is executed), every page in reading order on one
page, printed by headless Chromium with the book's print style: code wraps instead of being cut at the right margin, the exercise
solutions are open (or left out entirely with ``--no-solutions``), navigation and buttons are dropped, and
MathJax has finished typesetting before the page is printed. No LaTeX installation is needed.

The PDF is written to ``_build/pdf/neural-odes-textbook.pdf`` (and copied into ``_build/html/`` when the
website has been built, where the book's download links point).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from browser import CHROMIUM_ARGS, NOT_FOUND, chromium_path, serve

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "pdf"
PDF_NAME = "neural-odes-textbook.pdf"

PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
@media print {
  html { font-size: 10.5pt; }
  .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header, .bd-header-article, .bd-footer,
  .bd-footer-article, .prev-next-area, .headerlink, .copybtn, #pst-back-to-top, .toggle-button,
  .bd-search, .search-button-field { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  /* code wraps instead of being cut at the margin */
  div.highlight pre, div.cell_output pre, pre {
    white-space: pre-wrap !important; word-break: break-word; overflow: visible !important;
  }
  /* solutions and other collapsed blocks are printed open */
  .toggle-hidden, .admonition.dropdown > :not(.admonition-title) {
    display: block !important; visibility: visible !important; height: auto !important;
    max-height: none !important; opacity: 1 !important; overflow: visible !important;
  }
  div.math mjx-container[display="true"] { overflow: visible !important; }
  .print-page { break-before: page; }
  .print-page h1 { display: block !important; }
  .print-page:first-child { break-before: avoid; }
  figure, img, .cell_output, table, div.math { break-inside: avoid; }
  div.highlight, div.highlight pre, div.cell_input { break-inside: auto !important; }
  div.cell, div.cell_input, div.cell_output { display: block !important; }  /* flex boxes split badly */
  a { color: inherit; text-decoration: none; }
}
"""


# Before printing: drop the page frame (sidebars, headers, footers, drawers), open every collapsed block
# (hidden code cells, solutions), and load every image (the theme loads images lazily, as they scroll in).
PREPARE_JS = """async () => {
  const frame = ['.bd-sidebar-primary', '.bd-sidebar-secondary', '.bd-header-article', 'header.bd-header',
                 'footer', '.prev-next-area', 'dialog', '.bd-footer-article', '.bd-footer-content',
                 '#pst-back-to-top', '.bd-header-announcement'];
  document.querySelectorAll(frame.join(',')).forEach(e => e.remove());
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  for (const img of document.images) { img.loading = 'eager'; }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null
    : new Promise(done => { img.onload = img.onerror = done; })));
}"""


# Displayed equations wider than the printed column are scaled down to fit (a web page scrolls them instead).
FIT_JS = """() => {
  let shrunk = 0;
  for (const eq of document.querySelectorAll('div.math mjx-container[display="true"]')) {
    const room = eq.parentElement.clientWidth - 40;
    if (eq.scrollWidth > room && room > 0) { eq.style.zoom = (room / eq.scrollWidth).toFixed(3); shrunk += 1; }
  }
  return shrunk;
}"""


def build_site(solutions: bool, out: Path = OUT / "site", strict: bool = False) -> Path:
    """The HTML book built from a copy of _config.yml that sets hide_solutions (the public build is untouched).

    ``strict`` turns warnings into errors, as the test build does."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = not solutions
    if not solutions:  # the student edition: no page sources to download, no launch or repository buttons
        config.pop("launch_buttons", None)
        config["html"] = {**config.get("html", {}), "use_repository_button": False, "use_issues_button": False}
        config["sphinx"]["config"].update(html_copy_source=False, html_show_sourcelink=False,
                                          html_theme_options={"use_download_button": False})
        config["sphinx"]["recursive_update"] = True  # merge html_theme_options into the theme's, not replace them
    # the copy lives under _build/: paths that Jupyter Book resolves against the config's folder become absolute
    extensions = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    config_path = out.parent / f"_config-{'solutions' if solutions else 'student'}.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    site = out
    shutil.rmtree(site, ignore_errors=True)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(ROOT), "--config", str(config_path), "--path-output", str(site)]
    cmd += ["-W", "--keep-going"] if strict else []
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"the book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return site / "_build" / "html"


def toc_pages() -> list[str]:
    """The book's pages in reading order, as paths of the built HTML (root, then every part's chapters)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [f"{Path(f).with_suffix('').as_posix()}.html" for f in files]


def combine(html_dir: Path) -> Path:
    """One page holding every page's article, in reading order, on the first chapter's page frame.

    Every page of the book sits one folder below the root (book/, chapters/), so the relative links to
    images and static files of each article stay valid on a page in chapters/. (Jupyter Book's singlehtml
    builder cannot render MyST-NB's hidden code cells, so the book is assembled here instead.)
    """
    pages = toc_pages()
    frame_path = next(html_dir / p for p in pages if p.startswith("chapters/"))
    frame = frame_path.read_text(encoding="utf-8")
    articles = []
    for page in pages:
        text = (html_dir / page).read_text(encoding="utf-8")
        begin = text.index("<article")
        end = text.rindex("</article>") + len("</article>")
        articles.append(f'<div class="print-page">{text[begin:end]}</div>')
    head = frame[: frame.index("<body")]
    body = (
        '<body><div class="bd-container"><div class="bd-container__inner bd-page-width">'
        '<main id="main-content" class="bd-main" role="main"><div class="bd-content">'
        f'<div class="bd-article-container">{"".join(articles)}</div>'
        "</div></main></div></div></body></html>"
    )
    combined = head + body
    target = frame_path.parent / "_whole_book.html"
    target.write_text(combined, encoding="utf-8")
    return target


def print_pdf(html_dir: Path, page_path: Path, target: Path) -> int:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        sys.exit(f"the PDF is printed by Chromium: {NOT_FOUND}")
    with serve(html_dir) as site, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto(site + page_path.relative_to(html_dir).as_posix(), wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
        page.evaluate(PREPARE_JS)
        page.add_style_tag(content=PRINT_CSS)
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 680, "height": 1000})  # A4's text width at 96 px per inch
        shrunk = page.evaluate(FIT_JS)
        print(f"{shrunk} displayed equations scaled down to the page width", flush=True)
        page.pdf(path=str(target), format="A4", print_background=False, prefer_css_page_size=True,
                 display_header_footer=True, header_template="<span></span>",
                 footer_template='<div style="font-size:8px;width:100%;text-align:center">'
                                 '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
        browser.close()
    return pdf_pages(target)


def pdf_pages(path: Path) -> int:
    """Count the pages of a PDF (its page tree's /Count) without a PDF library."""
    import re

    data = path.read_bytes()
    counts = [int(m) for m in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", data)]
    counts += [int(m) for m in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", data)]
    return max(counts) if counts else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py pdf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-solutions", action="store_true", help="leave the exercise solutions out")
    parser.add_argument("--output", type=Path, default=OUT / PDF_NAME, help=f"default: _build/pdf/{PDF_NAME}")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    html_dir = build_site(solutions=not args.no_solutions)
    page = combine(html_dir)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    pages = print_pdf(html_dir, page, args.output)
    html = ROOT / "_build" / "html"
    if html.is_dir() and args.output.name == PDF_NAME:
        shutil.copy2(args.output, html / PDF_NAME)
    size = args.output.stat().st_size / 2**20
    print(f"{args.output}: {pages} pages, {size:.1f} MiB, "
          f"{'without' if args.no_solutions else 'with'} solutions, in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
