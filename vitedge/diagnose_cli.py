"""The CLI of diagnosis: ``vitedge diagnose`` and ``vitedge inspect --placement`` (wired in by :mod:`vitedge.cli`).

``diagnose`` needs the torch side (``vitedge[convert]``); ``inspect --placement`` is torch free.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES
from vitedge.errors import UsageError

#: ``inspect --placement --require-delegate``: an op fell back from the preferred device or delegate.
EXIT_FALLBACK = 3
REPORT_SUFFIXES = (".html", ".htm")


def add_diagnose_command(commands) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="find where a conversion loses accuracy: torch fp32 vs the artifact(s) after every encoder block")
    diagnose.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifact folder(s), compared on the same inputs")
    diagnose.add_argument("--against", required=True, metavar="MODEL",
                          help="the model they were converted from: hub id, local HF folder or preset:NAME")
    diagnose.add_argument("--images", metavar="DIR", help="compare on the images in this folder (default: built-in ones)")
    diagnose.add_argument("--samples", type=int, default=DEFAULT_VALIDATION_SAMPLES,
                          help=f"how many inputs (default {DEFAULT_VALIDATION_SAMPLES})")
    diagnose.add_argument("--report", metavar="FILE.html", help="also write an HTML report with the per-layer curves")
    diagnose.add_argument("--json", action="store_true", help="print the numbers as JSON")
    diagnose.add_argument("--allow-pickle", action="store_true", help="accept a pickle checkpoint as the model")


def add_placement_options(inspect: argparse.ArgumentParser) -> None:
    inspect.add_argument("--placement", action="store_true",
                         help="where each op runs and in what precision (onnxruntime providers, TFLite's XNNPACK "
                              "delegate, Core ML's compute plan on macOS)")
    inspect.add_argument("--require-delegate", action="store_true",
                         help=f"with --placement: exit {EXIT_FALLBACK} when any op falls back from the preferred "
                              "device or delegate (for CI on devices)")
    inspect.add_argument("--provider", metavar="NAMES",
                         help="with --placement, ONNX: onnxruntime execution providers, best first, comma-separated "
                              "(default CPUExecutionProvider)")
    inspect.add_argument("--threads", type=int, default=None, help="with --placement: threads for the runtime")


def cmd_diagnose(args: argparse.Namespace) -> int:
    from vitedge.converters.diagnose.engine import diagnose
    from vitedge.converters.diagnose.text import diagnoses_text

    report = Path(args.report) if args.report else None
    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--report {report}: the report is an HTML page", hint="name it .html")
    if args.samples < 1:
        raise UsageError(f"--samples must be at least 1, got {args.samples}")
    if args.images is not None:
        from vitedge.runtime.images import expand_image_paths

        if not Path(args.images).exists() or not expand_image_paths([args.images]):
            raise UsageError(f"--images {args.images}: no such folder, or no images in it",
                             hint="pass a folder of JPEG/PNG images, or leave --images out to use built-in ones")
    if report is not None:
        from vitedge.converters.diagnose.report import check_plotting

        check_plotting()  # before the slow part
    diagnoses = diagnose(args.artifacts, args.against, samples=args.samples, images_dir=args.images,
                         allow_pickle=args.allow_pickle)
    if args.json:
        print(json.dumps([diagnosis.to_dict() for diagnosis in diagnoses], indent=2))
    else:
        print(diagnoses_text(diagnoses))
    if report is not None:
        from vitedge.converters.diagnose.report import write_report

        print(f"wrote {write_report(diagnoses, report, model=args.against)}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_placement(args: argparse.Namespace) -> int:
    from vitedge.runtime.placement import placement_of

    placement = placement_of(args.artifact, device=args.provider, num_threads=args.threads)
    if args.json:
        print(json.dumps(placement.to_dict(), indent=2))
    else:
        print("\n".join(placement.lines()))
    if args.require_delegate and placement.fallbacks:
        print(f"vitedge: error: {len(placement.fallbacks)} op(s) fell back from {placement.preferred} "
              "(--require-delegate)", file=sys.stderr)
        return EXIT_FALLBACK
    return 0


def check_placement_options(args: argparse.Namespace) -> None:
    """The placement options need --placement."""
    for option in ("require_delegate", "provider", "threads"):
        if getattr(args, option) not in (None, False) and not args.placement:
            raise UsageError(f"--{option.replace('_', '-')} goes with --placement")
