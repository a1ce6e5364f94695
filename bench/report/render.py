"""Markdown and HTML from the same :class:`~bench.report.analysis.Document`.

The HTML comes from a jinja2 template (``templates/report.html.j2``) with autoescaping
on: every string from the data (host names, reasons, run names) is escaped by the
template, and no markup is assembled here. Notes mark only `code` and **bold**; they are
split into spans that both renderers emit in their own syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.report.analysis import Document, Section, Table
from bench.report.plots import embed_png

TEMPLATES = Path(__file__).parent / "templates"
_SPANS = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")
#: Characters that Markdown (GitHub's included: math between dollars, ~strikethrough~)
#: would interpret, entities (&lt;) and a heading's closing #s included; an underscore
#: only where it could open or close emphasis (not inside a word).
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|$&~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


@dataclass(frozen=True)
class Span:
    kind: str  # "text", "code" or "bold"
    text: str


def spans(note: str) -> list[Span]:
    """A note split into plain text, `code` and **bold** spans."""
    out, pos = [], 0
    for m in _SPANS.finditer(note):
        if m.start() > pos:
            out.append(Span("text", note[pos : m.start()]))
        out.append(Span("code", m.group(1)) if m.group(1) is not None else Span("bold", m.group(2)))
        pos = m.end()
    if pos < len(note):
        out.append(Span("text", note[pos:]))
    return out


def slug(title: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "section"
    name, n = base, 2
    while name in used:
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name


# -- Markdown ------------------------------------------------------------------------------
def md_escape(text: str) -> str:
    """Plain text that Markdown shows as is, on one line: the one escape of every text
    from the data that report.md carries (titles, table cells, notes outside `code`).
    Pipes cannot split a table cell, and a line break (``\\n``, ``\\r`` or any other)
    cannot end a table row or a heading."""
    return " ".join(_MD_SPECIAL.sub(r"\\\1", str(text)).splitlines())


def _md_note(note: str) -> str:
    parts = []
    for sp in spans(note):
        if sp.kind == "code":
            parts.append(f"`{sp.text}`")
        elif sp.kind == "bold":
            parts.append(f"**{md_escape(sp.text)}**")
        else:
            parts.append(md_escape(sp.text))
    return "".join(parts)


def _md_table(table: Table) -> list[str]:
    out = ["| " + " | ".join(md_escape(c) for c in table.columns) + " |\n"]
    out.append("|" + "|".join("---:" if n else "---" for n in table.numeric) + "|\n")
    for row in table.rows:
        cells = [
            f"**{md_escape(c.text)}**" if c.bold and c.text else md_escape(c.text) for c in row
        ]
        out.append("| " + " | ".join(cells) + " |\n")
    return out


def to_markdown(doc: Document, folder: Path) -> str:
    """The report as Markdown; plots linked relative to ``folder`` (where it is written)."""
    out = [f"# {md_escape(doc.title)}\n"]
    for s in doc.sections:
        out.append(f"\n{'#' * s.level} {md_escape(s.title)}\n\n")
        for note in s.notes:
            out.append(_md_note(note) + "\n\n")
        for img in s.images:
            out.append(f"![{md_escape(img.stem)}]({img.relative_to(folder).as_posix()})\n\n")
        if s.table is None:
            continue
        if s.table.empty:
            out.append("_none_\n")
            continue
        out.extend(_md_table(s.table))
    return "".join(out)


# -- HTML ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Image:
    alt: str
    src: str


@dataclass(frozen=True)
class _HtmlSection:
    id: str
    section: Section
    notes: list[list[Span]]
    images: list[_Image]


def environment():  # -> jinja2.Environment
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ value }} is escaped: the data never becomes markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def to_html(doc: Document) -> str:
    """The report as one self-contained page (styles inline, plots as data URIs)."""
    used: set[str] = set()
    sections = [
        _HtmlSection(
            slug(s.title, used),
            s,
            [spans(n) for n in s.notes],
            [_Image(img.stem, embed_png(img)) for img in s.images],
        )
        for s in doc.sections
    ]
    return environment().get_template("report.html.j2").render(title=doc.title, sections=sections)
