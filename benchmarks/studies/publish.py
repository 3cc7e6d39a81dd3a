"""The published results for this machine: ``python -m vitedge.benchmarks.studies.publish`` (``make bench``).

For each model (the ViT-B/16-224 preset; ViT-L/16-384 with ``--large``; the quickstart's small trained
model for accuracy) it converts the model to every (format, precision) in the registry at the time it
runs, adds the peers (PyTorch eager fp32; onnxruntime ``quantize_dynamic`` with its defaults on the
plain fp32 export; litert-torch's default conversion; OpenVINO + NNCF's ``quantize`` with their defaults;
ExecuTorch's documented XNNPACK recipe at fp32 and int8-dynamic), benchmarks them all with the harness (fresh
process per artifact, rounds interleaved across artifacts, reference = PyTorch eager fp32), and
writes ``README.md``, ``results.json`` and ``report.html`` into ``--out``. ViT-B/16-224 is also run at
batch 1, 8 and 32 on 1 and 2 threads for the throughput table (:mod:`.throughput`), and the README ends
with each artifact's share of this CPU's measured GEMM ceiling (:mod:`.ceiling`, when ``gemm_ceiling``
has measured it).

A conversion that fails is a failed row with its error; a format whose backend cannot run on this
OS is converted all the same (its size counts) and shown as skipped. Converted artifacts are kept
in ``--work`` and reused by the next run (``--fresh`` converts again). Sections of an earlier
results.json that this run does not measure (ViT-L, say) are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.bench import BenchTarget, default_threads, run_bench
from vitedge.benchmarks.bench_data import builtin_data, folder_data
from vitedge.benchmarks.progress import Progress
from vitedge.benchmarks.report import write_report
from vitedge.benchmarks.report_md import markdown_report
from vitedge.benchmarks.results import BenchResult, BenchRun, BenchSettings, load_runs, save_runs
from vitedge.errors import VitedgeError
from vitedge.formats import FORMATS

RESULTS = Path(__file__).resolve().parents[1] / "results"
BASE, LARGE = "vit-base-patch16-224", "vit-large-patch16-384"
TITLES = {BASE: "ViT-B/16-224 (random weights)", LARGE: "ViT-L/16-384 (random weights)"}
LARGE_INT8_TITLE = f"{TITLES[LARGE]}: int8 head-to-head"
#: The int8 head-to-head's peers (``--large-int8``): every int8 peer, no float one.
INT8_PEERS = frozenset({"ORT quantize_dynamic (defaults)", "OpenVINO + NNCF defaults",
                        "ExecuTorch-int8-dynamic (docs recipe)"})
SMALL_TITLE = "quickstart ViT (trained on shapes)"
TORCH_NOTE = "the transformers model in PyTorch eager fp32 (sdpa attention), no conversion; the reference"


@dataclass(frozen=True)
class Plan:
    """One section of the results: a model, its data, and how hard to time it."""

    title: str
    model: str
    settings: BenchSettings
    samples: int
    data_folder: Path | None = None  # None: the built-in shapes test split
    only: frozenset[str] | None = None  # artifact folder names to time; None: every one
    peers: frozenset[str] | None = None  # peer names to add besides PyTorch eager; None: every one


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _failed(name: str, fmt: str, precision: str, model: str, error: str, kind: str = "artifact") -> BenchResult:
    return BenchResult(name=name, target="-", status="failed", error=error, kind=kind, model=model, format=fmt,
                       precision=precision)


def _reusable(folder: Path) -> bool:
    from vitedge.runtime.manifest import read_manifest

    try:
        read_manifest(folder)
    except VitedgeError:
        return False
    return True


def _build(folder: Path, fresh: bool, make) -> None:
    """``make()`` writes ``folder`` unless a readable artifact is already there (and not ``fresh``)."""
    if fresh or not _reusable(folder):
        make()


def _slot(folder: Path, fresh: bool, make, target: BenchTarget, failed) -> BenchTarget | BenchResult:
    """``target`` once ``folder`` is built, or ``failed(message)``: a failure is a row, not a stop."""
    started = time.perf_counter()
    try:
        _build(folder, fresh, make)
    except Exception as error:  # any failure is a row
        message = " ".join(str(error).split())[:400]
        _echo(f"    failed: {message}")
        return failed(message)
    _echo(f"    ready ({time.perf_counter() - started:.0f} s)")
    return target


def plan_slots(plan: Plan, source, work: Path, *, fresh: bool) -> list[BenchTarget | BenchResult]:
    """Every artifact and peer of ``plan`` as a target to benchmark, or a failed row if it could not be made."""
    from vitedge.converters import convert

    slots: list[BenchTarget | BenchResult] = []
    images = str(plan.data_folder) if plan.data_folder else None
    for fmt in FORMATS.values():
        for precision in fmt.precision_names:
            folder = work / f"{fmt.name}-{precision}"
            if plan.only is not None and folder.name not in plan.only:
                continue
            _echo(f"  {plan.title}: {folder.name}")
            slots.append(_slot(
                folder, fresh,
                lambda fmt=fmt, precision=precision, folder=folder: convert(
                    source, to=fmt.name, precision=precision, out=folder, overwrite=True, validation_samples=16,
                    validation_images=images),
                BenchTarget(str(folder)),
                lambda message, fmt=fmt, precision=precision, folder=folder: _failed(
                    folder.name, fmt.name, precision, plan.model, f"conversion failed: {message}"),
            ))
    slots.append(BenchTarget(f"torch:{plan.model}", name="PyTorch eager fp32", kind="peer", note=TORCH_NOTE))
    return slots + peer_slots(plan, source, work, fresh=fresh)


def _template(work: Path, fmt: str) -> Path:
    """An artifact of ``fmt`` in ``work`` whose manifest a peer copies (preprocessing, labels): fp32 if it is there."""
    built = sorted(folder for folder in work.glob(f"{fmt}-*") if _reusable(folder))
    return next((folder for folder in built if folder.name == f"{fmt}-fp32"), built[0] if built else work / f"{fmt}-fp32")


def peer_slots(plan: Plan, source, work: Path, *, fresh: bool) -> list[BenchTarget | BenchResult]:
    """The peers ``plan`` asks for (all by default), each a target or a failed row."""
    from vitedge.benchmarks.studies.peers import (
        EXECUTORCH_PEER,
        EXECUTORCH_PEER_RECIPES,
        LITERT_PEER,
        OPENVINO_PEER,
        ORT_PEER,
        executorch_docs_peer,
        litert_default_peer,
        openvino_nncf_default_peer,
        ort_quantize_dynamic_peer,
        plain_onnx_export,
    )

    plain = work / "peers" / "onnx-plain-fp32"

    def ort_peer(out: Path) -> Path:
        _build(plain, fresh, lambda: plain_onnx_export(source, plain))
        return ort_quantize_dynamic_peer(plain, out)

    peers = (
        ("ORT quantize_dynamic (defaults)", "onnx", "int8-dynamic", ORT_PEER, ort_peer),
        ("litert-torch default conversion", "tflite", "fp32", LITERT_PEER,
         lambda out: litert_default_peer(source, _template(work, "onnx"), out)),
        ("OpenVINO + NNCF defaults", "openvino", "int8-static", OPENVINO_PEER,
         lambda out: openvino_nncf_default_peer(source, _template(work, "openvino"), out)),
        *((f"ExecuTorch-{precision} (docs recipe)", "executorch", precision, EXECUTORCH_PEER,
           lambda out, precision=precision: executorch_docs_peer(source, precision, out))
          for precision in EXECUTORCH_PEER_RECIPES),
    )
    slots: list[BenchTarget | BenchResult] = []
    for name, fmt_name, precision, note, make in peers:
        if plan.peers is not None and name not in plan.peers:
            continue
        folder = work / "peers" / name.split()[0].lower()
        _echo(f"  {plan.title}: peer {name}")
        slots.append(_slot(
            folder, fresh, lambda make=make, folder=folder: make(folder),
            BenchTarget(str(folder), name=name, kind="peer", note=note),
            lambda message, name=name, fmt_name=fmt_name, precision=precision: _failed(
                name, fmt_name, precision, plan.model, f"peer not built: {message}", kind="peer"),
        ))
    return slots


def measure(plan: Plan, work: Path, *, fresh: bool, device: str, command: str) -> BenchRun:
    """Convert, build peers and benchmark one plan; failed conversions stay in place as failed rows."""
    from vitedge.converters import load_source

    _echo(f"{plan.title}: loading {plan.model}")
    source = load_source(plan.model)
    slots = plan_slots(plan, source, work, fresh=fresh)
    del source
    data = folder_data(plan.data_folder, samples=plan.samples) if plan.data_folder else builtin_data(work, samples=plan.samples)
    targets = [slot for slot in slots if isinstance(slot, BenchTarget)]
    _echo(f"{plan.title}: benchmarking {len(targets)} targets, {plan.settings.rounds} rounds")
    run = run_bench(targets, settings=plan.settings, data=data, reference=f"torch:{plan.model}", device=device,
                    progress=Progress(0), command=command, title=plan.title)
    measured = iter(run.results)
    return dataclasses.replace(run, results=tuple(next(measured) if isinstance(slot, BenchTarget) else slot
                                                  for slot in slots))


def small_model(quickstart: Path | None, work: Path) -> Path:
    """The quickstart output folder to take the small model from (made with ``vitedge quickstart`` if needed)."""
    if quickstart is not None:
        return quickstart
    folder = work / "quickstart-run"
    if not (folder / "model" / "config.json").is_file() or not (folder / "data" / "test").is_dir():
        # As a user makes it: the studies sit below the quickstart, which benchmarks with the harness.
        subprocess.run([sys.executable, "-m", "vitedge.cli", "quickstart", "--out", str(folder)], check=True)
    return folder


def readme(runs: list[BenchRun]) -> str:
    """results/README.md: how the numbers were made and how to read them, then the report."""
    intro = """# Published benchmark results

