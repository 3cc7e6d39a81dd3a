"""Bulk embedding and similarity search, measured: search quality per index kind, int8 vs fp32 neighbours,
throughput of the local engine against Ray Data with 1 and 2 workers, and what a cluster would give.

Trains the quickstart's ViT (unless ``--model`` names a Hugging Face folder), converts it to ONNX fp32 and
int8-dynamic, writes the built-in shapes test split as image files, and embeds them with ``vitedge.scale``:

- search quality: every image is a query against the others (itself left out); recall@10 of hnsw and ivf-pq
  against the exact (flat) index, and how often the neighbours share the query's class;
- int8 vs fp32: recall@10 of the int8 artifact's exact neighbours against the fp32 artifact's;
- throughput: images/s end to end and in steady state (first shard to last), local engine (1 and 2
  threads) and Ray (1 and 2 single-threaded workers), plus the per-image costs behind the cluster estimate.

    python -m vitedge.benchmarks.studies.scale_search --out benchmarks/results/scale_search.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K = 10
ECHO = Callable[[str], None]


def _trained_artifacts(model: str | None, workdir: Path, echo: ECHO) -> tuple[Path, Path, str]:
    """ONNX fp32 and int8-dynamic artifacts of the trained quickstart ViT (or ``model``), and a description."""
    from vitedge.converters import convert
    from vitedge.converters.loading import SourceModel, architecture_summary, load_source
    from vitedge.converters.training.quickstart_recipe import (
        QUICKSTART_TRAIN,
        quickstart_preprocess_spec,
        run_quickstart_recipe,
    )
    from vitedge.runtime.manifest import SourceInfo

    if model:
        source, described = load_source(model), model
    else:
        echo("training the quickstart ViT …")
        run = run_quickstart_recipe(train_config=dataclasses.replace(QUICKSTART_TRAIN, max_seconds=None))
        info = SourceInfo(model="quickstart recipe", weights="trained", architecture=architecture_summary(run.model))
        labels = {int(i): str(label) for i, label in run.model.config.id2label.items()}
        source = SourceModel(run.model, quickstart_preprocess_spec(), labels, info)
        described = f"the quickstart ViT (trained here; torch fp32 test accuracy {run.test_accuracy:.1%})"
    folders = []
    for precision in ("fp32", "int8-dynamic"):
        echo(f"converting to onnx {precision} …")
        out = workdir / f"onnx-{precision}"
        convert(source, to="onnx", precision=precision, out=out, overwrite=True, validation_samples=32)
        folders.append(out)
    return folders[0], folders[1], described


# -- search quality ----------------------------------------------------------------------------------


def _neighbours(index, vectors: np.ndarray, paths: Sequence[str], **search_options) -> list[list[str]]:
    """Each row's K nearest other rows (the query itself left out)."""
    hits = index.search(vectors, k=K + 1, **search_options)
    return [[hit.path for hit in row if hit.path != path][:K] for row, path in zip(hits, paths)]


def _recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))


def _class_agreement(found: list[list[str]], paths: Sequence[str]) -> tuple[float, float]:
    """Share of the K neighbours in the query's class, and of first neighbours in it."""
    cls = {path: Path(path).parent.name for path in paths}
    share = np.mean([np.mean([cls[n] == cls[q] for n in row]) for row, q in zip(found, paths)])
    first = np.mean([cls[row[0]] == cls[q] for row, q in zip(found, paths)])
    return float(share), float(first)


