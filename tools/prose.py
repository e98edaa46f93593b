"""Numbers in a chapter's prose that the chapter measured: they must be glued, never typed.

A figure typed into a markdown cell drifts from the output it was copied from as soon as the code, the
data or the processor changes; two review rounds found such drift in every chapter. The rule: a number the
chapter (or a recorded result it prints) measured is inserted with myst-nb's ``{glue:text}`` role from the
computation (``nodelib.book.glue``). A paper's own numbers, cited, and the settings a chapter chooses stay
typed.

:func:`typed_measurements` finds the violations: a *specific* number in a markdown cell (two or more
significant digits, so not a setting such as ``10^{-4}``, 100 or 5) that equals, at the precision written, a
number that some output of the notebook prints. That is what copying a figure from an output looks like
at the moment it is typed, which is when this check catches it. A markdown cell may list numbers that are
typed on purpose (a paper's figure that an output happens to repeat, for instance) in its metadata,
``{"nodelib": {"typed": {"0.21": "Jhin et al.'s Table 1"}}}``, each with its reason.

    python tools/prose.py chapters/*.ipynb     # list the typed measurements of each chapter
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

#: Words after which a number is a reference, not a measurement ("Eq. 13", "Table 2", "Sec. 4.3").
REFERENCE_WORDS = r"(?:§|Eqs?\.|Equations?|Tables?|Figs?\.|Figures?|Sec\.|Sections?|Chapters?|chapters?|Algorithm|App\.|" \
                  r"Appendix|pp?\.|lines?|cells?|Exercises?|Theorem|Proposition|Definition|page|Step|steps? \d+ and)"
NUMBER = re.compile(
    r"(?<![\w.])(?P<num>[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?:\s*(?:\\times|×)\s*10\^\{?(?P<exp>[-−]?\d+)\}?)?"
    r"(?P<pct>\s*\\?%)?(?![\w])"
)
OUTPUT_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


@dataclass(frozen=True)
class Typed:
    cell: int
    text: str
    context: str

    def __str__(self) -> str:
        return f"markdown cell {self.cell}: {self.text!r} in \"...{self.context}...\""


def _strip_markup(text: str) -> str:
    """Markdown without the parts whose numbers are not prose: code, roles' targets, labels, links, HTML."""
    kept: list[str] = []
    open_fences: list[tuple[str, bool]] = []  # (fence, is code) of each block the line is inside
    for line in text.splitlines():
        fence = re.match(r"^\s*(`{3,}|~{3,})(.*)$", line)
        if fence:
            marker, info = fence.group(1), fence.group(2).strip()
            if open_fences and not info and marker == open_fences[-1][0]:
                open_fences.pop()  # the end of the innermost block
            elif not (open_fences and open_fences[-1][1]):
                is_code = not info.startswith("{") or info.startswith(("{code", "{literalinclude"))
                open_fences.append((marker, is_code))
            continue  # a fence line is not prose; a directive's content is
        if not any(is_code for _, is_code in open_fences):
            kept.append(line)
    text = "\n".join(kept)
    text = re.sub(r"`[^`\n]*`", " ", text)  # inline code and role targets ({glue:text}`x`, {cite}`a2019`)
    text = re.sub(r"^:\w[\w-]*:.*$", " ", text, flags=re.MULTILINE)  # directive options (:label: ...)
    text = re.sub(r"\((?:eq|fig|ex|sol|prop|thm|def)-[^)]*\)", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"</?[A-Za-z][^<>\n]*>", " ", text)  # HTML tags (not the < and > of formulas)
    return text


def _significant(digits: str) -> str:
    return digits.replace("-", "").replace(".", "").lstrip("0").rstrip("0")


