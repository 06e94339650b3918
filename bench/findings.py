"""What bounds the missed targets: profiling and one-off measurements made outside the timed
run, kept in bench/FINDINGS.md and appended to BENCHMARKS.md by `make bench`, so a reader
sees why next to how much, and a new run does not wipe them.
"""

from pathlib import Path

FINDINGS = Path(__file__).with_name("FINDINGS.md").read_text(encoding="utf-8")
