"""``python -m core.lessons check``: validate every lesson file and prove every exercise.

    python -m core.lessons check                     # the lab's course; trains the training challenges
    python -m core.lessons check --json              # the report as JSON
    python -m core.lessons check --folder my_course  # a teacher's own lesson files
    python -m core.lessons check --train quick       # train only the cheap challenges (see core.lessons.prove)

Exits 1 when any file or exercise fails (the failures are listed), 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.lessons.course import COURSE_DIR
from core.lessons.prompts import PROMPTS_FILE
from core.lessons.prove import prove_course


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.lessons", description="The lab's lessons.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate every lesson file and prove every exercise")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--folder", type=Path, default=COURSE_DIR, help="a folder of lesson files (*.toml)")
    check.add_argument("--train", choices=["all", "quick", "none"], default="all",
                       help="which training challenges to prove by training (default: all)")
    check.add_argument("--no-prompts", action="store_true", help="skip the lab pages' prediction prompts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    report = prove_course(args.folder, train=args.train, prompts_file=None if args.no_prompts else PROMPTS_FILE)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in report["kinds"].items())
        print(f"{report['lessons']} lessons, {report['exercises']} exercises ({kinds}), "
              f"{report['prompts']} prediction prompts")
        for item in report["skipped"]:
            print(f"skipped  {item['file']} · {item['exercise']}: {item['reason']}")
        for item in report["failures"]:
            print(f"FAILED   {item['file']} · {item['exercise']}: {item['reason']}")
        print("all proven" if not report["failures"] else f"{len(report['failures'])} failure(s)")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
