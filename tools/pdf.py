"""The whole book as one PDF: ``python3 tasks.py pdf [--no-solutions]``.

Jupyter Book's HTML build of the committed notebooks (nothing is executed), a title page, a contents page with page
numbers, then every page in reading order on one page, printed by headless Chromium with the book's print style:
code and outputs wrap instead of being cut at the right margin, the exercise solutions are open (or left out
entirely with ``--no-solutions``), navigation, buttons and web-only labels are dropped, and MathJax has finished
typesetting before the page is printed. Links between pages become links inside the PDF (none leads to the
temporary server that printed it); pypdf adds the bookmarks (parts, pages, the chapters' sections) and the
book's title and author as metadata. No LaTeX installation is needed.

The PDF is written to ``_build/pdf/neural-odes-textbook.pdf`` (and copied into ``_build/html/`` when the
website has been built, where the book's download links point).
"""
from __future__ import annotations

import argparse
import html
import re
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
COMBINED = "_whole_book.html"  # the page that is printed, written beside the chapters and removed afterwards

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
  /* the title page and the contents */
  .print-title-page { height: 230mm; display: flex; flex-direction: column; justify-content: center; }
  .print-book-title { font-size: 2.6rem; font-weight: 700; line-height: 1.2; margin: 0 0 1.5rem; }
  .print-book-author { font-size: 1.3rem; margin: 0 0 4rem; }
  .print-book-edition { font-size: 0.85rem; color: #444; }
  .print-contents { break-before: page; }
  .print-contents-title { font-size: 1.8rem; font-weight: 700; margin: 0 0 1rem; }
  .print-contents .toc-part { font-weight: 700; margin: 0.9rem 0 0.2rem; }
  .print-contents p.toc-entry { display: flex; margin: 0.1rem 0; line-height: 1.35; }
  .print-contents p.toc-entry a { flex: 0 1 auto; }
  .print-contents p.toc-entry .toc-dots { flex: 1 1 auto; border-bottom: 1px dotted #888; margin: 0 0.3rem 0.3rem; }
  .print-contents p.toc-entry .toc-page { flex: 0 0 auto; min-width: 1.8rem; text-align: right; }
  .print-contents p.toc-1 { font-weight: 600; margin-top: 0.3rem; }
  .print-contents p.toc-2 { padding-left: 1.4rem; font-size: 0.92rem; }
  /* web-only controls: toggles, copy buttons, "Show all lines", the figures' full-size links */
  .output-fold, details.hide > summary, .copybtn, button.toggle-button { display: none !important; }
  div.cell_output div.output.folded pre { max-height: none !important; mask-image: none !important;
    -webkit-mask-image: none !important; }
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
  // web-only labels: "Show code cell content" / "Hide code cell content", toggles, copy buttons, "Show all lines"
  // a collapsed cell is printed open, without its "Show code cell content" summary; the Colab set-up cell, which
  // does nothing outside Colab, is left out
  for (const cell of document.querySelectorAll('div.cell')) {
    const input = cell.querySelector('div.cell_input');
    if (input && input.textContent.includes('"google.colab" in sys.modules')) cell.remove();
  }
  for (const details of document.querySelectorAll('details.hide')) {
    const div = document.createElement('div');
    div.className = details.className;
    for (const child of Array.from(details.childNodes)) {
      if (!(child.tagName === 'SUMMARY')) div.appendChild(child);
    }
    details.replaceWith(div);
  }
  document.querySelectorAll('.output-fold, .copybtn, button.toggle-button, .headerlink').forEach(e => e.remove());
  document.querySelectorAll('.folded').forEach(e => e.classList.remove('folded'));
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
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


# Links between the book's pages become links inside the PDF: every id of a page gets the page's key as a prefix
# (two pages may use the same id), and every link to a page of the book points at the prefixed id. A link to a file
# that is not in the PDF (a figure's image file, a notebook, the search page) is kept as text; links to the web stay.
LINKS_JS = """(pages) => {
  const key = path => 'p-' + path.replace(/\\.html$/, '').replace(/[^A-Za-z0-9]+/g, '-');
  const stats = {internal: 0, external: 0, unlinked: 0};
  const base = location.origin + '/';
  for (const div of document.querySelectorAll('.print-page')) {
    const page = div.dataset.page, prefix = key(page);
    div.id = prefix;
    div.querySelectorAll('[id]').forEach(e => { e.id = `${prefix}--${e.id}`; });
    for (const a of div.querySelectorAll('a[href]')) {
      let url;
      try { url = new URL(a.getAttribute('href'), base + page); } catch (err) { continue; }
      if (url.origin !== location.origin) { stats.external += 1; continue; }
      let path = decodeURIComponent(url.pathname.replace(/^\\//, ''));
      if (path === '' || path === 'index.html') path = pages[0];
      if (pages.includes(path)) {
        const fragment = decodeURIComponent(url.hash.replace(/^#/, ''));
        a.setAttribute('href', '#' + (fragment ? `${key(path)}--${fragment}` : key(path)));
        stats.internal += 1;
      } else {
        const span = document.createElement('span');
        span.className = a.className;
        while (a.firstChild) span.appendChild(a.firstChild);
        a.replaceWith(span);
        stats.unlinked += 1;
      }
    }
  }
  return stats;
}"""

# The contents page: each part, its pages (their titles), and the sections of each chapter, each a link (which also
# makes Chromium write a named destination there, from which the bookmarks are made) with its page number.
CONTENTS_JS = """(parts) => {
  const key = path => 'p-' + path.replace(/\\.html$/, '').replace(/[^A-Za-z0-9]+/g, '-');
  const nav = document.getElementById('print-contents');
  const text = e => e.textContent.replace(/\\s+/g, ' ').trim();
  const entry = (level, id, title) => {
    const p = document.createElement('p');
    p.className = `toc-entry toc-${level}`;
    const a = document.createElement('a');
    a.href = '#' + id;
    a.textContent = title;
    p.append(a);
    const dots = document.createElement('span');
    dots.className = 'toc-dots';
    const number = document.createElement('span');
    number.className = 'toc-page';
    number.dataset.dest = id;
    number.textContent = '000';
    p.append(dots, number);
    nav.append(p);
  };
  const contents = [];
  for (const part of parts) {
    if (part.caption) {
      const p = document.createElement('p');
      p.className = 'toc-part';
      p.textContent = part.caption;
      nav.append(p);
    }
    const pages = [];
    for (const page of part.pages) {
      const div = document.getElementById(key(page));
      if (!div) continue;
      const h1 = div.querySelector('h1');
      // the front page's heading is the book's title, already on the title page
      const title = !part.caption ? 'Introduction' : (h1 ? text(h1) : page);
      entry(1, div.id, title);
      const sections = [];
      if (page.startsWith('chapters/')) {
        for (const h2 of div.querySelectorAll('section > section > h2')) {
          const id = h2.parentElement.id;
          if (!id) continue;
          entry(2, id, text(h2));
          sections.push({id, title: text(h2)});
        }
      }
      pages.push({id: div.id, title, sections});
    }
    contents.push({caption: part.caption, pages});
  }
  return contents;
}"""

FILL_CONTENTS_JS = """(numbers) => {
  for (const span of document.querySelectorAll('.print-contents .toc-page')) {
    span.textContent = numbers[span.dataset.dest] || '';
  }
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


def toc_parts() -> list[dict]:
    """The book's parts in reading order: the root page (no caption), then each part of _toc.yml with its pages, as
    paths of the built HTML."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    html = lambda f: f"{Path(f).with_suffix('').as_posix()}.html"  # noqa: E731
    parts = [{"caption": None, "pages": [html(toc["root"])]}]
    parts += [{"caption": part.get("caption"), "pages": [html(c["file"]) for c in part.get("chapters", [])]}
              for part in toc.get("parts", [])]
    return parts


def toc_pages() -> list[str]:
    """The book's pages in reading order, as paths of the built HTML (root, then every part's chapters)."""
    return [page for part in toc_parts() for page in part["pages"]]


def book_metadata() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return {"title": config.get("title", "Book"), "author": config.get("author", ""),
            "url": (config.get("repository") or {}).get("url", "")}


def revision() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def title_page(solutions: bool) -> str:
    meta, rev = book_metadata(), revision()
    made = time.strftime("%d %B %Y").lstrip("0")
    edition = "with the exercises' solutions" if solutions else "without the exercises' solutions"
    return (
        '<section class="print-title-page">'
        f'<p class="print-book-title">{html.escape(meta["title"])}</p>'
        f'<p class="print-book-author">{html.escape(meta["author"])}</p>'
        f'<p class="print-book-edition">Printed {made}{f", revision {rev}" if rev else ""}, {edition}.<br>'
        f'The website, the notebooks and the code: {html.escape(meta["url"])}</p>'
        "</section>"
        '<nav class="print-contents" id="print-contents"><p class="print-contents-title">Contents</p></nav>'
    )


def combine(html_dir: Path, solutions: bool = True) -> Path:
    """One page holding a title page, a contents page and every page's article, in reading order, on the first
    chapter's page frame.

    Every page of the book sits one folder below the root (book/, chapters/), so the relative links to
    images and static files of each article stay valid on a page in chapters/; links between pages are made links
    inside the document by LINKS_JS. (Jupyter Book's singlehtml builder cannot render MyST-NB's hidden code
    cells, so the book is assembled here instead.)
    """
    pages = toc_pages()
    frame_path = next(html_dir / p for p in pages if p.startswith("chapters/"))
    frame = frame_path.read_text(encoding="utf-8")
    articles = [title_page(solutions)]
    for page in pages:
        text = (html_dir / page).read_text(encoding="utf-8")
        begin = text.index("<article")
        end = text.rindex("</article>") + len("</article>")
        articles.append(f'<div class="print-page" data-page="{page}">{text[begin:end]}</div>')
    head = frame[: frame.index("<body")]
    head = re.sub(r"<title>.*?</title>", f"<title>{html.escape(book_metadata()['title'])}</title>", head, flags=re.S)
    body = (
        '<body><div class="bd-container"><div class="bd-container__inner bd-page-width">'
        '<main id="main-content" class="bd-main" role="main"><div class="bd-content">'
        f'<div class="bd-article-container">{"".join(articles)}</div>'
        "</div></main></div></div></body></html>"
    )
    combined = head + body
    target = frame_path.parent / COMBINED
    target.write_text(combined, encoding="utf-8")
    return target


def print_pdf(html_dir: Path, page_path: Path, target: Path) -> dict:
    """Print the combined page twice (the second time with the contents' page numbers, read from the first), then
    add the bookmarks and the metadata. Returns what check_pdf reports."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        sys.exit(f"the PDF is printed by Chromium: {NOT_FOUND}")
    footer = ('<div style="font-size:8px;width:100%;text-align:center">'
              '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
    raw = target.with_suffix(".chromium.pdf")
    with serve(html_dir) as site, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto(site + page_path.relative_to(html_dir).as_posix(), wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
        page.evaluate(PREPARE_JS)
        links = page.evaluate(LINKS_JS, toc_pages())
        print(f"links: {links['internal']} inside the book, {links['external']} to the web, "
              f"{links['unlinked']} to files that are not in the PDF (kept as text)", flush=True)
        contents = page.evaluate(CONTENTS_JS, toc_parts())
        page.add_style_tag(content=PRINT_CSS)
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 680, "height": 1000})  # A4's text width at 96 px per inch
        shrunk = page.evaluate(FIT_JS)
        print(f"{shrunk} displayed equations scaled down to the page width", flush=True)
        options = dict(format="A4", print_background=False, prefer_css_page_size=True, display_header_footer=True,
                       header_template="<span></span>", footer_template=footer)
        started = time.perf_counter()
        page.pdf(path=str(raw), **options)
        print(f"printed in {time.perf_counter() - started:.0f} s; again with the contents' page numbers", flush=True)
        numbers = destination_pages(raw)
        page.evaluate(FILL_CONTENTS_JS, numbers)
        page.pdf(path=str(raw), **options)
        browser.close()
    add_outline_and_metadata(raw, target, contents)
    raw.unlink()
    return check_pdf(target, site)


def quiet_pypdf() -> None:
    """pypdf warns about the object count of Chromium's PDF trailer (harmless; the file is read correctly)."""
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)


def destination_pages(path: Path) -> dict[str, int]:
    """Each named destination of a PDF (Chromium makes one for every target of an internal link) and its page
    number, counted from 1 as the footer counts."""
    from pypdf import PdfReader

    quiet_pypdf()
    reader = PdfReader(path)
    return {name.lstrip("/"): reader.get_destination_page_number(dest) + 1
            for name, dest in reader.named_destinations.items()}


def add_outline_and_metadata(source: Path, target: Path, contents: list[dict]) -> int:
    """Bookmarks from the contents page (each part, its pages, each chapter's sections), placed at the named
    destinations that the contents page's links created, and the book's title and author as the PDF's metadata.
    Returns the outline's depth."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import Fit

    reader = PdfReader(source)
    writer = PdfWriter(clone_from=reader)
    dests = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}

    def item(title: str, name: str, parent=None, level: int = 1):
        dest = dests.get(name)
        if dest is None:
            return None, 0
        fit = Fit.xyz(left=dest.left, top=dest.top) if dest.top is not None else Fit.fit()
        number = reader.get_destination_page_number(dest)
        return writer.add_outline_item(title=title, page_number=number, parent=parent, fit=fit), level

    meta = book_metadata()
    writer.add_outline_item(title="Title page", page_number=0, fit=Fit.fit())
    writer.add_outline_item(title="Contents", page_number=1, fit=Fit.fit())  # the page after the title page
    depth = 1
    for part in contents:
        parent, level = (item(part["caption"], part["pages"][0]["id"])) if part["caption"] else (None, 0)
        for page in part["pages"]:
            entry, page_level = item(page["title"], page["id"], parent, level + 1)
            depth = max(depth, page_level)
            for section in page["sections"]:
                depth = max(depth, item(section["title"], section["id"], entry, page_level + 1)[1])
    writer.page_mode = "/UseOutlines"
    writer.add_metadata({"/Title": meta["title"], "/Author": meta["author"],
                         "/Subject": "Neural ordinary differential equations: a textbook with code",
                         "/Creator": "python3 tasks.py pdf (Chromium and pypdf)"})
    with open(target, "wb") as out:
        writer.write(out)
    return depth


def check_pdf(path: Path, server: str = "http://127.0.0.1") -> dict:
    """What the PDF holds: pages, metadata, bookmarks, and its links: to a page of the PDF, to the web, and to the
    temporary local server that printed it (there must be none)."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    internal, web, local, broken = 0, [], [], []
    dests = {name.lstrip("/") for name in reader.named_destinations}
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            annot = annot.get_object()
            if annot.get("/Subtype") != "/Link":
                continue
            action = annot.get("/A")
            uri = action.get_object().get("/URI") if action is not None else None
            if uri is not None:
                (local if uri.startswith((server, "http://127.0.0.1", "http://localhost", "file:")) else web).append(uri)
            elif annot.get("/Dest") is not None:
                dest = annot["/Dest"]
                name = str(dest).lstrip("/") if not isinstance(dest, list) else None
                internal += 1
                if name is not None and name not in dests:
                    broken.append(name)

    def depth(items) -> int:  # pypdf's outline: a list of items, each followed by the list of its children
        return max((depth(i) + 1 if isinstance(i, list) else 1) for i in items) if items else 0

    meta = reader.metadata or {}
    return {"pages": len(reader.pages), "title": meta.get("/Title"), "author": meta.get("/Author"),
            "outline_depth": depth(reader.outline), "internal_links": internal, "web_links": web,
            "local_links": local, "broken_links": broken}


def pdf_text(path: Path) -> list[str]:
    """The text of each page (what a reader can search and copy)."""
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(path).pages]


