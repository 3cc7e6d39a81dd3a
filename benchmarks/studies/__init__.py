"""The published studies behind ``benchmarks/results/``: each module is a command (``python -m ...``).

``publish`` (every format and precision with the peers), ``gemm_ceiling`` (this CPU's GEMM ceiling and each
artifact's share of it, via ``ceiling``), ``exporter_choice`` (with ``onnx_int8_variants``), ``onnx_precisions``,
``tflite_*``, ``coreml_sizes``, ``distill_bench``, ``token_merging`` (speed against top-1 per R); ``peers`` builds the peer targets. Users' harness
(``vitedge bench`` / ``vitedge report``) lives one level up and does not import these.
"""
