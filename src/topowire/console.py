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
                shown = f"{done:.1f}" if done != int(done) else f"{int(done)}"  # a pack counts in part
                console.print(f"{stage}: {shown}/{total} ({rate:.2f}/s)", highlight=False)
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


def print_frame(df, title: str) -> None:
    table = Table(title=title)
    for c in [df.index.name or "", *df.columns]:
        table.add_column(str(c))
    for key, row in df.iterrows():
        table.add_row(str(key), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


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
    """A two-column table of a study's summary."""
    table = Table(title=title, show_header=False)
    for k, v in summary.items():
        table.add_row(k, v)
    console.print(table)
