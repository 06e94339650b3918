"""Result rows, the printed table, the machine description and BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    scenario: str
    database: str
    metric: str
    values: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def cells(self) -> list[str]:
        spread = (
            [fmt(self.median), fmt(min(self.values)), fmt(max(self.values))]
            if self.values
            else ["—", "—", "—"]
        )
        return [
            self.scenario,
            self.database,
            self.metric,
            *spread,
            str(len(self.values)),
            self.note,
        ]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(" | ".join(row.cells()), flush=True)
        return row

    def target(self, name: str, measured: str, met: bool | None) -> None:
        self.targets.append((name, measured, met))
        verdict = {True: "met", False: "MISSED", None: "n/a"}[met]
        print(f"target: {name}: {measured} -> {verdict}", flush=True)


HEADER = ["scenario", "database", "metric", "median", "min", "max", "runs", "note"]


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def text_table(rows: list[Row]) -> str:
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def machine(pg_version: str) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": cpu,
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_markdown(
    path: Path, report: Report, info: dict[str, str], command: str, preamble: str, appendix: str
) -> None:
    verdicts = {True: "met", False: "**missed**", None: "n/a"}
    parts = [
        "# Benchmarks\n",
        preamble,
        f"Command: `{command}`\n",
        "## Machine\n",
        "\n".join(f"- {name}: {value}" for name, value in info.items()) + "\n",
        "## Results\n",
        "Medians, minima and maxima over the runs shown; rates in messages (rows) per second.\n",
        markdown_table(report.rows) + "\n",
        "## Targets\n",
        "| target | measured | verdict |\n|---|---|---|\n"
        + "\n".join(f"| {n} | {m} | {verdicts[v]} |" for n, m, v in report.targets)
        + "\n",
    ]
    if report.notes:
        parts += ["## Notes\n", "\n".join(f"- {note}" for note in report.notes) + "\n"]
    path.write_text("\n".join([*parts, appendix]))
