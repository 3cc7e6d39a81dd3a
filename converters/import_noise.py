"""Drop the warnings third-party packages print that say nothing to a vitedge user.

transformers imports torchao when it is installed (litert-torch pulls it in), and torchao logs
"Failed to load …/_C_*.so" for its CUDA kernels on every CPU-only machine, and registers enums that
torch's pytree warns about; transformers warns about the loss of a backbone that has none when
Core ML's tracer reads its attributes. Only these records are dropped: everything else those loggers
say still shows.
"""

from __future__ import annotations

import logging

NOISE = (
    ("torchao", "Failed to load "),
    ("torch.utils._pytree", "is an Enum subclass and is now natively supported by torch.compile"),
    # Tracing for Core ML reads every attribute of the backbone, loss_function included (a ViTModel has no loss).
    ("transformers.modeling_utils", "`loss_type=None` was set in the config but it is unrecognized"),
)


class _DropNoise(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def install() -> None:
    """Filter the known noise on its loggers (idempotent; the loggers need not exist yet)."""
    for name, fragment in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_DropNoise(fragment))
