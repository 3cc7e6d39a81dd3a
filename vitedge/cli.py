"""The vitedge command line: one parser, subcommands that call the public API.

Errors a user can cause print one line (``vitedge: error: …``) and exit non-zero; a traceback
only appears with ``--debug``. Commands that only run models (predict, embed, inspect, formats,
bench, report, camera) never import torch; ``bench`` runs a torch MODEL (as a row or the reference) in a
worker process of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from vitedge._version import __version__
from vitedge.converters.coreml.compat import TARGETS as COREML_TARGETS
from vitedge.converters.export_types import (
    CALIBRATION_METHODS,
    DEFAULT_VALIDATION_SAMPLES,
    EXPORTERS,
    GRAPHS,
    INPUT_LAYOUTS,
    INPUT_TYPES,
    ExportOptions,
)
from vitedge.converters.layer_names import parse_patterns
from vitedge.converters.token_merging_option import parse_token_merging
from vitedge.errors import UsageError, VitedgeError
from vitedge.formats import FORMATS, PRECISIONS
from vitedge.runtime.native_noise import DEBUG_VARIABLE

EXIT_IMAGE_ERRORS = 1
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as our one-line UsageError."""

    intermixed = False  # set on a subcommand whose optional positionals may come after options
    _parsing_intermixed = False

    def error(self, message: str):  # noqa: D102 - argparse API
        raise UsageError(f"{self.prog}: {self._without_optional_positionals(message)}", hint=f"see {self.prog} --help")

    def _without_optional_positionals(self, message: str) -> str:
        # Intermixed parsing calls every positional required (`predict` alone: "artifact, images"),
        # although images may be left out for --watch.
        required = "the following arguments are required: "
        if not message.startswith(required):
            return message
        optional = {a.dest for a in self._actions if not a.option_strings and a.nargs in ("*", "?")}
        return required + ", ".join(name for name in message[len(required):].split(", ") if name not in optional)

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        # An nargs="*" positional is otherwise taken (empty) at its first chance: `predict ART --top-k 3 a.jpg`
        # would leave a.jpg unrecognized. (Python < 3.13's intermixed parsing calls back in here.)
        if not self.intermixed or self._parsing_intermixed:
            return super().parse_known_args(args, namespace)
        self._parsing_intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing_intermixed = False


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    from vitedge.runtime.classifier import DEFAULT_BATCH_SIZE
    from vitedge.runtime.images import DEFAULT_MAX_PIXELS

    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per inference (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--threads", type=int, default=None, help="threads per inference (default: $VITEDGE_THREADS, else the backend's: all cores)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse larger images, a decompression-bomb guard (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--no-verify", action="store_true", help="skip the model files' sha256 check on open")
    _add_device_option(parser)


def _devices_offered() -> str:
    return "; ".join(f"{fmt.name}: {', '.join(fmt.devices)}" for fmt in FORMATS.values() if fmt.devices)


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", metavar="NAME", help=f"where the model runs, for formats that offer a choice "
                        f"({_devices_offered()}; default: the first)")


def _described_choices(descriptions: dict[str, str], default: str, joiner: str) -> str:
    """``optimized (fused ops, default) or plain (…)``: each choice, what it is, and which is the default."""
    parts = []
    for name, description in descriptions.items():
        notes = ", ".join(note for note in (description, "default" if name == default else "") if note)
        parts.append(f"{name} ({notes})" if notes else name)
    return joiner.join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vitedge", description="Vision Transformer classifiers on edge devices.")
    parser.add_argument("--version", action="version", version=f"vitedge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (accepted anywhere on the line)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_parser in (_add_convert_parser, _add_predict_parser, _add_embed_parser, _add_inspect_parser,
                       _add_verify_parser, _add_formats_parser, _add_quickstart_parser, _add_bench_parser,
                       _add_report_parser, _add_camera_parser):
        add_parser(commands)

    from vitedge.converters.training.cli import add_training_commands  # finetune, distill (torch-free import)

    add_training_commands(commands)
    from vitedge.diagnose_cli import add_diagnose_command  # diagnose (torch imported when it runs)

    add_diagnose_command(commands)
    from vitedge.search.cli import add_search_commands  # index build, search (faiss imported when they run)

    add_search_commands(commands)
    return parser


def _add_convert_parser(commands) -> None:
    defaults = ExportOptions()
    convert = commands.add_parser("convert", help="convert a ViT classifier to an edge format, validated against torch")
    convert.add_argument("model", help="hub id (google/vit-base-patch16-224), local HF folder, or preset:NAME")
    convert.add_argument("--to", required=True, metavar="FORMAT", help=f"target format: {', '.join(FORMATS)}")
    convert.add_argument("--out", required=True, help="artifact folder to create")
    convert.add_argument("--precision", default=defaults.precision, metavar="P",
                         help=f"one of: {', '.join(PRECISIONS)} (default {defaults.precision})")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing artifact at --out")
    convert.add_argument("--revision", help="hub revision: branch, tag or commit")
    convert.add_argument("--allow-pickle", action="store_true",
                         help="accept a pytorch_model.bin pickle checkpoint (it can run code: only for sources you trust)")
    convert.add_argument("--validation-samples", type=int, default=DEFAULT_VALIDATION_SAMPLES,
                         help=f"held-out inputs to validate on (default {DEFAULT_VALIDATION_SAMPLES})")
    convert.add_argument("--validation-images", help="validate on the images in this folder instead of built-in ones")
    convert.add_argument("--accept-failed-validation", action="store_true",
                         help="write the artifact even when it misses the precision's tolerance against torch fp32: "
                              "its manifest records the failed validation (with a warning)")
    _add_export_options(convert, defaults)
    convert.add_argument("--json", action="store_true", help="print the manifest as JSON")


def _add_export_options(convert: argparse.ArgumentParser, defaults: ExportOptions) -> None:
    """The ExportOptions flags of ``convert``; their defaults are the dataclass's."""
    convert.add_argument("--opset", type=int, default=defaults.opset, help=f"ONNX opset (default {defaults.opset})")
    convert.add_argument("--exporter", default=defaults.exporter, choices=EXPORTERS,
                         help=f"ONNX exporter (default {defaults.exporter}: measured fastest, see benchmarks/results)")
    graphs = {"optimized": "fused onnxruntime ops", "plain": "standard ONNX ops only"}
    convert.add_argument("--graph", default=defaults.graph, choices=GRAPHS,
                         help=f"ONNX graph: {_described_choices(graphs, defaults.graph, ' or ')}")
    convert.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                         help="int8: keep the most sensitive layers in float until top-1 agreement with fp32 "
                              "drops by at most this many points; with --token-merging auto, the budget that chooses R")
    convert.add_argument("--token-merging", metavar="R|R1,R2,…|auto",
                         help="ViT/DeiT: merge R similar tokens in every block (ToMe; fewer tokens, faster), or one R "
                              "per block; auto: the largest R whose top-1 agreement with the unmerged model drops by at "
                              "most --max-accuracy-drop points (then spent on R, not on int8); default 0: off")
    convert.add_argument("--keep-float", action="append", metavar="LAYERS",
                         help="leave these layers unquantized: names as vitedge diagnose prints them "
                              "(vit.layers.3.mlp.fc1), globs, or a whole block (vit.layers.3); comma-separated or repeated")
    convert.add_argument("--calibration", metavar="DIR|builtin",
                         help=f"int8-static: calibration images, a folder or the built-in set (default {defaults.calibration})")
    convert.add_argument("--calibration-samples", type=int, metavar="N",
                         help=f"int8-static: how many calibration images (default {defaults.calibration_samples})")
    convert.add_argument("--calibration-method", choices=CALIBRATION_METHODS,
                         help="int8-static: how activation ranges are chosen, where the format lets you pick")
    layouts = {"NCHW": "", "NHWC": "mobile pipelines"}
    convert.add_argument("--input-layout", choices=INPUT_LAYOUTS,
                         help=f"model input layout: {_described_choices(layouts, defaults.input_layout, ' or ')}")
    input_types = {"float": "normalized tensor", "uint8": "raw pixels",
                   "image": "Core ML image input for Vision; normalization in the model"}
    convert.add_argument("--input-type", default=defaults.input_type, choices=INPUT_TYPES,
                         help=f"model input: {_described_choices(input_types, defaults.input_type, ', ')}")
    convert.add_argument("--target", metavar="T",
                         help=f"deployment target (Core ML: {', '.join(COREML_TARGETS)}; default: the oldest the precision allows)")


