"""TFLite (LiteRT): export with litert-torch and quantization with ai-edge-quantizer / PT2E.

``export`` is the registry's exporter; ``quantize`` holds the recipes (``blocks``: the layers int4 blocks
cannot take).
"""
