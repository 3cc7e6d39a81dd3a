"""Images for the accuracy budget: held out from calibration, and from the final validation."""

from __future__ import annotations

import numpy as np

from vitedge.converters.calibration import BUILTIN, load_calibration
from vitedge.converters.export_types import ExportOptions
from vitedge.runtime.preprocess_spec import PreprocessSpec

BUDGET_SAMPLES = 64


def budget_inputs(spec: PreprocessSpec, options: ExportOptions, samples: int = BUDGET_SAMPLES) -> np.ndarray:
    """The built-in ``val`` split, or the user's calibration folder minus its calibration images."""
    split = "val" if options.calibration == BUILTIN else "held-out"
    return load_calibration(spec, options.calibration, samples, split=split).inputs