def _add_predict_parser(commands) -> None:
    predict = commands.add_parser("predict", help="classify images with an artifact")
    predict.intermixed = True
    predict.add_argument("artifact")
    predict.add_argument("images", nargs="*", help="image files and/or folders (searched recursively)")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--json", action="store_true",
                         help="print one JSON list, one object per image (with --watch: one JSON object per line)")
    predict.add_argument("--watch", metavar="DIR", help="classify the images that arrive in DIR until Ctrl-C")
    predict.add_argument("--existing", action="store_true", help="with --watch: first classify the images already in DIR")
    predict.add_argument("--recursive", action="store_true", help="with --watch: watch DIR's subfolders too")
    predict.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                         help="with --watch: seconds between looks, and how long a new file must stay unchanged (default 1)")
    _add_runtime_options(predict)
    _scale_cli().add_job_options(predict, task="predict")


def _add_embed_parser(commands) -> None:
    embed = commands.add_parser("embed", help="write L2-normalized image embeddings: a .npy file, or Parquet shards in a folder")
    embed.add_argument("artifact")
    embed.add_argument("images", nargs="+",
                       help="image files and/or folders (searched recursively); with --out DIR also globs, list files "
                            "(.txt, one path or URI per line) and Parquet files with a path column")
    embed.add_argument("--out", required=True,
                       help="X.npy: one file (the image order goes beside it as X.json); DIR: Parquet shards (a bulk job)")
    embed.add_argument("--no-normalize", action="store_true", help="keep raw embeddings (no L2 normalization)")
    _add_runtime_options(embed)
    _scale_cli().add_job_options(embed, task="embed")


