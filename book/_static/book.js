// The book's own fixes to the theme (see book/_ext/bookpages.py).
//
// pydata-sphinx-theme 0.17 listens only to the first ".primary-toggle" / ".secondary-toggle" on the page,
// a hidden button in the top bar; the visible buttons (sphinx-book-theme's article header) do nothing, so
// on phones and tablets the chapter list and the page contents cannot be opened. Each visible button
// forwards its click to the one the themes listen to (which opens the drawer on narrow screens and
// collapses the sidebar on wide ones).
document.addEventListener("DOMContentLoaded", () => {
  for (const kind of ["primary", "secondary"]) {
    const buttons = Array.from(document.querySelectorAll(`.${kind}-toggle`));
    const listened = buttons[0];
    for (const button of buttons.slice(1)) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        listened.click();
        button.blur();
      });
    }
  }
});

// The theme's ".pdf" download entry prints the web page (solutions expanded, code cut, navigation and all).
// The book has a real PDF, made by `python3 tasks.py pdf` and published beside the website: point there.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.documentElement.dataset.content_root || "./";
  for (const button of document.querySelectorAll(".btn-download-pdf-button")) {
    button.removeAttribute("onclick");
    button.setAttribute("title", "The whole book as a PDF");
    button.addEventListener("click", async (event) => {
      event.preventDefault();
      const pdf = `${root}neural-odes-textbook.pdf`;
      // A copy built on your machine has the PDF once `python3 tasks.py pdf` has made it: say so instead of a 404.
      if (location.protocol.startsWith("http")) {
        const found = await fetch(pdf, { method: "HEAD" }).then((r) => r.ok, () => false);
        if (!found) {
          window.alert("This copy of the book has no PDF yet. In the repository, run:\n\n    python3 tasks.py pdf\n\n" +
                       "It prints the book to _build/pdf/ and puts the PDF beside the website.");
          return;
        }
      }
      window.location.href = pdf;
    });
  }
});

// The sidebar starts at its top when the current chapter's link is visible there. The theme scrolls it whenever
// that link is below the middle of the window, which at 1400 x 900 cut the book's title off the top (65-89 px).
window.addEventListener("load", () => {
  const sidebar = document.querySelector("div.bd-sidebar");
  const active = document.querySelectorAll(".bd-docs-nav .active");
  if (!sidebar || !active.length || sessionStorage.getItem("sidebar-scroll-top") !== null) return;
  const link = active[active.length - 1];
  const bottom = link.getBoundingClientRect().bottom - sidebar.getBoundingClientRect().top + sidebar.scrollTop;
  if (bottom <= sidebar.clientHeight) sidebar.scrollTop = 0;
});

// Each solution's toggle is named by what it opens ("Solution to Exercise 6.2"), not "Toggle hidden content".
// sphinx-togglebutton adds the buttons when the page has loaded; this runs after it.
const nameSolutionToggles = () => {
  for (const button of document.querySelectorAll(".solution .admonition-title button.toggle-button")) {
    const title = button.closest(".admonition-title");
    const text = Array.from(title.childNodes).filter((n) => n !== button).map((n) => n.textContent).join("")
      .replace(/\s+/g, " ").trim();
    const match = text.match(/^Solution to Exercise [\d.]+/);
    button.setAttribute("aria-label", match ? match[0] : text);
  }
};
document.addEventListener("DOMContentLoaded", () => setTimeout(nameSolutionToggles, 0));