def search_quality(fp32_job: Path, int8_job: Path, workdir: Path, echo: ECHO) -> list[str]:
    """Markdown: one row per index kind, then the int8-vs-fp32 line."""
    from vitedge.scale import read_embeddings
    from vitedge.search import build_index

    table = read_embeddings(fp32_job)
    lines = ["| index | parameters | build s | ms per query | recall@10 vs flat | class agreement@10 | 1-NN class agreement |",
             "|---|---|---|---|---|---|---|"]
    exact = None
    for kind, probe_all in (("flat", False), ("hnsw", False), ("ivf-pq", False), ("ivf-pq", True)):
        echo(f"search quality: {kind}{' (every cluster)' if probe_all else ''} …")
        index = build_index(fp32_job, workdir / f"index-{kind}", kind=kind, overwrite=True)
        params = dict(index.meta["params"], **({"nprobe": index.meta["params"]["nlist"]} if probe_all else {}))
        started = time.perf_counter()
        found = _neighbours(index, table.vectors, table.paths, nprobe=params.get("nprobe"))
        per_query_ms = (time.perf_counter() - started) * 1000 / len(table.paths)
        exact = found if kind == "flat" else exact
        share, first = _class_agreement(found, table.paths)
        settings = ", ".join(f"{k} {v}" for k, v in params.items() if k not in ("kind", "metric")) or "exact"
        lines.append(f"| {kind} | {settings} | {index.meta['build_seconds']:.2f} | {per_query_ms:.3f} "
                     f"| {_recall(found, exact):.1%} | {share:.1%} | {first:.1%} |")
    int8 = read_embeddings(int8_job)
    if int8.paths != table.paths:
        raise RuntimeError("the int8 and fp32 jobs embedded different images")
    int8_found = _neighbours(build_index(int8_job, workdir / "index-int8", overwrite=True), int8.vectors, int8.paths)
    cosines = np.sum(table.vectors * int8.vectors, axis=1)
    share, first = _class_agreement(int8_found, int8.paths)
    lines += ["", f"int8-dynamic vs fp32 (exact search on each artifact's own embeddings of the same {len(table.paths)} "
              f"images): recall@10 of the int8 neighbours against the fp32 ones **{_recall(int8_found, exact):.1%}**; "
              f"embedding cosine int8 vs fp32 mean {cosines.mean():.4f}, min {cosines.min():.4f}; int8 class agreement@10 "
              f"{share:.1%}, 1-NN {first:.1%}.",
              "", "ivf-pq with every cluster searched (last row) leaves only the product quantization's error: its "
              "codes hold each vector in pq_m x pq_bits bits (pq_bits 8 from ~1,000 vectors on)."]
    return lines


# -- throughput ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    """One job's wall time and its steady-state span (first shard written to last)."""

    seconds: float
    steady_images: int
    steady_seconds: float

    @property
    def steady_rate(self) -> float:
        return self.steady_images / self.steady_seconds if self.steady_seconds > 0 else float("nan")


def _timed_job(artifact: Path, images: Path, out: Path, shard_size: int, **options) -> Timing:
    from vitedge.scale import run_job

    shutil.rmtree(out, ignore_errors=True)
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    run_job(artifact, images, out, shard_size=shard_size,
            on_shard=lambda shard: marks.append((time.perf_counter(), shard.done_images)), **options)
    seconds = time.perf_counter() - started
    (t_first, n_first), (t_last, n_last) = marks[0], marks[-1]
    return Timing(seconds, n_last - n_first, t_last - t_first)


CONFIGURATIONS = {  # name -> run_job options
    "local, 1 thread": {"engine": "local", "threads": 1},
    "local, 2 threads": {"engine": "local", "threads": 2},
    "ray, 1 worker x 1 thread": {"engine": "ray", "threads": 1, "workers": 1},
    "ray, 2 workers x 1 thread": {"engine": "ray", "threads": 1, "workers": 2},
}


def throughput(artifact: Path, images: Path, count: int, workdir: Path, *, rounds: int, shard_size: int,
               echo: ECHO) -> tuple[dict[str, list[Timing]], float]:
    """Each configuration ``rounds`` times (local ones first, then Ray started once); Ray's start time."""
    import ray

    from vitedge.scale import RayOptions

    timings: dict[str, list[Timing]] = {name: [] for name in CONFIGURATIONS}
    ray_start = float("nan")
    for phase in ("local", "ray"):
        if phase == "ray":
            started = time.perf_counter()
            ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, logging_level="ERROR")
            ray_start = time.perf_counter() - started
        for round_index in range(rounds):
            for name, options in CONFIGURATIONS.items():
                if options["engine"] != phase:
                    continue
                echo(f"throughput: {name}, round {round_index + 1} …")
                options = dict(options)
                workers = options.pop("workers", None)
                timings[name].append(_timed_job(artifact, images, workdir / "throughput", shard_size,
                                                ray=RayOptions(workers=workers), **options))
    ray.shutdown()
    return timings, ray_start


def per_image_costs(artifact: Path, images: Path) -> dict[str, float]:
    """Milliseconds per image on one core: decode+preprocess, the model (1 thread), the driver's shard write."""
    import pyarrow as pa

    from vitedge.runtime.manifest import read_manifest
    from vitedge.scale.shards import write_shard
    from vitedge.scale.sources import resolve_sources
    from vitedge.scale.stages import ArtifactHandle, ModelStage, StageOptions, artifact_sha256, decode_batch

    paths = resolve_sources([str(images)])
    table = pa.table({"chunk": pa.array([0] * len(paths), pa.int32()), "path": paths})
    spec = read_manifest(artifact).preprocess
    started = time.process_time()
    decoded = [decode_batch(table.slice(start, 32), spec=spec, max_pixels=10**8) for start in range(0, len(paths), 32)]
    decode_ms = (time.process_time() - started) * 1000 / len(paths)
    stage = ModelStage(ArtifactHandle(str(artifact), artifact_sha256(artifact)), StageOptions(threads=1, batch_size=8))
    started = time.process_time()
    outputs = [stage(batch) for batch in decoded]
    model_ms = (time.process_time() - started) * 1000 / len(paths)
    rows = pa.concat_tables(outputs).drop_columns(["chunk"])
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_shard(Path(folder), "part-00000-x.parquet", rows, chunk_digest="x")
        write_ms = (time.perf_counter() - started) * 1000 / len(paths)
    return {"decode": decode_ms, "model": model_ms, "write": write_ms}