def _add_inspect_parser(commands) -> None:
    from vitedge.diagnose_cli import add_placement_options

    inspect = commands.add_parser("inspect", help="show an artifact's manifest, or where its ops run (--placement)")
    inspect.add_argument("artifact")
    inspect.add_argument("--json", action="store_true", help="print the raw manifest (with --placement: every op)")
    add_placement_options(inspect)


def _add_verify_parser(commands) -> None:
    verify = commands.add_parser("verify", help="re-check an artifact's checksums, run its self-check (preprocessing "
                                 "and model parity on this machine) and, when possible, its parity with the source model")
    verify.add_argument("artifact")
    verify.add_argument("--json", action="store_true", help="print one JSON object (for fleets): checksums, "
                        "selfcheck.preprocessing, selfcheck.model, parity, ok")
    verify.add_argument("--threads", type=int, default=None, help="threads for the backend running the self-check")
    verify.add_argument("--against", metavar="MODEL", help="the source model (default: the one the manifest names)")
    verify.add_argument("--samples", type=int, default=DEFAULT_VALIDATION_SAMPLES,
                        help=f"inputs for the parity check (default {DEFAULT_VALIDATION_SAMPLES})")
    verify.add_argument("--allow-pickle", action="store_true", help="accept a pickle checkpoint as the source")
    _add_device_option(verify)


def _add_formats_parser(commands) -> None:
    formats = commands.add_parser("formats", help="list formats and precisions")
    formats.add_argument("--json", action="store_true")
    formats.add_argument("--markdown", action="store_true", help="the README's table (without this machine's status)")
    formats.add_argument("--families", action="store_true", help="the model family x format table")


def _add_quickstart_parser(commands) -> None:
    quickstart = commands.add_parser("quickstart", help="train a small ViT on built-in data, convert it, predict")
    quickstart.add_argument("--out", default="vitedge-quickstart", help="working folder (default ./vitedge-quickstart)")
    quickstart.add_argument("--seconds", type=float, default=None, help="cap the training time")
    quickstart.add_argument("--small", action="store_true", help="a much smaller run (seconds; for tests)")