// Long printed outputs (library source, a model listing) are folded to about 20 lines, with a button that shows
// all of them. The whole output is still on the page (search, print, copy); the PDF prints it unfolded.
const FOLD_LINES = 30;
document.addEventListener("DOMContentLoaded", () => {
  let count = 0;
  for (const output of document.querySelectorAll("div.cell_output div.output")) {
    const pre = output.querySelector("pre");
    if (!pre) continue;
    const lines = pre.textContent.replace(/\n$/, "").split("\n").length;
    if (lines <= FOLD_LINES) continue;
    count += 1;
    output.id = output.id || `folded-output-${count}`;
    output.classList.add("folded");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "output-fold";
    button.setAttribute("aria-controls", output.id);
    button.setAttribute("aria-expanded", "false");
    const label = () => {
      const folded = output.classList.contains("folded");
      button.textContent = folded ? `Show all ${lines} lines of this output` : "Fold this output";
      button.setAttribute("aria-expanded", String(!folded));
    };
    button.addEventListener("click", () => { output.classList.toggle("folded"); label(); });
    label();
    output.after(button);
  }
});

// Every figure opens full size on a tap, a click or Enter: Sphinx links the figures it scales to their image file;
// any other figure image gets the same link here.
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll("div.cell_output img, figure img")) {
    const link = img.closest("a");
    if (link) {
      if (!link.title) link.title = "Open the figure full size";
      continue;
    }
    const a = document.createElement("a");
    a.href = img.getAttribute("src");
    a.className = "figure-full-size";
    a.title = "Open the figure full size";
    img.replaceWith(a);
    a.appendChild(img);
  }
});

// Search results quote the page's text, in which a formula is its TeX source ("\(\mathbf{z}(t)\)"): show the
// formula as plain text instead (Greek letters as letters, commands and braces dropped).
const GREEK = { alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", zeta: "ζ", eta: "η",
  theta: "θ", iota: "ι", kappa: "κ", lambda: "λ", mu: "μ", nu: "ν", xi: "ξ", pi: "π", rho: "ρ", sigma: "σ",
  tau: "τ", phi: "φ", varphi: "φ", chi: "χ", psi: "ψ", omega: "ω", Gamma: "Γ", Delta: "Δ", Theta: "Θ",
  Lambda: "Λ", Sigma: "Σ", Phi: "Φ", Psi: "Ψ", Omega: "Ω", partial: "∂", nabla: "∇", infty: "∞", to: "→",
  approx: "≈", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", times: "×", cdot: "·", in: "∈",
  sum: "Σ", int: "∫", mathrm: "", mathbf: "", boldsymbol: "", operatorname: "", text: "", mathcal: "" };
const texToText = (tex) => tex
  .replace(/^\\[(\[]|\\[)\]]$/g, "")
  .replace(/\\([A-Za-z]+)/g, (_, name) => (name in GREEK ? GREEK[name] : ""))
  .replace(/\\[,;:! ]/g, " ").replace(/[{}]/g, "").replace(/\s+/g, " ").trim();
if (typeof Search !== "undefined" && Search.htmlToText) {
  const htmlToText = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll("div.math").forEach((m) => { m.textContent = " [equation] "; });
    doc.querySelectorAll("span.math").forEach((m) => { m.textContent = texToText(m.textContent); });
    return htmlToText(doc.documentElement.outerHTML, anchor);
  };
}

// Formulas are not tab stops. MathJax's own (inTabOrder: false, book/_ext/bookpages.py) is off, but Chromium also
// stops at every element that scrolls (displayed equations, and inline formulas on phones, scroll sideways when
// too wide; MathJax's glyphs overhang their box by a few pixels, so nearly every box "scrolls"): a formula with
// less than 8 px to scroll is taken out of the tab order; one that really scrolls (a long equation on a phone)
// stays, so that the keyboard can scroll it.
const formulasOutOfTabOrder = () => {
  for (const m of document.querySelectorAll("mjx-container")) {
    const scrolls = ["auto", "scroll"].includes(getComputedStyle(m).overflowX) && m.scrollWidth > m.clientWidth + 8;
    m.setAttribute("tabindex", scrolls ? "0" : "-1");
  }
};
window.addEventListener("load", () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(formulasOutOfTabOrder);
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(formulasOutOfTabOrder, 200);
    });
  }
});
