"""``torch:MODEL`` as a benchmark target: the source model in PyTorch eager fp32 (needs vitedge[convert]).

Used as a peer row (what the user would get without converting) and as the accuracy reference
(``vitedge bench … --reference MODEL``). Imported only by a worker asked for a torch target.
"""

from __future__ import annotations

import numpy as np

from vitedge.benchmarks.target import TargetInfo
from vitedge.errors import BackendUnavailableError


class TorchTarget:
    """A model as :func:`vitedge.converters.load_source` loads it, run eagerly in fp32.

    Args:
        model: A hub id, a local Hugging Face folder or ``preset:NAME``.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._source = None
        self._wrapper = None
        self.preprocess = None

    def import_backend(self) -> None:
        try:
            import torch  # noqa: F401

            import vitedge.converters.loading  # noqa: F401  (transformers)
        except ImportError as error:
            raise BackendUnavailableError(
                f"torch:{self.model}: PyTorch is not installed ({error})", hint="pip install 'vitedge[convert]'"
            ) from error

    def check_files(self) -> None:
        """Nothing to check: the loader refuses unsafe or missing weights itself."""

    def load(self, threads: int, device: str | None = None) -> None:  # device: eager fp32 runs on the CPU
        import torch

        from vitedge.converters.loading import load_source

        torch.set_num_threads(threads)
        self._source = load_source(self.model)
        self._wrapper = self._source.two_outputs()
        self.preprocess = self._source.preprocess

    def info(self) -> TargetInfo:
        import torch

        parameters = list(self._source.model.parameters()) + list(self._source.model.buffers())
        labels = self._source.labels
        return TargetInfo(
            format="pytorch",
            precision="fp32",
            backend="torch eager",
            backend_version=torch.__version__,
            size_bytes=sum(p.numel() * p.element_size() for p in parameters),
            model=self._source.info.model,
            weights=self._source.info.weights,
            labels=tuple(labels.get(i, f"LABEL_{i}") for i in range(max(labels, default=-1) + 1)),
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits, _ = self._wrapper(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return logits.float().numpy()

    def selfcheck(self) -> dict | None:
        return None  # PyTorch eager is the reference itself: there is no artifact to check