def prose_numbers(text: str) -> list[tuple[Decimal, int, str]]:
    """``(value, decimals, context)`` of each specific number in a markdown text (see the module docstring)."""
    found = []
    clean = _strip_markup(text).replace("{,}", ",")
    for match in NUMBER.finditer(clean):
        raw = match.group("num").replace("−", "-").replace(",", "")
        before = clean[max(0, match.start() - 14):match.start()]
        if re.search(REFERENCE_WORDS + r"\s*(?:[\d.]+\s*(?:[–-]|and|to)\s*)?$", before):
            continue
        if re.search(r"\^\{?$", before):  # an exponent: 2^{-14}
            continue
        if re.fullmatch(r"(?:19|20)\d\d", raw):  # a year
            continue
        if not match.group("exp") and len(_significant(raw)) < 2:
            continue
        if match.group("exp") and len(_significant(raw)) < 2:
            continue  # 2 × 10^{-5}: an order of magnitude
        try:
            value = Decimal(raw)
        except InvalidOperation:
            continue
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        if match.group("exp"):
            exponent = int(match.group("exp").replace("−", "-"))
            value = value.scaleb(exponent)
            decimals = decimals - exponent
        context = clean[max(0, match.start() - 40):match.end() + 20].replace("\n", " ")
        found.append((value, decimals, context))
    return found


def output_numbers(nb: dict) -> set[Decimal]:
    """Every number the notebook's stored outputs print (stream and text/plain, glued values excluded)."""
    numbers: set[Decimal] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if "scrapbook" in out.get("metadata", {}):
                continue  # glued values are what the prose may show
            text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else \
                "".join(out.get("data", {}).get("text/plain", "")) if "image/png" not in out.get("data", {}) else ""
            for raw in OUTPUT_NUMBER.findall(text):
                raw = raw.replace("−", "-").replace(",", "")
                percent = raw.endswith("%")
                try:
                    value = Decimal(raw.rstrip("%"))
                except InvalidOperation:
                    continue
                numbers.add(value)
                if percent:
                    numbers.add(value / 100)
                elif abs(value) <= 1:
                    numbers.add(value * 100)  # an accuracy of 0.981 may be written 98.1%
    return numbers


def _rounds_to(value: Decimal, decimals: int, candidates: set[Decimal]) -> bool:
    if decimals <= 0:  # an integer matches an integer (a count), not any number that rounds to it
        return any(c == value for c in candidates)
    quantum = Decimal(1).scaleb(-decimals)
    for c in candidates:
        if c == 0 and value != 0:
            continue
        try:
            if c.quantize(quantum) == value.quantize(quantum) and math.copysign(1, c) == math.copysign(1, value):
                return True
        except InvalidOperation:
            continue
    return False


def code_literals(nb: dict) -> set[Decimal]:
    """The numeric literals of the code cells: the settings a chapter chose (a batch of 128, 32 channels)."""
    found: set[Decimal] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            for raw in re.findall(r"(?<![\w.])\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?", "".join(cell.get("source", ""))):
                try:
                    value = Decimal(raw.replace("_", ""))
                except InvalidOperation:
                    continue
                found.update((value, -value))
    return found


def typed_measurements(nb: dict) -> list[Typed]:
    """The specific numbers of the markdown cells that equal, at the precision written, a printed output (and are
    not a literal of the code: those are the chapter's own settings)."""
    printed = output_numbers(nb) - code_literals(nb)
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        allowed = set(cell.get("metadata", {}).get("nodelib", {}).get("typed", {}))
        for value, decimals, context in prose_numbers("".join(cell.get("source", ""))):
            if _rounds_to(value, decimals, printed):
                text = f"{value:f}".rstrip("0").rstrip(".") if "." in f"{value:f}" else f"{value:f}"
                if text in allowed or context.strip() in allowed:
                    continue
                found.append(Typed(index, text, context))
    return found


def main(argv: list[str]) -> int:
    total = 0
    for name in argv:
        nb = json.loads(Path(name).read_text(encoding="utf-8"))
        typed = typed_measurements(nb)
        total += len(typed)
        print(f"{Path(name).name}: {len(typed)} typed measurements")
        for t in typed:
            print("   ", t)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
