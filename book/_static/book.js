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
    button.addEventListener("click", (event) => {
      event.preventDefault();
      window.location.href = `${root}neural-odes-textbook.pdf`;
    });
  }
});