Measured on this repository's development machine. Reproduce (converts every format and precision in
the registry, then benchmarks; artifacts are cached in `.bench-work/`):

```bash
make bench        # python -m vitedge.benchmarks.studies.publish: ViT-B/16-224 and the quickstart model
make bench-large  # python -m vitedge.benchmarks.studies.publish --only-large: ViT-L/16-384 (other sections are kept)
make bench-large-int8  # ... --large-int8: ViT-L/16-384's fastest int8 per format and the int8 peers, 6 rounds
```

Each section below names the exact command, date and thread count it was measured with. This is a
2-vCPU development machine that other jobs sometimes share: every section was timed while it was
otherwise quiet, at its 2 threads (the default pins all usable CPUs); on a busy machine
`--threads 1` gives the steadier numbers. Converting ViT-L/16-384 to all 16 artifacts takes hours
here (calibrated int8 and Core ML's k-means palettization the longest, 15-20 minutes each); the
artifacts are reused from `.bench-work/` when the command is run again.
[`report.html`](report.html) has the same numbers with plots (accuracy vs latency, size, latency
distributions); [`results.json`](results.json) is the raw data (`vitedge report results.json -o x.md`).
The int8 head-to-head section pairs vitedge's fastest int8 artifact with the fastest int8 peer of the same
run, across formats and per format (batch 1 p50 ratios).
The throughput section gives images/s at batch 1, 8 and 32 on 1 and 2 threads for each format's fp32, bf16 and
fastest int8 artifact (`--no-throughput` skips those runs, `--only-throughput` makes only them);
the last section compares each artifact's effective GMAC/s with this CPU's measured GEMM ceiling
(`python -m vitedge.benchmarks.studies.gemm_ceiling --out benchmarks/results/gemm_ceiling.md`, before `make bench`).

How to read the tables:
- **latency** is one call of the model on an already preprocessed batch, at a pinned thread count,
  after warm-up; p50/p90/p99 over all timed calls, pooled from several rounds of fresh processes that
  run every artifact in turn (so a slow spell of this shared machine lands on all of them).
  **speed-up** is PyTorch eager fp32's p50 over the row's p50, same run, same batch size: compare
  ratios, not absolute times, across machines.
- **cold load** is what a fresh process pays before its first inference: importing the backend,
  checking the files' sha256, loading the model. **peak RSS** is the worker process's high-water mark
  (VmHWM) through loading and timed inference, Python and libraries included.
- **ViT-B and ViT-L have random weights** (presets: the real architectures, for latency, size and
  memory): their top-1 is meaningless, but **agreement** (same top-1 class as PyTorch eager fp32 on
  the same images) and the logits **cosine** still show what a conversion changes. The quickstart
  model is trained: its **top-1** is on held-out images with labels.
- **Peers** are what a user gets without vitedge's conversions: PyTorch eager fp32, onnxruntime's
  `quantize_dynamic` with default arguments on the plain fp32 export, litert-torch's default
  conversion of the Hugging Face model, OpenVINO's `convert_model` + NNCF's `quantize` with their
  defaults (calibrated on the images vitedge's int8-static uses; OpenVINO's default inference precision),
  and ExecuTorch's documented XNNPACK recipe at fp32 and int8-dynamic (the model's own attention kernel,
  where vitedge's exports attention as two batched matmuls; each manifest records what XNNPACK delegated).
- A **failed** row says why (a conversion that did not pass validation is not written); a
  **skipped** row cannot run on this OS (its size is still measured).

"""
    from vitedge.benchmarks.studies.ceiling import efficiency_section
    from vitedge.benchmarks.studies.head_to_head import head_to_head_section
    from vitedge.benchmarks.studies.throughput import throughput_section

    ceiling = efficiency_section(runs, RESULTS / "gemm_ceiling.json")  # '' until gemm_ceiling has measured this machine
    extra = [section for section in (head_to_head_section(runs), throughput_section(runs), ceiling) if section]
    return intro + markdown_report(runs).split("\n", 1)[1] + "".join("\n" + section for section in extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitedge.benchmarks.studies.publish", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="where README.md, results.json, report.html go")
    parser.add_argument("--work", type=Path, default=Path(".bench-work"), help="converted artifacts (reused)")
    parser.add_argument("--large", action="store_true", help=f"also {LARGE} (several GB, long; on a quiet machine)")
    parser.add_argument("--only-large", action="store_true", help=f"only {LARGE}; other sections of --out are kept")
    parser.add_argument("--quickstart", type=Path, help="take the small model from this quickstart output folder")
    parser.add_argument("--no-small", action="store_true", help="skip the quickstart model")
    parser.add_argument("--large-int8", action="store_true",
                        help=f"only {LARGE}'s fastest int8 artifact per format and the int8 peers, in more rounds "
                             "(its own section; the others are kept)")
    parser.add_argument("--only-throughput", action="store_true",
                        help="only the ViT-B throughput runs; other sections of --out are kept")
    parser.add_argument("--fresh", action="store_true", help="convert again even when --work has the artifact")
    parser.add_argument("--threads", type=int, help="pinned threads (default: the CPUs this process may use)")
    parser.add_argument("--quick", action="store_true", help="few runs and images: a smoke test, not results")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the ViT-B throughput runs (batch 1/8/32 at 1 and 2 threads: the longest part)")
    parser.add_argument("--device", default="vitedge dev machine", help="the machine's name in the report")
    parser.add_argument("--render-only", action="store_true", help="rewrite README.md and report.html from results.json")
    parser.add_argument("--convert-only", action="store_true",
                        help="only make the artifacts and peers in --work (e.g. ahead of a quiet spell to time them)")
    return parser


def plans(args: argparse.Namespace, work: Path) -> list[Plan]:
    threads = args.threads or default_threads()
    quick = args.quick

    def settings(batch_sizes: tuple[int, ...], runs: int, warmup: int, pinned: int | None = None,
                 rounds: int = 3) -> BenchSettings:
        return BenchSettings(threads=pinned or threads, batch_sizes=batch_sizes, warmup=1 if quick else warmup,
                             runs=3 if quick else runs, rounds=1 if quick else rounds, timeout_s=3600)

    chosen = []
    base = not args.only_large and not args.only_throughput and not args.large_int8
    if base:
        chosen.append(Plan(TITLES[BASE], f"preset:{BASE}", settings((1, 8), 21, 2), 10 if quick else 50))
    if base and not args.no_throughput or args.only_throughput:
        from vitedge.benchmarks.studies.throughput import (
            BATCH_SIZES,
            THREADS,
            run_title,
            throughput_artifacts,
        )

        only = throughput_artifacts(FORMATS.values())
        chosen += [Plan(run_title(TITLES[BASE], count), f"preset:{BASE}", settings(BATCH_SIZES, 6, 1, pinned=count), 10,
                        only=only, peers=frozenset()) for count in sorted({*THREADS, threads})]
    if base and not args.no_small:
        folder = small_model(args.quickstart, work)
        chosen.append(Plan(SMALL_TITLE, str(folder / "model"), settings((1, 8), 60, 5), 50 if quick else 500,
                           data_folder=folder / "data" / "test"))
    if args.large or args.only_large:
        chosen.append(Plan(TITLES[LARGE], f"preset:{LARGE}", settings((1,), 9, 2), 6 if quick else 20))
    if args.large_int8:
        from vitedge.benchmarks.studies.throughput import int8_artifacts

        # More, shorter rounds than the full section: this machine's per-core speed drifts over minutes.
        chosen.append(Plan(LARGE_INT8_TITLE, f"preset:{LARGE}", settings((1,), 18, 1, rounds=6), 6 if quick else 20,
                           only=int8_artifacts(FORMATS.values()), peers=INT8_PEERS))
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "0")
    work = args.work.resolve()
    command = shlex.join(["python", "-m", "vitedge.benchmarks.studies.publish", *(sys.argv[1:] if argv is None else argv)])
    runs = []
    for plan in [] if args.render_only else plans(args, work):
        folder = work / plan.title.split()[0].lower().replace("/", "-")
        if args.convert_only:
            from vitedge.converters import load_source

            slots = plan_slots(plan, load_source(plan.model), folder, fresh=args.fresh)
            _echo(f"{plan.title}: {sum(isinstance(slot, BenchTarget) for slot in slots)} of {len(slots)} targets ready")
            continue
        runs.append(measure(plan, folder, fresh=args.fresh, device=args.device, command=command))
    if args.convert_only:
        return 0
    measured = {run.title for run in runs}
    results = args.out / "results.json"
    kept = [run for run in load_runs(results) if run.title not in measured] if results.is_file() else []
    order = [TITLES[BASE], TITLES[LARGE], LARGE_INT8_TITLE, SMALL_TITLE]
    runs = sorted(kept + runs, key=lambda run: order.index(run.title) if run.title in order else len(order))
    save_runs(runs, results)
    write_report(runs, args.out / "report.html")
    (args.out / "README.md").write_text(readme(runs), encoding="utf-8")
    print(f"wrote {args.out / 'README.md'}, {results}, {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
