"""`outbox drain` with a progress bar (rows done / due, rate) on stderr."""

from __future__ import annotations

from application.dispatcher import Summary
from entrypoints.container import Container
from entrypoints.worker import Mode, run, run_loop


def drain_with_progress(container: Container, *, settle: bool, show: bool) -> Summary:
    mode: Mode = "settle" if settle else "drain"
    if not show:
        return run_loop(run(container, mode))
    from rich.console import Console  # only with a bar: `--no-progress` starts without rich
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = container.store().due(container.clock().now())
    columns = (
        TextColumn("draining"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} msg/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("drain", total=max(total, 1), rate=0.0)

        def on_progress(summary: Summary) -> None:
            done = summary.sent + summary.dead + summary.invalid + summary.retried
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(task, completed=done, total=max(total, done), rate=done / elapsed)

        return run_loop(run(container, mode, on_progress=on_progress))
