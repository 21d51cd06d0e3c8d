"""Executors: where the packs of a population are trained (DESIGN §5).

:func:`~topowire.train.train_population` turns a population into a list of pack jobs
(:class:`~topowire.train.trainer.PackJob`: the models of one pack, the arch and the
training config) and hands them to an executor, which yields ``(job, rows)`` as each pack
finishes -- in any order. The driver alone writes the store, so an executor only computes.

The contract a new executor (a cluster, a process pool) keeps:

- ``map(jobs, task)`` runs ``job.run(task)`` for every job, anywhere, and yields
  ``(job, rows)`` as results arrive; a job's result does not depend on where it ran
  (every model's seed is in the job);
- it yields nothing twice and stops cleanly when the consumer stops iterating;
- ``on_step(job)``, when given, is called after each training step of a job the executor
  runs in this process (it moves a progress bar inside a pack); an executor that runs jobs
  elsewhere may ignore it, and one whose ``map`` takes no ``on_step`` is never given it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from topowire import checks
from topowire.train.heap import kept_heap

if TYPE_CHECKING:  # pragma: no cover
    from topowire.data.tasks import Task
    from topowire.train.trainer import PackJob

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "EXECUTORS", "get_executor", "connect_executor"]


#: Seconds of one wait for a pack on Ray before Python looks at its signals again.
WAIT_SECONDS = 0.5

#: ``ray.init`` options of a local cluster started for one run: no dashboard, and workers at
#: the driver's own priority (Ray's default renices them by 15, so beside two busy processes
#: on 2 cores a pack got 3-4% of a core and ran many times slower than on the local executor).
LOCAL_CLUSTER = {"include_dashboard": False, "_system_config": {"worker_niceness": 0}}


class Executor(Protocol):
    """Runs pack jobs; yields ``(job, rows)`` as each finishes."""

    def map(self, jobs: Iterable[PackJob], task: Task, on_step: Callable[[PackJob], None] | None = None
            ) -> Iterator[tuple[PackJob, list[dict[str, Any]]]]: ...


class LocalExecutor:
    """Every pack in this process, one after the other (the default).

    Parameters
    ----------
    threads : int, optional
        torch's intra-op threads while packs train (restored afterwards). Unset: torch's
        own (every core). Processes that share a machine should share its cores: two
        processes of 2 threads each on 2 cores took 1.7-2.7x as long as one (once 10x),
        two of 1 thread 0.8-0.9x (``bench/bench_threads.py``).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = checks.integer("threads", threads, 1, none=True)

    def map(self, jobs: Iterable[PackJob], task: Task, on_step: Callable[[PackJob], None] | None = None
            ) -> Iterator[tuple[PackJob, list[dict[str, Any]]]]:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or before)
        try:
            with kept_heap():  # across the packs: the heap is trimmed once, at the end, not refaulted per pack
                for job in jobs:
                    yield job, (job.run(task) if on_step is None else job.run(task, on_step=partial(on_step, job)))
        finally:
            torch.set_num_threads(before)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """ParameterError unless ``HOST:PORT`` (a ``ray://`` prefix allowed) accepts a TCP connection."""
    import socket

    from topowire.errors import ParameterError

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot reach the Ray cluster at {address!r}: {exc}; expected auto or the "
                             "HOST:PORT that `ray start --head` printed") from None


def _run_pack(job: PackJob, task: Task, threads: int) -> list[dict[str, Any]]:
    """A pack on a Ray worker, with torch's threads set to the CPUs Ray gave the task."""
    import torch

    torch.set_num_threads(threads)
    return job.run(task)


