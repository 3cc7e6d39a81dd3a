"""vitedge.benchmarks: the benchmark harness users run, its reports, and the published studies.

    vitedge bench ARTIFACT... [--reference ARTIFACT|MODEL] [--data DIR|builtin] --json out.json --report report.html
    vitedge report a.json b.json -o report.html

Harness: :mod:`~vitedge.benchmarks.bench` (the run) → :mod:`~vitedge.benchmarks.runner` (one fresh
:mod:`~vitedge.benchmarks.worker` process per artifact and round) → :mod:`~vitedge.benchmarks.results`
(JSON ``vitedge.bench/1``) → :mod:`~vitedge.benchmarks.report` (terminal, Markdown, self-contained HTML
with matplotlib plots inlined as SVG). :mod:`~vitedge.benchmarks.bench_data` picks the images (an ImageFolder or the built-in
shapes set of :mod:`vitedge.data`); accuracy numbers come from :mod:`vitedge.metrics`. The harness is torch
free except for ``torch:MODEL`` targets. :mod:`~vitedge.benchmarks.studies` holds the published studies
behind ``benchmarks/results/`` (they convert models: vitedge[convert]); the harness does not import them.
"""
