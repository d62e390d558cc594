"""``python -m core.doctor RUN_ID``: the training doctor's diagnoses of a stored run (core.runs.doctor).

Usage::

    python -m core.doctor RUN_ID               # each diagnosis: severity, layer, evidence, fix
    python -m core.doctor RUN_ID --json        # {"run": ..., "diagnoses": [{"code", "severity", "layer",
                                               #   "evidence", "fix", "change"}]}
    python -m core.doctor RUN_ID --lang zh     # the texts in Simplified Chinese

Exit status: 0 with no serious diagnosis, 1 with one, 2 for an unknown run or an unreachable store.
"""
from __future__ import annotations

import argparse
import json
import sys

from core.i18n import LANGUAGES, t
from core.runs.doctor import report, run_diagnoses
from core.runs.store import StoreError, check_run_id, open_store


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.doctor",
                                description="Diagnose a stored training run: what went wrong, the evidence, a fix.")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (the Runs page and python -m core.train show it)")
    p.add_argument("--json", action="store_true", help="print the diagnoses as JSON")
    p.add_argument("--home", help="lab home holding the run store (default: PYTORCH_LAB_HOME)")
    p.add_argument("--lang", choices=list(LANGUAGES), default="en", help="language of the texts (default: en)")
    args = p.parse_args(argv)
    try:
        run_id = check_run_id(args.run_id)
        store = open_store(home=args.home)
        run, diagnoses = run_diagnoses(store, run_id)
    except (ValueError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError:
        print(f"error: no run {args.run_id} in {store.location}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report(run, diagnoses, args.lang), ensure_ascii=False, indent=2))
    else:
        print(t("doctor.cli.header", args.lang, run=run["name"] or run["id"], id=run["id"], status=run["status"],
                n=len(diagnoses)))
        for d in diagnoses:
            where = f" [{d.layer}]" if d.layer else ""
            print(f"\n{d.severity.upper()} {d.code}{where}: {d.title(args.lang)}")
            print(f"  {t('doctor.evidence', args.lang)}: {d.evidence(args.lang)}")
            print(f"  {t('doctor.fix', args.lang)}: {d.fix(args.lang)}")
        if not diagnoses:
            print(t("doctor.none", args.lang))
    return 1 if any(d.severity == "serious" for d in diagnoses) else 0


if __name__ == "__main__":
    sys.exit(main())
