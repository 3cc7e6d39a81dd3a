"""A measured GEMM ceiling, and how close each benchmarked artifact gets to it (effective GMAC/s, % of ceiling).

The ceiling file (``benchmarks/results/gemm_ceiling.json``, written by
:mod:`vitedge.benchmarks.studies.gemm_ceiling`) holds the GMAC/s each backend's own GEMM kernel reached
on a ViT's GEMM shapes on one machine. For a model, the ceiling of a compute precision (fp32, bf16,
int8) is the best kernel's rate per shape, mixed as that model's GEMMs are (total MACs over the sum of
each GEMM's MACs at its shape's best rate; the patch embedding, head and attention's
activation×activation products count at the mix's rate). An artifact's **effective GMAC/s** is its
model's MACs per image (:mod:`vitedge.benchmarks.macs`) over its batch-1 p50 latency; its share of
the ceiling is comparable only on the CPU the ceiling was measured on, and says so otherwise.

Torch-free (results files, manifests and JSON); :mod:`vitedge.benchmarks.studies.publish` adds
:func:`efficiency_section` to the published report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitedge.benchmarks.macs import vit_gemms, vit_macs
from vitedge.benchmarks.results import BenchResult, BenchRun
from vitedge.errors import UsageError
from vitedge.render import markdown_table

SCHEMA = "vitedge.gemm-ceiling/1"
#: The compute precision an artifact's GEMMs run in, by precision name (anything else: fp32). Weight-only
#: formats (int8-weight, int4-weight, palettized) dequantize to float on CPUs, fp16 runs in fp32 on CPUs
#: without native fp16, and ONNX/TFLite int4-weight compute int8 only inside a block-quantized kernel
#: that is not measured here: they all count against the fp32 ceiling.
COMPUTE_PRECISION = {"int8-dynamic": "int8", "int8-static": "int8", "bf16": "bf16"}
COMPUTE_PRECISIONS = ("fp32", "bf16", "int8")
#: Exceptions by (format, precision): TFLite int4-weight runs XNNPACK's dynamic-range kernel (activations
#: quantized to int8 at run time, int4 weights unpacked to int8), int8 arithmetic, so the int8 ceiling bounds
#: it (against fp32 it showed 221% on ViT-B). OpenVINO's CPU plugin does the same for weight-compressed models
#: (int8-weight, int4-weight: FullyConnected runs in u8 with DYNAMIC_QUANTIZATION_GROUP_SIZE 32 even with an f32
#: precision hint; against fp32 they showed 151%). ONNX int4-weight (MatMulNBits, accuracy level 0) computes in fp32.
FORMAT_COMPUTE_PRECISION = {("tflite", "int4-weight"): "int8", ("openvino", "int8-weight"): "int8",
                            ("openvino", "int4-weight"): "int8"}


def compute_precision(kernel_or_artifact_precision: str, fmt: str | None = None) -> str:
    """``fp32`` | ``bf16`` | ``int8`` for an artifact precision (of format ``fmt``) or a kernel label (``int8 (dynamic, …)``)."""
    name = kernel_or_artifact_precision.split(" ")[0]
    if (fmt, name) in FORMAT_COMPUTE_PRECISION:
        return FORMAT_COMPUTE_PRECISION[fmt, name]
    return COMPUTE_PRECISION.get(name, name if name in COMPUTE_PRECISIONS else "fp32")


@dataclass(frozen=True)
class Ceiling:
    """Measured kernels of one machine: (backend, precision label, op, m, k, n) → GMAC/s."""

    cpu: str
    created: str
    threads: int
    kernels: tuple[dict[str, Any], ...]
    load_average: float | None = None
    logical_cpus: int | None = None

    @property
    def busy(self) -> bool:
        """Whether other work shared the CPU while it was measured (load average above the core count)."""
        return self.load_average is not None and self.logical_cpus is not None and self.load_average > self.logical_cpus

    @classmethod
    def load(cls, path: str | Path) -> Ceiling:
        """Read a ceiling file.

        Raises:
            UsageError: missing, not JSON, or not a ceiling file.
        """
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UsageError(f"{path}: cannot read the GEMM ceiling ({error})",
                             hint="measure it: python -m vitedge.benchmarks.studies.gemm_ceiling") from error
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise UsageError(f"{path}: not a GEMM ceiling file", hint=f"expected schema {SCHEMA!r}")
        machine = document["machine"]
        return cls(machine["cpu"], document["created"], document["threads"], tuple(document["kernels"]),
                   document.get("load_average"), machine.get("logical_cpus"))

    def best(self, precision: str, shape: tuple[int, int, int]) -> dict[str, Any] | None:
        """The fastest kernel of a compute precision on one shape (None: not measured)."""
        found = [k for k in self.kernels if compute_precision(k["precision"]) == precision and (k["m"], k["k"], k["n"]) == shape]
        return max(found, key=lambda k: k["gmacs"], default=None)

    def model_rate(self, architecture: Mapping[str, Any], precision: str) -> float | None:
        """GMAC/s of ``architecture``'s GEMM mix at the best measured rate per shape (None: shapes not measured)."""
        gemms = vit_gemms(architecture) or []
        rates = {}
        for gemm in gemms:
            kernel = self.best(precision, (gemm.m, gemm.k, gemm.n))
            if kernel is not None:
                rates[gemm.role] = kernel["gmacs"]
        measured = [g for g in gemms if g.role in rates]
        if not measured:
            return None
        mix = sum(g.macs for g in measured) / sum(g.macs / rates[g.role] for g in measured)
        total = sum(g.macs for g in gemms)
        return total / sum(g.macs / rates.get(g.role, mix) for g in gemms)


