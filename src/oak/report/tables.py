"""A table, and writing it as Markdown (readable on the repository page), CSV and LaTeX (booktabs)."""

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}


@dataclass
class Table:
    title: str
    headings: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # sources, what a dash means, flags
    preamble: list[str] = field(default_factory=list)  # lines of Markdown between the title and the table, which CSV and LaTeX leave out


def to_markdown(table: Table, *, level: int = 2) -> str:
    """The table under a heading of `level`, its preamble, then its notes as a list."""
    lines = [f"{'#' * level} {table.title}", ""] + table.preamble + ([""] if table.preamble else [])
    lines += ["| " + " | ".join(table.headings) + " |", "|" + "---|" * len(table.headings)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    lines += [""] + [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.headings)
    writer.writerows(table.rows)
    return buffer.getvalue()


def to_latex(table: Table) -> str:
    escape = latex_escape
    lines = [
        "% " + table.title,
        r"\begin{tabular}{" + "l" * 2 + "r" * (len(table.headings) - 2) + "}",
        r"\toprule",
        " & ".join(escape(h) for h in table.headings) + r" \\",
        r"\midrule",
        *(" & ".join(escape(cell) for cell in row) + r" \\" for row in table.rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def table_files(table: Table, folder: Path, name: str) -> dict[Path, str]:
    """`<name>.md`, `.csv` and `.tex` under `folder`, by path: every table is written in all three formats."""
    return {folder / f"{name}.md": to_markdown(table), folder / f"{name}.csv": to_csv(table), folder / f"{name}.tex": to_latex(table)}


def latex_escape(text: str) -> str:
    """Markdown's `code` becomes \\texttt, the dash and the flag their LaTeX forms; specials are escaped."""
    escaped = "".join(LATEX_SPECIALS.get(character, character) for character in text).replace("—", "---").replace("⚠", "(!)")
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", escaped)
