"""Console output of the command line: one rich console, progress bars and tables.

:func:`progress` renders the library's ``progress(stage, done, total)`` callbacks: a rich
bar per stage (done/total, rate, ETA) on a terminal, a plain line every tenth of a stage
otherwise (logs, CI, pipes).
"""

from __future__ import annotations

import contextlib
import time

from rich.console import Console
from rich.table import Table

__all__ = ["console", "progress", "print_frame", "print_scores", "print_summary"]

#: Lines are never cut to the width (a log keeps each message on one line); tables still fit it.
console = Console(soft_wrap=True)


@contextlib.contextmanager
def progress():
    """``update(stage, done, total)``: a rich bar per stage on a terminal, plain lines otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks, last = {}, {}
    if not console.is_terminal:
        def plain(stage: str, done: int, total: int) -> None:
            t0, first = tasks.setdefault(stage, (time.perf_counter(), done))  # the rate of this stage's own work
            if (done == total and last.get(stage) != done) or done - last.get(stage, -total) >= max(1, total // 10):
                last[stage] = done
                rate = (done - first) / max(1e-9, time.perf_counter() - t0)
                partway = ", a pack partway" if done != int(done) else ""  # a pack counts in part, per step
                console.print(f"{stage}: {int(done)}/{total} ({rate:.2f}/s{partway})", highlight=False)
        yield plain
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        def rich_update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = (bar.add_task(stage, total=total, rate=""), time.perf_counter(), done)
            task, t0, first = tasks[stage]
            rate = (done - first) / max(1e-9, time.perf_counter() - t0)
            bar.update(task, completed=done, total=total, rate=f"{rate:.2f}/s")
        yield rich_update


#: Width of tables printed to a pipe or a log: wide enough that no name is cut or folded.
PIPE_WIDTH = 1000


def _print_table(table: Table) -> None:
    """A table at the terminal's width (a cell too long for it folds, never cut with an
    ellipsis), or at its natural width in a pipe or a log."""
    for column in table.columns:
        column.overflow = "fold"
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = PIPE_WIDTH
    try:
        console.print(table)
    finally:
        console.width = width


def print_frame(df, title: str) -> None:
    table = Table(title=title)
    for c in [df.index.name or "", *df.columns]:
        table.add_column(str(c))
    for key, row in df.iterrows():
        table.add_row(str(key), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    _print_table(table)


def print_scores(cv) -> None:
    """The headline first (warnings on top), then the table of scores, then what was skipped."""
    for key, line in cv.headline().items():
        red = key in ("WARNING", "CANNOT DETECT")
        console.print(f"{key}: {line}", style="bold red" if red else None, highlight=False)
    print_frame(cv.table().set_index("scheme"), f"cross-validated scores ({cv.n_rows} topologies; r2, mae, "
                "spearman pooled over folds, mean of 3 repeats; *_fold_sd: spread over folds)")
    for note in cv.notes:
        console.print(f"note: {note}", highlight=False)
    top = cv.importances.head(8)
    console.print("top features: " + ", ".join(f"{f} ({v:.3f})" for f, v in zip(top["feature"], top["importance"])))


def print_summary(summary: dict[str, str], title: str) -> None:
    """A study's summary: a two-column table on a terminal, ``key: value`` lines under the
    title in a pipe or a log (whole, and one line each for grep)."""
    if not console.is_terminal:
        console.print(title, highlight=False)
        for k, v in summary.items():
            console.print(f"{k}: {v}", highlight=False)
        return
    table = Table(title=title, show_header=False)
    for k, v in summary.items():
        table.add_row(k, v)
    _print_table(table)
