"""The report as a document: paragraphs, figures, tables, definitions, collapsed details and
sections, rendered as Markdown (for GitHub) and as one self-contained HTML page (images embedded
as data URIs, styled for reading).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

CSS = """
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a1a1a;max-width:1000px;
margin:0 auto;padding:0 24px 48px;overflow-wrap:break-word}
h1{font-size:1.7em;margin:.6em 0 .2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
section:first-of-type h2{margin-top:.8em}
table{border-collapse:collapse;margin:.8em 0;max-width:100%}table.numbers{min-width:70%}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #b8b8b8;padding:3px 9px;vertical-align:top}
table.numbers{line-height:1.25}table.numbers th,table.numbers td{padding:2px 9px 1px}
#comparison tbody th{white-space:nowrap}
thead th{background:#eef1f5;text-align:center}
tbody th{text-align:left;font-weight:normal;background:#f8f9fa}
td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.text td{text-align:left;white-space:normal;overflow-wrap:anywhere}
figure{margin:1.2em 0}figure img{display:block;width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.92em;color:#444;margin-top:.3em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.6em;font-size:.85em}
code{overflow-wrap:anywhere}nav{font-size:.95em}div.wide{overflow-x:auto}
"""


# The first section's id: the answer (the comparison table, id 'comparison', and the ROC of all).
ANSWER_SECTION = "results"


SCREEN_JS = """
const images = Array.from(document.images);
const text = id => (document.getElementById(id) || {innerText: ''}).innerText;
return {images: images.length,
        broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
        external: images.filter(i => !i.src.startsWith('data:')).map(i => i.src),
        scroll_width: document.documentElement.scrollWidth,
        inner_width: window.innerWidth,
        provenance: text('provenance'), definitions: text('definitions'),
        height: document.documentElement.scrollHeight, inner_height: window.innerHeight,
        first_section: (document.querySelector('section') || {id: null}).id,
        headline: (el => el ? {top: el.getBoundingClientRect().top,
                               bottom: el.getBoundingClientRect().bottom} : null)(
            document.getElementById('comparison'))};
"""


@dataclass
class Para:
    text: str


@dataclass
class Figure:
    path: Path  # a PNG
    caption: str


@dataclass
class Table:
    caption: str
    header: list
    rows: list  # [label, cell, ...]
    kind: str = "numbers"  # numbers: right-aligned cells; text: left-aligned, wrapping
    id: str | None = None
    shown: int | None = None  # rows shown; the rest collapsed (<details>), kept complete

    def split(self) -> tuple[list, list, str]:
        """(rows shown, rows collapsed, the summary naming what is collapsed)."""
        if self.shown is None or len(self.rows) <= self.shown:
            return self.rows, [], ""
        rest = self.rows[self.shown:]
        names = list(dict.fromkeys(str(row[0]).split(" (")[0] for row in rest))
        return self.rows[:self.shown], rest, f"{len(rest)} more rows: {', '.join(names)}"


@dataclass
class Definitions:
    items: list
    id: str = "definitions"


@dataclass
class Details:
    summary: str
    text: str
    language: str = "yaml"


@dataclass
class Section:
    title: str
    id: str
    blocks: list = field(default_factory=list)


def markdown_page(title: str, sections: list[Section], out: Path) -> str:
    lines = [f"# {title}", "", " · ".join(f"[{s.title}](#{s.id})" for s in sections), ""]
    number = 0
    for s in sections:
        lines += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Para):
                lines += [b.text, ""]
            elif isinstance(b, Figure):
                number += 1
                rel = os.path.relpath(b.path, out)
                lines += [f"![{b.caption}]({rel})", "", f"*Figure {number}. {b.caption}*", ""]
            elif isinstance(b, Table):
                shown, rest, summary = b.split()
                lines += [f"**{b.caption}**", ""] + _markdown_rows(b, shown) + [""]
                if rest:  # GitHub renders a table inside <details> between blank lines
                    lines += ["<details>", f"<summary>{html.escape(summary, quote=False)}</summary>",
                              ""]
                    lines += _markdown_rows(b, rest) + ["", "</details>", ""]
            elif isinstance(b, Definitions):
                lines += [f'<a id="{b.id}"></a>', "", "**Definitions.**", ""]
                lines += [f"- **{term}**: {text}" for term, text in b.items]
                lines.append("")
            elif isinstance(b, Details):
                lines += ["<details>", f"<summary>{html.escape(b.summary)}</summary>", "",
                          f"```{b.language}", b.text.rstrip("\n"), "```", "", "</details>", ""]
    return "\n".join(lines)


def _markdown_rows(b: Table, rows: list) -> list[str]:
    return (["| " + " | ".join(b.header) + " |",
             "|" + "|".join([":---"] + ["---:" if b.kind == "numbers" else ":---"]
                            * (len(b.header) - 1)) + "|"]
            + ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows])


def _html_rows(rows: list) -> str:
    esc = html.escape
    return "".join("<tr><th scope='row'>" + esc(str(row[0])) + "</th>"
                   + "".join(f"<td>{esc(str(v))}</td>" for v in row[1:]) + "</tr>" for row in rows)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_page(title: str, sections: list[Section]) -> str:
    esc = html.escape
    parts = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             "<nav>" + " · ".join(f"<a href='#{s.id}'>{esc(s.title)}</a>" for s in sections)
             + "</nav>"]
    number = 0
    for s in sections:
        parts.append(f"<section id='{s.id}'><h2>{esc(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Para):
                parts.append(f"<p>{esc(b.text)}</p>")
            elif isinstance(b, Figure):
                number += 1
                parts.append(f"<figure><img src='{_data_uri(b.path)}' alt='{esc(b.caption)}'>"
                             f"<figcaption>Figure {number}. {esc(b.caption)}</figcaption></figure>")
            elif isinstance(b, Table):
                ident = f" id='{b.id}'" if b.id else ""
                head = ("" if not any(b.header) else "<thead><tr>" + "".join(
                    f"<th scope='col'>{esc(str(h))}</th>" for h in b.header) + "</tr></thead>")
                shown, rest, summary = b.split()
                # a wide table scrolls inside its box; the page never overflows
                parts.append(f"<div class='wide'><table class='{b.kind}'{ident}><caption>"
                             f"{esc(b.caption)}</caption>{head}<tbody>{_html_rows(shown)}</tbody>"
                             "</table></div>")
                if rest:
                    parts.append(f"<details><summary>{esc(summary)}</summary><div class='wide'>"
                                 f"<table class='{b.kind}'>{head}<tbody>{_html_rows(rest)}</tbody>"
                                 "</table></div></details>")
            elif isinstance(b, Definitions):
                items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in b.items)
                parts.append(f"<div id='{b.id}'><h3>Definitions</h3><dl>{items}</dl></div>")
            elif isinstance(b, Details):
                parts.append(f"<details><summary>{esc(b.summary)}</summary>"
                             f"<pre>{esc(b.text)}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
