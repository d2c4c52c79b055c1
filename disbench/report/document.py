"""The report as a list of sections of text, tables and figures, and its three renderings:
Markdown (figures linked), self-contained HTML (figures embedded) and, per table, CSV and
LaTeX files."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from disbench.store import write_atomic

FLOAT_FORMAT = "%.6g"  # CSV: enough digits, and the same text for the same numbers


@dataclass
class Text:
    text: str  # Markdown: paragraphs, `code`, **bold**, [links](url), "- " lists


@dataclass
class Missing:
    text: str  # what an exhibit could not show, and what would make it possible


@dataclass
class Table:
    name: str            # file stem of tables/<name>.csv and .tex
    frame: pd.DataFrame  # written to CSV in full
    shown: pd.DataFrame | None = None  # what the document shows (strings); default: frame
    caption: str = ""
    on_page: bool = True  # False: only linked (a long table that the figures already show)


@dataclass
class Figure:
    path: Path  # a PNG (or an animated GIF) inside the report folder
    caption: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None or value is pd.NA else str(value)


def _shown(table: Table) -> pd.DataFrame:
    return table.shown if table.shown is not None else table.frame


def write_table(table: Table, folder: Path) -> tuple[Path, Path]:
    """``tables/<name>.csv`` (every value) and ``tables/<name>.tex`` (as shown)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{table.name}.csv"
    tex = folder / f"{table.name}.tex"
    write_atomic(csv, table.frame.to_csv(index=False, float_format=FLOAT_FORMAT,
                                         lineterminator="\n"))
    write_atomic(tex, to_latex(_shown(table), table.caption))
    return csv, tex


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` of the frame's cells as shown."""
    cols = "l" * len(frame.columns)
    lines = [f"% {_latex_escape(caption)}" if caption else "% disbench report table",
             f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
             " & ".join(_latex_escape(str(c)) for c in frame.columns) + " \\\\", "\\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(_latex_escape(_cell(v)) for v in row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def to_markdown_table(frame: pd.DataFrame) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(str(c)) for c in frame.columns) + " |",
             "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], root: Path) -> str:
    out = [f"# {title}", ""]
    for number, section in enumerate(sections, 1):
        out += [f"## {number}. {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Text):
                out += [block.text, ""]
            elif isinstance(block, Missing):
                out += [f"> **Missing:** {block.text}", ""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"*{block.caption}* ([CSV](tables/{block.name}.csv), "
                            f"[LaTeX](tables/{block.name}.tex))", ""]
                if block.on_page:
                    out += [to_markdown_table(_shown(block)), ""]
            elif isinstance(block, Figure):
                rel = block.path.relative_to(root).as_posix()
                out += [f"![{block.caption}]({rel})", "", f"*{block.caption}*", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """The small Markdown subset the report's texts use, as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)


def _paragraphs(text: str) -> str:
    parts = []
    for para in text.split("\n\n"):
        lines = para.splitlines()
        if lines and all(line.startswith("- ") for line in lines):
            parts.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
                         + "</ul>")
        else:
            parts.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(parts)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:0.6em 0 1.2em;font-size:0.85em;display:block;
overflow-x:auto}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#f4f4f4}figure{margin:1em 0}img{max-width:100%}figcaption{font-style:italic;
color:#555}.missing{background:#fff6e0;border-left:4px solid #e0a000;padding:0.4em 0.8em}
code{background:#f2f2f2;padding:0 3px}.caption{font-style:italic;color:#555}"""


def render_html(title: str, sections: list[Section], root: Path) -> str:
    """One self-contained page: every figure embedded as a data URI."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for number, section in enumerate(sections, 1):
        out.append(f"<h2>{number}. {html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Text):
                out.append(_paragraphs(block.text))
            elif isinstance(block, Missing):
                out.append(f'<p class="missing"><strong>Missing:</strong> '
                           f"{_inline(block.text)}</p>")
            elif isinstance(block, Table):
                links = (f' (<a href="tables/{block.name}.csv">CSV</a>, '
                         f'<a href="tables/{block.name}.tex">LaTeX</a>)')
                out.append(f'<p class="caption">{_inline(block.caption)}{links}</p>')
                if block.on_page:
                    out.append(_html_table(_shown(block)))
            elif isinstance(block, Figure):
                data = base64.b64encode(block.path.read_bytes()).decode()
                alt = html.escape(re.sub(r"[`*]", "", block.caption))
                mime = "image/gif" if block.path.suffix == ".gif" else "image/png"
                out.append(f'<figure><img alt="{alt}" '
                           f'src="data:{mime};base64,{data}"><figcaption>'
                           f"{_inline(block.caption)}</figcaption></figure>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_document(title: str, sections: list[Section], root: Path) -> list[Path]:
    """report.md, report.html and every table's CSV and LaTeX under ``root``."""
    written = []
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Table):
                written += write_table(block, root / "tables")
    md, page = root / "report.md", root / "report.html"
    write_atomic(md, render_markdown(title, sections, root))
    write_atomic(page, render_html(title, sections, root))
    return [md, page, *written]