def _add_bench_parser(commands) -> None:
    from vitedge.benchmarks.bench_data import DEFAULT_SAMPLES
    from vitedge.benchmarks.results import BenchSettings

    defaults = BenchSettings()
    batch_sizes = ",".join(str(size) for size in defaults.batch_sizes)
    bench = commands.add_parser("bench", help="measure artifacts: latency, load time, memory, size, accuracy")
    bench.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                       help="artifact folders (each runs in its own fresh process); torch:MODEL adds PyTorch eager fp32")
    bench.add_argument("--reference", metavar="ARTIFACT|MODEL",
                       help="compare each artifact's logits with this artifact's, or this model's in torch "
                            "(hub id, HF folder, preset:NAME; needs vitedge[convert])")
    bench.add_argument("--data", default="builtin", metavar="DIR|builtin|none",
                       help="accuracy images: an ImageFolder (one subfolder per class: top-1/top-5), any image folder "
                            "(agreement only), the built-in shapes test split (default), or none")
    bench.add_argument("--samples", type=int, help=f"images for accuracy (default: {DEFAULT_SAMPLES} built-in, or all of DIR)")
    bench.add_argument("--batch-sizes", default=batch_sizes, metavar="B,B", help=f"batch sizes to time (default {batch_sizes})")
    bench.add_argument("--threads", type=int, help="threads per inference, pinned (default: the CPUs this process may use)")
    bench.add_argument("--warmup", type=int, default=defaults.warmup,
                       help=f"untimed calls per batch size and round (default {defaults.warmup})")
    bench.add_argument("--runs", type=int, default=defaults.runs, help=f"timed calls per batch size (default {defaults.runs})")
    bench.add_argument("--rounds", type=int, default=defaults.rounds,
                       help="fresh processes per artifact, interleaved across artifacts; runs are split over them "
                            f"(default {defaults.rounds})")
    bench.add_argument("--timeout", type=float, default=defaults.timeout_s,
                       help=f"seconds one artifact may take (default {defaults.timeout_s:g})")
    bench.add_argument("--device", help="this machine's name in merged reports (default: its host name)")
    bench.add_argument("--run-on", metavar="NAME", help=f"where artifacts whose format offers a choice run "
                       f"({_devices_offered()}; "
                       "default: the first); the others run where their backend runs")
    bench.add_argument("--json", metavar="FILE", help="write the results here (merge files with vitedge report)")
    bench.add_argument("--report", metavar="FILE", help="write a report: .html (with plots) or .md")
    bench.add_argument("--quiet", action="store_true", help="no progress display")


def _add_report_parser(commands) -> None:
    report = commands.add_parser("report", help="merge benchmark results (e.g. from several devices) into one report")
    report.add_argument("results", nargs="+", metavar="RESULTS.json", help="files written by vitedge bench --json")
    report.add_argument("-o", "--out", required=True, metavar="FILE", help="the report: .html (with plots), .md or .json")


def _add_camera_parser(commands) -> None:
    camera = commands.add_parser("camera", help="classify Raspberry Pi camera frames (picamera2) until Ctrl-C")
    camera.add_argument("artifact")
    camera.add_argument("--top-k", type=int, default=3)
    camera.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N frames (default 0: until Ctrl-C)")
    camera.add_argument("--size", default="640x480", metavar="WxH", help="frame size to capture (default 640x480)")
    camera.add_argument("--camera", type=int, default=0, metavar="N", help="which camera (default 0)")
    camera.add_argument("--json", action="store_true", help="one JSON object per frame and line (JSON Lines)")
    _add_runtime_options(camera)


# -- commands ----------------------------------------------------------------------------------


def _threads(args: argparse.Namespace) -> int | None:
    """--threads, else $VITEDGE_THREADS, else None (the backend's default: all usable CPUs)."""
    given, source = args.threads, "--threads"
    if given is None and os.environ.get("VITEDGE_THREADS", "").strip():
        text, source = os.environ["VITEDGE_THREADS"].strip(), "VITEDGE_THREADS"
        given = int(text) if text.isdigit() else -1
    if given is not None and given < 1:
        raise UsageError(f"{source} must be a whole number of threads, 1 or more", hint="e.g. --threads 4 on a Raspberry Pi 4 or 5")
    return given