def ray_matches_local(artifact: Path, images: Path, workdir: Path, shard_size: int) -> float:
    """Largest embedding difference between a Ray job (2 workers) and a local one over the same images."""
    import ray

    from vitedge.scale import RayOptions, read_embeddings, run_job

    local, distributed = workdir / "equal-local", workdir / "equal-ray"
    for folder in (local, distributed):
        shutil.rmtree(folder, ignore_errors=True)
    run_job(artifact, images, local, shard_size=shard_size)
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, logging_level="ERROR")
    try:
        run_job(artifact, images, distributed, engine="ray", shard_size=shard_size, threads=1, ray=RayOptions(workers=2))
    finally:
        ray.shutdown()
    a, b = read_embeddings(local), read_embeddings(distributed)
    if a.paths != b.paths:
        raise RuntimeError("the Ray job and the local job hold different rows")
    return float(np.abs(a.vectors - b.vectors).max())


# -- the report ---------------------------------------------------------------------------------------


def throughput_lines(timings: dict[str, list[Timing]], count: int, ray_start: float) -> list[str]:
    lines = ["| engine | images/s end to end (best of rounds) | images/s steady state (best) | all rounds, end to end s |",
             "|---|---|---|---|"]
    for name, runs in timings.items():
        best = min(runs, key=lambda t: t.seconds)
        lines.append(f"| {name} | {count / best.seconds:.1f} | {max(t.steady_rate for t in runs):.1f} "
                     f"| {', '.join(f'{t.seconds:.1f}' for t in runs)} |")
    lines += ["", f"Starting the local Ray (`ray.init`, 2 CPUs) took {ray_start:.1f} s, not counted above; a Ray job's "
              "end-to-end time includes starting its actors and loading the model in each."]
    return lines


def cluster_lines(costs: dict[str, float], timings: dict[str, list[Timing]]) -> list[str]:
    per_image = costs["decode"] + costs["model"]
    cores = 2  # the 2-worker configuration: one core each
    local1 = max(t.steady_rate for t in timings["local, 1 thread"])
    ray1 = max(t.steady_rate for t in timings["ray, 1 worker x 1 thread"])
    ray2 = max(t.steady_rate for t in timings["ray, 2 workers x 1 thread"])
    efficiency = ray2 / (cores * 1000 / per_image)  # the whole machine busy: actors, decode tasks, driver, Ray itself
    node = 16 * 1000 / per_image * efficiency
    driver = 1000 / costs["write"]
    rows = [f"| {n} | {min(n * node, driver):,.0f} | {1e6 / min(n * node, driver) / 3600:.2f} |" for n in (1, 4, 16, 64)]
    vit_b = 626.5 / 8 * 2  # ms·core per image: ViT-B/16 int8-dynamic, batch 8, 2 threads (onnx_precisions.md)
    vit_b_node = 16 * 1000 / (vit_b + costs["decode"]) * efficiency
    return [
        f"Measured per image on one core (CPU time, this run): decode + preprocess {costs['decode']:.2f} ms, the model "
        f"(1 thread) {costs['model']:.2f} ms, so c = {per_image:.2f} ms·core and one core gives 1000 / c = "
        f"{1000 / per_image:.0f} images/s. Ray with one worker ran at {ray1:.0f} images/s in steady state, the local "
        f"engine with one thread at {local1:.0f} (Ray's decode tasks run in other processes, beside the model). With "
        f"{cores} workers on this {os.cpu_count()}-core machine it ran at {ray2:.0f} images/s, e = {efficiency:.0%} of the "
        f"ideal {cores} x 1000 / c (actors, decode tasks, the driver and Ray's own processes share the cores, and so "
        "did other work on this machine: e is a floor).",
        "",
        "Ray Data's documented overheads: each Ray task costs scheduling and inter-process communication, so tasks "
        "shorter than ~10 ms do not speed up (Ray's performance guide); here a batch is at least 16 images, "
        f"{16 * per_image:.0f} ms of work for this model, seconds for ViT-B. Blocks live in the object store "
        "(1 MiB to 128 MiB each, Ray Data's defaults) and cross the network only when the next stage runs on another "
        "node: a preprocessed image is 3 x H x W float32 (590 KiB at 224 x 224), a result row a few KiB. The driver "
        f"receives the rows and writes the shards: {costs['write']:.3f} ms per image measured, a ceiling of "
        f"~{driver:,.0f} images/s.",
        "",
        f"For N nodes of C = 16 cores, one single-threaded worker per core: N x C x 1000 / c x e = N x 16 x "
        f"{1000 / per_image:.0f} x {efficiency:.2f} = "
        f"N x {node:,.0f} images/s for this model, capped by the driver:",
        "",
        "| nodes | images/s | hours for 1M images |",
        "|---|---|---|",
        *rows,
        "",
        f"For ViT-B/16 int8-dynamic (ONNX, ~{vit_b:.0f} ms·core per image: 626.5 ms per batch of 8 on 2 threads in "
        f"[onnx_precisions.md](onnx_precisions.md)) a 16-core node gives 16 x 1000 / ({vit_b:.0f} + {costs['decode']:.1f}) "
        f"x {efficiency:.2f} = ~{vit_b_node:.0f} images/s: 1M images take {1e6 / vit_b_node / 3600:.1f} hours on one "
        f"node, {1e6 / (16 * vit_b_node) / 3600:.2f} on 16. Reading the images (typically 50-500 KB each) from shared "
        f"storage must keep up: 16 nodes x {vit_b_node:.0f} images/s x 200 KB = "
        f"{16 * vit_b_node * 200 / 1000:.0f} MB/s. Add the start-up once per job (Ray's connection, then each actor's "
        "model load: seconds).",
    ]


