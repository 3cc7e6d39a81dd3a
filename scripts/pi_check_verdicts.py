"""The verdicts of `make pi-check`: read the `vitedge verify --json` reports the arm64 guest wrote, print a line per
check, exit 1 on any miss.

    python scripts/pi_check_verdicts.py guest-verify-onnx.json guest-verify-tflite.json [--seconds N]

Each artifact passes when its checksums hold, its self-check is present, both verdicts (preprocessing parity, model
parity) passed, and the guest had no torch (the report's torch parity says "not checked"). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def checks(report: dict) -> list[tuple[str, str, bool]]:
    """(what, text, passed) for one artifact's `vitedge verify --json` report."""
    rows = [("checksums", f"{report['checksums'].get('model_files')} model file(s), "
                          f"{report['checksums'].get('selfcheck_files')} self-check file(s)", bool(report["checksums"].get("ok")))]
    check = report.get("selfcheck") or {}
    if not check.get("present"):
        rows.append(("self-check", f"absent: {check.get('hint')}", False))
    for stage in ("preprocessing", "model"):
        if check.get("present"):
            verdict = check.get(stage, {})
            rows.append((f"{stage} parity", verdict.get("summary", "?"), verdict.get("status") == "passed"))
    parity = report.get("parity") or {}
    rows.append(("torch-free", parity.get("reason", "torch was importable")[:100], parity.get("status") == "not checked"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", help="guest-verify-FORMAT.json files")
    parser.add_argument("--seconds", type=int, default=None, help="how long the whole check took")
    args = parser.parse_args(argv)
    failures, lines = 0, []
    for path in map(Path, args.reports):
        report = json.loads(path.read_text(encoding="utf-8"))
        name = path.stem.removeprefix("guest-verify-")
        for what, text, ok in checks(report):
            failures += not ok
            lines.append(f"{'PASS' if ok else 'FAIL'}  {name:<8}{what:<22}{text}")
        failures += not report.get("ok", False) and all(ok for _, _, ok in checks(report))
    print("\n".join(lines))
    took = f"; {args.seconds} s" if args.seconds is not None else ""
    outcome = f"all {len(args.reports)} artifacts check themselves" if not failures else f"{failures} miss(es)"
    print(f"\npi-check {'PASS' if not failures else 'FAIL'}: vitedge verify on Debian bookworm arm64 under qemu, "
          f"no torch installed: {outcome}{took}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