def _open_classifier(args: argparse.Namespace):
    from vitedge.runtime import Classifier

    return Classifier.open(
        args.artifact, num_threads=_threads(args), batch_size=args.batch_size,
        max_pixels=args.max_pixels, verify=not args.no_verify, device=args.device,
    )


def _image_paths(inputs: Sequence[str]) -> list[str]:
    from vitedge.runtime.images import expand_image_paths

    paths = expand_image_paths(inputs)
    if not paths:
        raise UsageError(f"no images found in {', '.join(inputs)}", hint="pass image files or folders that hold images")
    return paths


def cmd_convert(args: argparse.Namespace) -> int:
    from vitedge.converters import convert
    from vitedge.render import human_bytes, token_merging_text, validation_text

    given = {name: getattr(args, name) for name in ("calibration", "calibration_samples", "calibration_method", "input_layout")}
    options = ExportOptions(opset=args.opset, exporter=args.exporter, graph=args.graph,
                            max_accuracy_drop=args.max_accuracy_drop, input_type=args.input_type, target=args.target,
                            keep_float=parse_patterns(args.keep_float or ()),
                            token_merging=parse_token_merging(args.token_merging or "0"),
                            **{name: value for name, value in given.items() if value is not None})
    result = convert(
        args.model, to=args.to, out=args.out, precision=args.precision, overwrite=args.overwrite,
        revision=args.revision, allow_pickle=args.allow_pickle, validation_samples=args.validation_samples,
        validation_images=args.validation_images, options=options,
        accept_failed_validation=args.accept_failed_validation,
        on_stage=lambda line: print(f"{line} …", file=sys.stderr, flush=True),
    )
    manifest = result.manifest
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2))
        return 0
    size = sum(entry.bytes for entry in manifest.files)
    print(f"wrote {result.path} ({manifest.format} {manifest.precision}, {human_bytes(size)})")
    print(f"validation: {validation_text(manifest.validation)}")
    if manifest.token_merging is not None:
        print(f"token merging: {token_merging_text(manifest.token_merging)}")
    if manifest.is_random_init:
        print("note: random-init weights (a preset): good for latency work, its predictions are meaningless")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vitedge.render import classification_lines

    if _scale_cli().is_job(args):  # --out DIR / --engine: Parquet shards
        return _scale_cli().cmd_job(args, "predict", threads=_threads(args))
    if args.watch is not None:
        return _predict_watch(args)
    for option in ("existing", "recursive"):
        if getattr(args, option):
            raise UsageError(f"--{option} goes with --watch DIR")
    if not args.images:
        raise UsageError("predict needs images or folders, or --watch DIR", hint="see vitedge predict --help")
    classifier = _open_classifier(args)
    results = classifier.predict(_image_paths(args.images), top_k=args.top_k)
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        if classifier.is_random_init:
            print("warning: this artifact has random-init weights: its predictions are meaningless", file=sys.stderr)
        print("\n".join(classification_lines(results)))
    return EXIT_IMAGE_ERRORS if any(not result.ok for result in results) else 0


