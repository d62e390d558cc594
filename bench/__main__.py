"""``python -m bench``: run every benchmark section in order, print each, write BENCHMARKS.md.

Usage::

    python -m bench                        # everything (takes a while), rewrites BENCHMARKS.md
    python -m bench --quick --no-write     # small sizes, few repeats: a smoke test
    python -m bench --only training,export # some sections; their parts of BENCHMARKS.md are replaced
    python -m bench --list                 # the section names

The file gets a header with the machine's facts, then one "## " part per benchmark. A
section that fails to import or raises is reported (the traceback on stderr, a "failed"
part in the file) and the others still run; the exit status is then 1. ``--quick`` never
writes the file: its numbers are a smoke test, not measurements.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
import traceback
from pathlib import Path

from bench.common import BENCHMARKS, heading_of, machine_facts, update_benchmarks, write_benchmarks

ROOT = Path(__file__).resolve().parent.parent

# (module name in bench/, what it measures), in the order BENCHMARKS.md lists them.
SECTIONS: list[tuple[str, str]] = [
    ("training", "trainer overhead, data path, hardware efficiency"),
    ("recipe", "time to accuracy of the default recipe"),
    ("internals", "cost of recording the training internals every N steps"),
    ("predict", "prediction latency of the Predict page"),
    ("explain", "latency of the Explain page's interactions, cost of the per-epoch features map"),
    ("export", "ONNX / TorchScript export time and runtime latency"),
    ("ui", "UI cost of a watched training run and server memory"),
    ("load", "load test of the server"),
    ("classroom", "200 learners (protocol-level clients) and 20 browsers watching 10 live runs"),
    ("store", "metric-write throughput of the SQLite and PostgreSQL run stores"),
    ("abuse", "hostile links and files: time to a clear message, server memory growth"),
]
NAMES = [name for name, _ in SECTIONS]


def split_sections(text: str) -> list[str]:
    """A module's markdown split at its "## " headings (a module may return several parts)."""
    parts = re.split(r"(?m)^(?=## )", text.strip("\n"))
    return [p.strip("\n") + "\n" for p in parts if p.strip()]


def failed_section(name: str, exc: BaseException) -> str:
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    reason = detail[-1] if detail else type(exc).__name__
    return (f"## {name}: failed\n\nThe `bench/{name}.py` section did not finish: `{reason[:500]}`. "
            f"Run `python -m bench --only {name}` to see the traceback.\n")


def run_section(name: str, quick: bool) -> tuple[str, bool]:
    """(markdown, ok) of one section; any exception (import included) becomes a failed part."""
    try:
        module = importlib.import_module(f"bench.{name}")
        text = module.section(quick=quick)
        if not isinstance(text, str) or not text.lstrip().startswith("## "):
            raise ValueError(f"bench.{name}.section() must return markdown starting with a '## ' heading")
        return text, True
    except Exception as exc:  # noqa: BLE001 - a failing section is reported; the others still run
        traceback.print_exc()
        return failed_section(name, exc), False


def parse_only(value: str | None) -> list[str]:
    if not value:
        return list(NAMES)
    wanted = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in NAMES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(NAMES)}")
    return [n for n in NAMES if n in wanted]  # always the suite's order


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run the lab's benchmarks and write "
                                f"{BENCHMARKS.name}.")
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats: a smoke test (never writes)")
    p.add_argument("--only", metavar="A,B", help=f"only these sections ({', '.join(NAMES)})")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {BENCHMARKS.name} alone")
    p.add_argument("--list", action="store_true", help="list the sections and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, what in SECTIONS:
            print(f"{name:10s} {what}")
        return 0
    try:
        names = parse_only(args.only)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    print("\n".join(machine_facts()) + "\n", flush=True)
    parts: list[str] = []
    failed: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"==> {name}", file=sys.stderr, flush=True)
        text, ok = run_section(name, args.quick)
        if not ok:
            failed.append(name)
        print(text, flush=True)
        print(f"<== {name}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
        parts.extend(split_sections(text))
    write = not (args.no_write or args.quick)
    if write:
        if names == NAMES:
            write_benchmarks(parts)
        else:  # replace just these parts, keep the rest of the file (a new part goes after the one before it)
            for before, part in zip([None, *parts], parts, strict=False):
                update_benchmarks(part, after=heading_of(before) if before else None)
        print(f"wrote {BENCHMARKS}", file=sys.stderr)
    if failed:
        print(f"FAILED sections: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
