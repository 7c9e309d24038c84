"""Running a job's chunks: in this process, on a local cluster of N worker processes, or on any
Dask scheduler; only the chunks of one shard when asked; progress for the whole job."""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from uvs.cluster import tasks
from uvs.errors import UVSError, one_line
from uvs.extras import need_cluster as need
from uvs.progress import progress
from uvs.stores import Store

log = logging.getLogger("uvs.cluster")
# One BLAS/OpenMP/torch thread per worker process: N processes use N cores, and results do not
# depend on how many threads a product was split over.
RESUBMITS = 3  # a task whose result was lost in transit is submitted again this many times
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Where:
    """Where a job runs: `address` of a scheduler, or `workers` local processes, else here;
    `shard` (i, n): only the i-th (1-based) of n equal parts of the chunks."""

    address: str | None = None
    workers: int | None = None
    shard: tuple[int, int] | None = None

    @property
    def distributed(self) -> bool:
        return bool(self.address or self.workers)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'i/n' (1 <= i <= n) as (i, n); None stays None."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UVSError(None, f"--shard {text!r}: expected i/n, e.g. 3/100") from None
    if not 1 <= i <= n:
        raise UVSError(None, f"--shard {text!r}: i must be 1 to n (1-based)")
    return i, n


def shard_chunks(chunks: int, shard: tuple[int, int] | None) -> range:
    """The chunks of shard (i, n): the i-th of n contiguous, nearly equal ranges."""
    if shard is None:
        return range(chunks)
    i, n = shard
    return range((i - 1) * chunks // n, i * chunks // n)


def check_available(where: Where, store_path: str | None = None) -> None:
    """UVSError (one line, before any slow work) when the [cluster] extra is missing."""
    if where.distributed:
        flag = "--cluster" if where.address else "--workers"
        need("dask", flag)
        need("distributed", flag)
    if where.distributed or where.shard or store_path:
        need("zarr", "a .zarr store" if store_path else "--shard")


@dataclass
class Outcome:
    """What a run did: chunks written now, already there, failed; whether the store is whole."""

    ran: int
    already: int
    failed: list[tuple[int, str]]
    complete: bool
    shard_chunks: int
    seconds: float


def _bar(total: int, quiet: bool):
    return progress(total, "tasks", not quiet)


def _client(where: Where, quiet: bool):
    """A distributed Client (and the LocalCluster it owns, or None)."""
    distributed = need("distributed", "--cluster" if where.address else "--workers")
    if where.address:
        try:
            return distributed.Client(where.address, timeout="20s"), None
        except (OSError, TimeoutError) as err:
            raise UVSError(where.address, f"no Dask scheduler answers ({one_line(err)})") \
                from None
    cluster = distributed.LocalCluster(n_workers=where.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0",
                                       silence_logs=logging.CRITICAL, env=dict(WORKER_ENV))
    return distributed.Client(cluster), cluster


def _dashboard(client, local: bool) -> str | None:
    """The dashboard's address: a remote scheduler's, or ours when bokeh can draw it."""
    import importlib.util

    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    return client.dashboard_link


def execute(store: Store, spec: dict, where: Where, quiet: bool = False,
            on_result: Callable[[dict], None] | None = None) -> Outcome:
    """Run the chunks of `where.shard` that have no marker yet; a task's UVSError stops the
    job with that line, other task failures (after Dask's retries) are counted and reported.
    """
    start = time.perf_counter()
    mine = shard_chunks(store.chunks, where.shard)
    done = store.done()
    todo = [k for k in mine if k not in done]
    place = (where.address or f"{where.workers} local worker processes" if where.distributed
             else "this process")
    log.info("%s: %d rows in %d chunks of %d; %s%d already written, %d to run in %s",
             store.path, store.rows, store.chunks, store.chunk_rows,
             f"shard {where.shard[0]}/{where.shard[1]}: {len(mine)} chunks; " if where.shard
             else "", len(mine) - len(todo), len(todo), place)
    failed: list[tuple[int, str]] = []
    ran = 0
    if todo:
        run = _on_cluster if where.distributed else _here
        ran = run(store, spec, todo, where, quiet, failed, on_result)
    return Outcome(ran, len(mine) - len(todo), failed, not store.missing(), len(mine),
                   time.perf_counter() - start)


def _account(result: dict, bar, failed: list, skipped: list[int]) -> None:
    if "error" in result:
        raise UVSError(None, result["error"])
    skipped[0] += result.get("skipped", 0)
    bar.update(1)
    bar.set_postfix_str(f"skipped {skipped[0]}, failed {len(failed)}", refresh=False)


def _here(store, spec, todo, where, quiet, failed, on_result) -> int:
    skipped = [0]
    with _bar(len(todo), quiet) as bar:
        for k in todo:
            result = tasks.run_chunk(spec, k)
            _account(result, bar, failed, skipped)
            if on_result:
                on_result(result)
    return len(todo)


def _on_cluster(store, spec, todo, where, quiet, failed, on_result) -> int:
    distributed = need("distributed", "--cluster")
    client, cluster = _client(where, quiet)
    try:
        link = _dashboard(client, cluster is not None)
        if link and not quiet:
            print(f"Dask dashboard: {link}", file=sys.stderr)
        if where.workers:
            spec = {**spec, "threads": 1}
        token = secrets.token_hex(4)

        def submit(k: int, attempt: int = 0):
            return client.submit(tasks.run_chunk, spec, k, pure=False, retries=2,
                                 key=f"uvs-{spec['kind']}-{k:08d}-{token}-{attempt}")

        futures = {submit(k): (k, 0) for k in todo}
        ran, skipped = 0, [0]
        with _bar(len(todo), quiet) as bar:
            pending = distributed.as_completed(list(futures))
            try:
                for fut in pending:
                    k, attempt = futures[fut]
                    try:
                        result = fut.result()
                    except Exception as err:  # noqa: BLE001 - decided below
                        if fut.status != "error" and attempt < RESUBMITS:
                            # its result was lost before it reached us (the worker holding it
                            # died): run the chunk again; a written chunk is not rewritten
                            again = submit(k, attempt + 1)
                            futures[again] = (k, attempt + 1)
                            pending.add(again)
                            continue
                        failed.append((k, one_line(err)))
                        bar.update(1)
                        continue
                    _account(result, bar, failed, skipped)
                    ran += 1
                    if on_result:
                        on_result(result)
            except (UVSError, KeyboardInterrupt):
                client.cancel(list(futures))
                raise
        return ran
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
