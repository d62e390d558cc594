"""Run store: metric-write throughput of the SQLite and the PostgreSQL back end.

``N`` writer processes (the shape of N training workers) append metric rows to their own
runs through ``RunStore.log_metrics``, ``BATCH`` rows per transaction (five optimizer steps
of the worker's four step metrics), as fast as they can for a few seconds; the table gives
the rows and transactions the store took per second, all writers together (median of the
repeats; SQLite and PostgreSQL interleaved).

Each back end runs as the lab runs it: SQLite in WAL mode with ``synchronous=NORMAL`` in a
fresh lab home; PostgreSQL on a throwaway local server (``bench/pgserver.py``) with its
default durability (``fsync=on``, ``synchronous_commit=on``), over TCP on loopback.
The writers' start-up (Python, pandas) is outside the timed window: they all start writing
on one signal.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Contention, md_table, update_benchmarks  # noqa: E402

HEADING = "## Run store"
BATCH = 20  # rows per transaction: 5 steps x (loss, lr, grad_norm, samples_per_s)

# One writer: open the store the environment names, wait for "go", write for `seconds`, print
# "<rows> <transactions>".
WRITER = r"""
import sys, time
from core.runs.store import open_store
home, url, run_id, seconds, batch = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
store = open_store(home=home, url=url)
store.log_metrics(run_id, [(0, 0, "warmup", 0.0)])
print("ready", flush=True)
sys.stdin.readline()
rows = txns = step = 0
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    store.log_metrics(run_id, [(step + i // 4, 1, ("loss", "lr", "grad_norm", "samples_per_s")[i % 4], 0.5)
                               for i in range(batch)])
    step += batch // 4
    rows += batch
    txns += 1
print(rows, txns, flush=True)
store.close()
"""


def measure(home: Path, url: str, writers: int, seconds: float, batch: int = BATCH) -> tuple[float, float]:
    """(rows/s, transactions/s) of ``writers`` processes writing at once for ``seconds``."""
    from core.runs.store import open_store

    store = open_store(home=home, url=url)
    run_ids = [store.create_run({"bench": "store"}, status="running") for _ in range(writers)]
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), url, rid, str(seconds), str(batch)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
             for rid in run_ids]
    try:
        for proc in procs:
            line = proc.stdout.readline().strip() if proc.stdout else ""
            if line != "ready":
                raise RuntimeError(f"a store writer did not start: {line!r}")
        t0 = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        rows = txns = 0
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 120)
            r, t = out.split()
            rows, txns = rows + int(r), txns + int(t)
        wall = time.perf_counter() - t0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return rows / wall, txns / wall


def section(quick: bool = False) -> str:
    from bench.pgserver import PostgresServer

    writer_counts = (1, 4) if quick else (1, 4, 16)
    seconds, repeats = (1.0, 1) if quick else (4.0, 3)
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lab-bench-store-") as tmp, PostgresServer() as pg, \
            Contention() as busy:
        homes = {"SQLite": (Path(tmp) / "sqlite", ""), "PostgreSQL": (Path(tmp) / "pg", pg.database("bench"))}
        for i in range(repeats):
            for writers in writer_counts:
                order = list(homes) if i % 2 == 0 else list(homes)[::-1]
                for name in order:
                    home, url = homes[name]
                    results.setdefault((name, writers), []).append(measure(home, url, writers, seconds))
    rows, ratios = [], []
    for writers in writer_counts:
        sqlite_rows = statistics.median(r for r, _ in results[("SQLite", writers)])
        for name in ("SQLite", "PostgreSQL"):
            rate = statistics.median(r for r, _ in results[(name, writers)])
            txns = statistics.median(t for _, t in results[(name, writers)])
            rows.append([name, writers, f"{rate:,.0f}", f"{txns:,.0f}", f"{rate / sqlite_rows:.2f}×"])
        ratios.append(statistics.median(r for r, _ in results[("PostgreSQL", writers)]) / sqlite_rows)
    if all(r < 1 for r in ratios):
        verdict = (f"SQLite took {1 / max(ratios):.1f}–{1 / min(ratios):.1f}× the rows of PostgreSQL at every writer "
                   "count here: on one machine it is the faster store, and PostgreSQL earns its cost when the "
                   "writers are on several hosts, which one SQLite file cannot serve.")
    else:
        faster = [str(w) for w, r in zip(writer_counts, ratios, strict=True) if r >= 1]
        verdict = (f"PostgreSQL kept up with or beat SQLite with {', '.join(faster)} writers here; SQLite stays the "
                   "default because it needs no server.")
    lines = [HEADING, "",
             f"Metric rows written per second by N writer processes at once, {BATCH} rows per transaction "
             f"({seconds:g} s of writing, median of {repeats}; `bench/store.py`). SQLite: WAL, "
             "`synchronous=NORMAL`, in the lab home. PostgreSQL 15: a local server with its default durability "
             "(`fsync=on`, `synchronous_commit=on`), over TCP on loopback.", "",
             md_table(["store", "writers", "rows/s", "transactions/s", "vs SQLite"], rows), "", verdict, ""]
    note = busy.note()
    if note:
        lines += [note, ""]
    if quick:
        lines += ["(A `--quick` run: small sizes, not measurements.)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two writer counts, one short repeat")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    text = section(quick=args.quick)
    print(text)
    if not (args.no_write or args.quick):
        update_benchmarks(text, heading=HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
