"""A table, and writing it as Markdown (readable on the repository page), CSV and LaTeX (booktabs)."""

import csv
import io
import re
from dataclasses import dataclass, field

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}


@dataclass
class Table:
    title: str
    headings: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # sources, what a dash means, flags


def to_markdown(table: Table) -> str:
    lines = [f"## {table.title}", "", "| " + " | ".join(table.headings) + " |", "|" + "---|" * len(table.headings)]
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


def latex_escape(text: str) -> str:
    """Markdown's `code` becomes \\texttt, the dash and the flag their LaTeX forms; specials are escaped."""
    escaped = "".join(LATEX_SPECIALS.get(character, character) for character in text).replace("—", "---").replace("⚠", "(!)")
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", escaped)