def architecture_of(result: BenchResult) -> dict[str, Any] | None:
    """The architecture a result's model has: its preset, its config.json, or its artifact's manifest."""
    model = result.model or ""
    if model.startswith("preset:"):
        from vitedge.converters.presets import PRESETS  # the preset table only: no torch import

        preset = PRESETS.get(model.removeprefix("preset:"))
        if preset is not None and hasattr(preset, "config_kwargs"):
            return {"model_type": preset.model_type, **preset.config_kwargs()}
    for path in (Path(model) / "config.json", Path(result.target) / "manifest.json"):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return document.get("source", {}).get("architecture") if path.name == "manifest.json" else document
    return None


def efficiency_rows(run: BenchRun, ceiling: Ceiling) -> list[list[str]]:
    """One row per artifact measured at batch 1 (the ceiling's batch): MACs, p50, effective GMAC/s, ceiling, share."""
    same_cpu = run.machine.get("cpu") == ceiling.cpu
    rows = []
    for result in run.results:
        architecture = architecture_of(result) if result.ok else None
        macs = vit_macs(architecture) if architecture else None
        latency = result.at_batch(1)
        if macs and latency is not None:
            precision = compute_precision(result.precision or "fp32", result.format)
            effective = macs / (latency.stats.p50_ms / 1000) / 1e9
            rate = ceiling.model_rate(architecture, precision)
            share = "-" if rate is None else f"{100 * effective / rate:.0f}%" if same_cpu else "other CPU"
            rows.append([result.name, f"{macs / 1e9:.2f}", f"{latency.stats.p50_ms:.1f}", f"{effective:.1f}", precision,
                         "-" if rate is None else f"{rate:.0f}", share])
    return rows


EFFICIENCY_HEADER = ["target (batch 1)", "GMAC", "p50 ms", "effective GMAC/s", "compute", "ceiling GMAC/s", "% of ceiling"]


def efficiency_section(runs: Sequence[BenchRun], ceiling_path: str | Path) -> str:
    """Markdown: every run's artifacts against the ceiling in ``ceiling_path`` ('' when there is no file)."""
    path = Path(ceiling_path)
    if not path.is_file():
        return ""
    ceiling = Ceiling.load(path)
    lines = ["## How close to the GEMM ceiling", "",
             f"Ceiling: the best GEMM kernel of any backend per compute precision on each of the model's GEMM shapes, "
             f"measured {ceiling.created[:10]} on {ceiling.cpu} at {ceiling.threads} threads "
             f"([gemm_ceiling.md](gemm_ceiling.md)). Effective GMAC/s: the model's multiply-accumulates per image "
             "over its batch-1 p50. A run on another CPU is not compared; runs at another thread count (the "
             "throughput runs) are left out.", ""]
    if ceiling.busy:
        lines += [f"**The ceiling was measured on a busy machine** (load average {ceiling.load_average:.1f} on "
                  f"{ceiling.logical_cpus} CPUs): its GMAC/s are too low and the percentages too high; measure it again "
                  "on a quiet machine.", ""]
    for run in runs:
        if run.settings.threads != ceiling.threads:
            continue
        rows = efficiency_rows(run, ceiling)
        if rows:
            lines += [f"### {run.heading} ({run.machine.get('cpu', '?')})", "", markdown_table(rows, EFFICIENCY_HEADER), ""]
    return "\n".join(lines)