def write_report(out: Path, sections: dict[str, list[str]], header: list[str]) -> None:
    lines = [*header, ""]
    for title, body in sections.items():
        lines += [f"## {title}", "", *body, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def _header(described: str, count: int, started_load: float, args) -> list[str]:
    from vitedge.benchmarks.machine import machine_info

    machine = machine_info(("numpy", "pillow", "onnxruntime", "ray", "pyarrow", "faiss-cpu", "torch"))
    versions = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    return [
        "# Bulk embedding on Ray Data and similarity search with FAISS",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine['cpu']} ({machine['logical_cpus']} logical CPUs), "
        f"{machine['os']}; {versions}. Load average at the start: {started_load:.1f} (above the core count means other "
        "work shared the CPU: read the timings as indicative, the ratios and the search quality as measured).",
        f"Model: {described}, ONNX fp32 and int8-dynamic. Data: the built-in shapes test split, {args.per_class} images "
        f"per class ({count} images, 10 classes), written as PNG files; embeddings L2-normalized, cosine metric.",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale_search.md"))
    parser.add_argument("--model", help="a Hugging Face folder (default: train the quickstart ViT)")
    parser.add_argument("--per-class", type=int, default=100, help="test images per class (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs per configuration (default 2)")
    parser.add_argument("--shard-size", type=int, default=100, help="images per shard (default 100)")
    args = parser.parse_args(argv)
    from vitedge.converters.training.quickstart_recipe import QUICKSTART_SHAPES
    from vitedge.data.shapes import write_image_folder
    from vitedge.scale import run_job

    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-scale-search-"))
    echo = lambda line: print(line, flush=True)  # noqa: E731
    fp32, int8, described = _trained_artifacts(args.model, workdir, echo)
    images = write_image_folder(workdir / "data", "test", args.per_class, QUICKSTART_SHAPES)
    count = args.per_class * QUICKSTART_SHAPES.num_classes
    for artifact, job in ((fp32, "job-fp32"), (int8, "job-int8")):
        run_job(artifact, images, workdir / job, shard_size=args.shard_size)
    quality = search_quality(workdir / "job-fp32", workdir / "job-int8", workdir, echo)
    timings, ray_start = throughput(fp32, images, count, workdir, rounds=args.rounds, shard_size=args.shard_size, echo=echo)
    difference = ray_matches_local(fp32, images, workdir, args.shard_size)
    costs = per_image_costs(fp32, images)
    sections = {
        "Search quality (fp32 embeddings)": quality,
        "Throughput (fp32, this machine)": [
            *throughput_lines(timings, count, ray_start), "",
            f"The Ray job's embeddings equal the local engine's: largest difference {difference:.1e} over "
            f"{count} x {read_dimension(workdir / 'job-fp32')} values."],
        "What a cluster would give": cluster_lines(costs, timings),
        "Reproduce": [f"`python -m vitedge.benchmarks.studies.scale_search --per-class {args.per_class} --rounds "
                      f"{args.rounds} --shard-size {args.shard_size} --out {args.out}` (trains the quickstart ViT first; "
                      "a few minutes on 2 cores)."],
    }
    write_report(args.out, sections, _header(described, count, load, args))
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out}")


def read_dimension(job: Path) -> int:
    from vitedge.scale import read_embeddings

    return int(read_embeddings(job).vectors.shape[1])


if __name__ == "__main__":
    main()
