"""The published studies behind ``benchmarks/results/``: each module is a command (``python -m ...``).

``publish`` (every format and precision with the peers), ``exporter_choice``, ``onnx_precisions``,
``tflite_*``, ``coreml_sizes``, ``distill_bench``; ``peers`` builds the peer targets. Users' harness
(``vitedge bench`` / ``vitedge report``) lives one level up and does not import these.
"""