class RayExecutor:
    """Packs as Ray tasks, on a local or remote Ray cluster.

    Parameters
    ----------
    address : str, optional
        The Ray cluster: ``auto`` (the one ``ray start`` made on this machine) or
        ``HOST:PORT``. Unset: a local cluster started for this process, its workers at this
        process's priority (:data:`LOCAL_CLUSTER`).
    workers : int, optional
        Packs in flight at once (default: the cluster's CPUs divided by ``threads``, or its
        GPUs with ``gpus`` > 0).
    threads : int, default 1
        CPUs per pack (torch's thread count on the worker).
    gpus : float, default 0
        GPUs (or a fraction) per pack; the training config's device must then be CUDA.
    retries : int, default 3
        Times a pack whose worker died is run again before its models are stored
        ``failed`` with the error.

    Jobs are drawn from the driver's iterator only as workers free up, so a store's claims
    are taken just before a pack runs; Ctrl-C (or the consumer stopping) cancels what is
    in flight -- by shutting down the local cluster this executor started, if it did
    (cancelling its tasks made Ray 2.60's core abort the exit of about 1 in 6 interrupted
    processes, status 1 instead of 130) -- and the packs already yielded are whole.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, threads: int = 1,
                 gpus: float = 0.0, retries: int = 3) -> None:
        self.address = address
        self.workers = None if workers is None else checks.integer("workers", workers, 1)
        self.threads = checks.integer("threads", threads, 1)
        self.gpus = float(gpus)
        self.retries = checks.integer("retries", retries, 0)
        self._started = False  # whether connect() started a local cluster for this process

    def connect(self):
        """Import Ray and join (or start) the cluster; ParameterError when either fails."""
        from topowire.errors import ParameterError

        try:
            import ray
        except ImportError:
            raise ParameterError("the ray executor needs Ray: pip install 'topowire[ray]'") from None
        if self.address not in (None, "auto") and not ray.is_initialized():
            _reachable(self.address)  # Ray itself would keep retrying an address that does not answer
        if not ray.is_initialized():
            try:  # address None: a local cluster for this process
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                         **({} if self.address else LOCAL_CLUSTER))
                self._started = self.address is None
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ParameterError(f"cannot reach the Ray cluster at {self.address!r}: "
                                     f"{str(exc).splitlines()[0]} (a cluster with token authentication also needs "
                                     "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN from `ray get-auth-token` on its "
                                     "head)") from None
        return ray

    def map(self, jobs: Iterable[PackJob], task: Task, on_step: Callable[[PackJob], None] | None = None
            ) -> Iterator[tuple[PackJob, list[dict[str, Any]]]]:
        """Packs run on the cluster's workers: progress moves pack by pack (``on_step`` is not called)."""
        ray = self.connect()
        resources = ray.cluster_resources()
        workers = self.workers or max(1, int(resources.get("GPU", 0) // self.gpus) if self.gpus
                                      else int(resources.get("CPU", 1) // self.threads))
        remote = ray.remote(_run_pack).options(num_cpus=self.threads, num_gpus=self.gpus,
                                               max_retries=self.retries, retry_exceptions=False)
        task_ref = ray.put(task)
        pending = iter(jobs)
        in_flight: dict[Any, PackJob] = {}

        def submit() -> None:
            for job in pending:
                in_flight[remote.remote(job, task_ref, self.threads)] = job
                return

        try:
            for _ in range(workers):
                submit()
            while in_flight:
                # short waits: between them Python runs its signal handlers, so Ctrl-C is
                # honoured even when it lands inside Ray's own wait (which, on a busy machine,
                # was seen to swallow it and wait forever)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_SECONDS)
                if not ready:
                    continue
                ref = ready[0]
                job = in_flight.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayError as exc:  # retried and still failing
                    rows = job.failed_rows(f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:500]}")
                submit()
                yield job, rows
        finally:
            if self._started:  # done or interrupted: stop the local cluster this run started
                ray.shutdown()
                self._started = False
            else:  # a cluster joined: cancel only this run's tasks
                for ref in in_flight:
                    ray.cancel(ref, force=True)


#: Executors by name (the ``--executor`` choices).
EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
checks.declare("executor", checks.Domain("choice", choices=EXECUTORS))


def get_executor(executor: str | Executor, **options: Any) -> Executor:
    """An executor instance from its name (built with ``options``), or the instance given."""
    if isinstance(executor, str):
        return EXECUTORS[checks.choice("executor", executor, EXECUTORS, noun="executor")](**options)
    if not hasattr(executor, "map"):
        raise TypeError(f"executor must be a name or have a map(jobs, task) method, got {type(executor).__name__}")
    return executor


def connect_executor(executor: str = "local", *, address: str | None = None, workers: int | None = None,
                     threads: int | None = None, device: str = "cpu") -> Executor:
    """The executor named ``executor``, ready for packs: a Ray cluster is joined (or started)
    now, so an unreachable one fails before any work.

    Parameters
    ----------
    executor : {"local", "ray"}
        Where packs run: this process, or a Ray cluster (``address``, ``workers``).
    address : str, optional
        Ray only: the cluster, ``auto`` (the one ``ray start`` made on this machine) or
        ``HOST:PORT``. Unset: a local cluster started for this process.
    workers : int, optional
        Ray only: packs in flight at once. Unset: the cluster's CPUs, or its GPUs on CUDA.
    threads : int, optional
        torch threads per pack: local, this process's (unset: every core; give each of N
        processes sharing a machine cores / N, or together they run 2-10x slower); ray,
        each task's CPUs (unset: 1).
    device : str
        The training device; on CUDA each Ray pack takes one GPU.
    """
    from topowire.errors import ParameterError

    if executor != "ray":
        if address is not None or workers is not None:
            raise ParameterError("--address and --workers go with --executor ray")
        return get_executor(executor, threads=threads)
    ray = RayExecutor(address, workers, threads=1 if threads is None else threads,
                      gpus=1.0 if device.startswith("cuda") else 0.0)
    ray.connect()
    return ray