def _predict_watch(args: argparse.Namespace) -> int:
    """``predict --watch DIR``: classify arriving images until Ctrl-C (or SIGTERM); JSON Lines with --json."""
    import signal
    import threading
    from functools import partial

    from vitedge.render import classification_lines
    from vitedge.runtime.watch import FolderWatcher, WatchSummary, watch

    if args.images:
        raise UsageError("predict --watch DIR takes no image arguments", hint="use --existing to classify the images already in DIR")
    if args.interval <= 0:
        raise UsageError(f"--interval must be more than 0 seconds, got {args.interval}")
    watcher = FolderWatcher(args.watch, recursive=args.recursive, settle=args.interval, include_existing=args.existing)
    classifier = _open_classifier(args)
    if classifier.is_random_init and not args.json:
        print("warning: this artifact has random-init weights: its predictions are meaningless", file=sys.stderr)
    print(f"vitedge: watching {args.watch} every {args.interval:g} s (Ctrl-C to stop)", file=sys.stderr, flush=True)
    summary = WatchSummary()

    def stop(signum, frame):
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    # a service manager's stop (SIGTERM) ends the watch like Ctrl-C
    previous = signal.signal(signal.SIGTERM, stop) if in_main_thread else None
    try:
        for result in watch(partial(classifier.predict, top_k=args.top_k), watcher, interval=args.interval,
                            batch_size=args.batch_size, summary=summary):
            text = json.dumps(result.to_dict()) if args.json else "\n".join(classification_lines([result]))
            print(text, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(f"vitedge: {summary.text(args.watch)}", file=sys.stderr, flush=True)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    if _scale_cli().is_job(args):  # --out DIR / --engine: Parquet shards
        return _scale_cli().cmd_job(args, "embed", threads=_threads(args))
    out = Path(args.out)
    if args.top_k:
        raise UsageError("--top-k goes with --out DIR (Parquet shards); a .npy file holds embeddings only")
    classifier = _open_classifier(args)
    embeddings = classifier.embed(_image_paths(args.images), normalize=not args.no_normalize)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, embeddings.vectors)
    index = {
        "artifact": str(args.artifact),
        "artifact_sha256": _scale_cli().artifact_sha256(args.artifact),  # vitedge index build checks it
        "normalized": not args.no_normalize,
        "shape": list(embeddings.vectors.shape),
        "images": list(embeddings.images),
        "errors": [{"image": image, "error": error} for image, error in embeddings.errors],
    }
    if classifier.is_random_init:
        index["warning"] = "random-init weights: these embeddings are meaningless"
    out.with_suffix(".json").write_text(json.dumps(index, indent=2) + "\n")
    rows, dims = embeddings.vectors.shape
    print(f"wrote {out} ({rows} x {dims}, float32) and {out.with_suffix('.json')} (row order)")
    for image, error in embeddings.errors:
        print(f"{image}: ERROR {error.removeprefix(image + ': ')}", file=sys.stderr)
    return EXIT_IMAGE_ERRORS if embeddings.errors else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from vitedge.diagnose_cli import check_placement_options, cmd_placement
    from vitedge.render import manifest_text
    from vitedge.runtime.manifest import read_manifest

    check_placement_options(args)
    if args.placement:
        return cmd_placement(args)
    manifest = read_manifest(args.artifact)
    print(json.dumps(manifest.to_dict(), indent=2) if args.json else manifest_text(manifest, args.artifact))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from vitedge.verify import verify_artifact

    try:
        outcome = verify_artifact(args.artifact, against=args.against, samples=args.samples,
                                  allow_pickle=args.allow_pickle, num_threads=args.threads,
                                  device=args.device)
    except VitedgeError as error:
        if not args.json:
            raise
        print(json.dumps({"artifact": args.artifact, "ok": False, "error": str(error)}, indent=2))  # a fleet reads every device
        return 1
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        for line in outcome.lines:
            print(line)
    return 0 if outcome.ok else 1


def cmd_formats(args: argparse.Namespace) -> int:
    from vitedge.render import families_rows, formats_json, formats_rows, markdown_table, table

    if args.families:
        rows, header = families_rows()
        print(markdown_table(rows, header) if args.markdown else table(rows, header))
    elif args.json:
        print(json.dumps(formats_json(), indent=2))
    else:
        rows, header = formats_rows(installed=not args.markdown)
        print(markdown_table(rows, header) if args.markdown else table(rows, header))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from vitedge.quickstart import run_quickstart

    run_quickstart(Path(args.out), max_seconds=args.seconds, small=args.small, echo=print)
    return 0


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes {text!r}: expected positive integers separated by commas, e.g. 1,8")
    return sizes


