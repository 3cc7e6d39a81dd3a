"""vitedge.benchmarks: the built-in dataset, metrics, and the benchmark harness with its reports.

    vitedge bench ARTIFACT... [--reference ARTIFACT|MODEL] [--data DIR|builtin] --json out.json --report report.html
    vitedge report a.json b.json -o report.html

Harness: :mod:`~vitedge.benchmarks.bench` (the run) → :mod:`~vitedge.benchmarks.runner` (one fresh
:mod:`~vitedge.benchmarks.worker` process per artifact and round) → :mod:`~vitedge.benchmarks.results`
(JSON ``vitedge.bench/1``) → :mod:`~vitedge.benchmarks.report` (terminal, Markdown, self-contained HTML
with SVG plots). Torch free except for ``torch:MODEL`` targets and :mod:`~vitedge.benchmarks.studies.publish`.
"""