def pdf_pages(path: Path) -> int:
    """Count the pages of a PDF (its page tree's /Count) without a PDF library."""
    import re

    data = path.read_bytes()
    counts = [int(m) for m in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", data)]
    counts += [int(m) for m in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", data)]
    return max(counts) if counts else 0


def make_pdf(html_dir: Path, target: Path, solutions: bool = True) -> dict:
    """The PDF of a built site (what check_pdf reports); the combined page it prints is removed afterwards."""
    page = combine(html_dir, solutions)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return print_pdf(html_dir, page, target)
    finally:
        page.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py pdf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-solutions", action="store_true", help="leave the exercise solutions out")
    parser.add_argument("--output", type=Path, default=OUT / PDF_NAME, help=f"default: _build/pdf/{PDF_NAME}")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    html_dir = build_site(solutions=not args.no_solutions)
    report = make_pdf(html_dir, args.output, solutions=not args.no_solutions)
    site = ROOT / "_build" / "html"
    if site.is_dir() and args.output.name == PDF_NAME and not args.no_solutions:
        shutil.copy2(args.output, site / PDF_NAME)  # where the website's download links point
        print(f"copied beside the website: {site / PDF_NAME}")
    size = args.output.stat().st_size / 2**20
    print(f"{args.output}: {report['pages']} pages, {size:.1f} MiB, "
          f"{'without' if args.no_solutions else 'with'} solutions, in {time.perf_counter() - started:.0f} s; "
          f"bookmarks {report['outline_depth']} levels deep, {report['internal_links']} links inside the document, "
          f"{len(report['web_links'])} to the web, {len(report['local_links'])} to the local server")
    if report["local_links"] or report["broken_links"]:
        print(f"links that lead nowhere: {(report['local_links'] + report['broken_links'])[:5]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
