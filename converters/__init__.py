"""The torch side: load a ViT classifier, export it, quantize it, validate it against torch.

    >>> from vitedge.converters import convert
    >>> convert("preset:vit-base-patch16-224", to="onnx", out="artifacts/vit-b16")

Needs the ``convert`` extra (torch, transformers); the runtime does not import this package.
Public names load lazily, so importing one submodule does not import them all.
"""

from __future__ import annotations

import importlib

from vitedge.converters import import_noise

import_noise.install()

_PUBLIC = {
    "convert": "vitedge.converters.pipeline",
    "ConversionResult": "vitedge.converters.stages",
    "ExportOptions": "vitedge.converters.export_types",
    "SourceModel": "vitedge.converters.loading",
    "load_source": "vitedge.converters.loading",
    "PRESETS": "vitedge.converters.presets",
    "get_preset": "vitedge.converters.presets",
    "finetune": "vitedge.converters.training.finetune",
    "distill": "vitedge.converters.training.distill",
    "DistillConfig": "vitedge.converters.training.distill",
    "TrainingOptions": "vitedge.converters.training.run",
    "RunSetup": "vitedge.converters.training.run",
    "QatConfig": "vitedge.converters.training.qat",
    "export_int8_matmuls": "vitedge.converters.training.qat_export",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'vitedge.converters' has no attribute {name!r}")