def cmd_bench(args: argparse.Namespace) -> int:
    import shlex
    import tempfile

    from vitedge.benchmarks.bench import BenchTarget, default_threads, run_bench
    from vitedge.benchmarks.bench_data import resolve_data
    from vitedge.benchmarks.progress import Progress
    from vitedge.benchmarks.report import check_report_path, write_report
    from vitedge.benchmarks.report_md import text_report
    from vitedge.benchmarks.results import BenchSettings, save_runs

    report = check_report_path(args.report) if args.report else None
    settings = BenchSettings(
        threads=args.threads or default_threads(), batch_sizes=_batch_sizes(args.batch_sizes), warmup=args.warmup,
        runs=args.runs, rounds=args.rounds, timeout_s=args.timeout, run_on=args.run_on,
    )
    with tempfile.TemporaryDirectory(prefix="vitedge-bench-data-") as workdir:
        data = resolve_data(args.data, workdir, samples=args.samples)
        run = run_bench(
            [BenchTarget(spec) for spec in args.artifacts], settings=settings, data=data, reference=args.reference,
            device=args.device, progress=Progress(0, enabled=not args.quiet),
            command=shlex.join(["vitedge", *sys.argv[1:]]) if sys.argv[0].endswith("vitedge") else "",
        )
    print(text_report([run]))
    for path in (save_runs([run], args.json) if args.json else None, write_report([run], report) if report else None):
        if path is not None:
            print(f"wrote {path}")
    return 1 if any(row.status == "failed" for row in run.results) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from vitedge.benchmarks.report import check_report_path, write_report
    from vitedge.benchmarks.results import merge_runs

    out = check_report_path(args.out)
    runs = merge_runs(args.results)
    write_report(runs, out)
    print(f"wrote {out} ({len(runs)} run(s): {', '.join(run.device for run in runs)})")
    return 0


def cmd_camera(args: argparse.Namespace) -> int:
    """Classify camera frames one by one, printing top-k and latency; Ctrl-C prints a summary and exits 0."""
    from statistics import median

    from vitedge.runtime import camera

    if args.frames < 0:
        raise UsageError(f"--frames must be 0 (no limit) or more, got {args.frames}")
    size = camera.parse_size(args.size)
    classifier = _open_classifier(args)
    if classifier.is_random_init:
        print("warning: this artifact has random-init weights: its predictions are meaningless", file=sys.stderr)
    picam = camera.open_picamera2(size, camera=args.camera)
    latencies: list[float] = []
    try:
        print(f"vitedge: classifying camera {args.camera} frames ({size[0]}x{size[1]}; Ctrl-C to stop)", file=sys.stderr, flush=True)
        frames = camera.picamera2_frames(picam)
        for result in camera.classify_frames(classifier, frames, top_k=args.top_k, limit=args.frames or None):
            latencies.append(result.latency_ms)
            print(json.dumps(result.to_dict()) if args.json else camera.frame_line(result), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        picam.close()
    if latencies:
        print(f"vitedge: {len(latencies)} frames, median {median(latencies):.1f} ms per frame", file=sys.stderr)
    return 0


COMMANDS = {
    "convert": cmd_convert,
    "predict": cmd_predict,
    "embed": cmd_embed,
    "inspect": cmd_inspect,
    "verify": cmd_verify,
    "formats": cmd_formats,
    "quickstart": cmd_quickstart,
    "bench": cmd_bench,
    "report": cmd_report,
    "camera": cmd_camera,
    "index": lambda args: _search_cli().cmd_index(args),
    "search": lambda args: _search_cli().cmd_search(args),
    "finetune": lambda args: _training_cli().cmd_finetune(args),
    "distill": lambda args: _training_cli().cmd_distill(args),
    "diagnose": lambda args: _diagnose_cli().cmd_diagnose(args),
}


def _scale_cli():
    from vitedge.scale import cli as scale_cli

    return scale_cli


def _search_cli():
    from vitedge.search import cli as search_cli

    return search_cli


def _diagnose_cli():
    from vitedge import diagnose_cli

    return diagnose_cli


def _training_cli():
    from vitedge.converters.training import cli as training_cli

    return training_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]  # accepted anywhere on the line
    if not debug:
        warnings.formatwarning = lambda message, *args, **kwargs: f"vitedge: warning: {message}\n"
    previous_debug = os.environ.get(DEBUG_VARIABLE)
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"  # native libraries' log lines show too
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except VitedgeError as error:
        if debug:
            traceback.print_exc()
        print(f"vitedge: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("vitedge: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: say so in one line unless --debug
        if debug:
            raise
        message = " ".join(str(error).split())[:300]
        print(f"vitedge: internal error: {type(error).__name__}: {message} (rerun with --debug and report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        _restore_env(DEBUG_VARIABLE, previous_debug)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


if __name__ == "__main__":
    sys.exit(main())
