"""The one-screen summary ``make run`` prints at its end: the headline rows of the report's first
table (the classifiers side by side) and where the report is.

    python -m snia.report.summary results/report/report.md
"""

from __future__ import annotations

import sys
from pathlib import Path

# rows of the comparison table worth a first look; the report holds them all
HEADLINE = ("objects (Ia)", "AUC", "purity at P(Ia) >= 0.5", "completeness at P(Ia) >= 0.5",
            "purity at best FoM", "completeness at best FoM", "FoM at best FoM", "Brier score")


def first_table(lines: list[str]) -> list[str]:
    """The lines of the first Markdown table that has a header of classifiers (its first cell
    empty and more than one column besides)."""
    table: list[str] = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table:
            if len(table) > 2 and table[0].count("|") > 3:
                return table
            table = []
    return table if len(table) > 2 and table[0].count("|") > 3 else []


def summary(report: Path) -> str:
    table = first_table(report.read_text().splitlines())
    rows = table[:2] + [r for r in table[2:] if r.split("|")[1].strip() in HEADLINE]
    html = report.with_suffix(".html")
    where = f"report: {report.resolve()}" + (f" (and {html.name} beside it)" if html.exists() else "")
    return "\n".join(rows + ["", where])


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print(f"usage: python -m snia.report.summary REPORT.md (not found: {argv})", file=sys.stderr)
        return 2
    print(summary(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
