"""The registries of formats and precisions: the one table everything else reads.

The CLI's ``--to`` and ``--precision`` choices, ``vitedge formats``, the README table and the
parametrized tests all come from :data:`FORMATS` and :data:`PRECISIONS`. Adding a format is adding
one row here plus its exporter module (``vitedge.converters``) and its backend module
(``vitedge.runtime.backends``), both named by dotted path so this module stays import-light.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass, field

from vitedge.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Precision:
    """A numeric precision or quantization recipe, independent of the format."""

    name: str
    description: str
    needs_calibration: bool = False


@dataclass(frozen=True)
class Tolerance:
    """How close an artifact must be to the torch fp32 reference to pass validation.

    ``None`` disables a check. Cosines and agreement are minima over/means across the samples;
    ``max_abs_diff`` is relative to the largest reference logit magnitude (at least 1).
    """

    min_logits_cosine: float | None = None
    min_embedding_cosine: float | None = None
    min_top1_agreement: float | None = None
    max_abs_diff: float | None = None


@dataclass(frozen=True)
class PrecisionSupport:
    """One precision as a given format implements it."""

    precision: str
    tolerance: Tolerance
    note: str = ""


#: The model families ``vitedge convert`` takes: Hugging Face ``model_type`` -> name for people
#: (vitedge.converters.adapters holds one adapter per family).
FAMILIES: dict[str, str] = {
    "vit": "ViT", "deit": "DeiT", "beit": "BEiT", "dinov2": "DINOv2", "swin": "Swin", "swinv2": "Swin V2",
    "mobilevit": "MobileViT", "mobilevitv2": "MobileViT V2",
}
#: The families every format converts: ViT (the conformance suite, every precision) and DeiT (the same ops
#: plus a distillation head; tests/test_convert.py).
CORE_FAMILIES = ("vit", "deit")


@dataclass(frozen=True)
class Unsupported:
    """Families a format (or some of its precisions) cannot express: the op, and what to do instead."""

    families: tuple[str, ...]
    op: str
    alternative: str
    precisions: tuple[str, ...] = ()  # empty: every precision
    #: Export options under which the family does convert, e.g. (("exporter", "dynamo"), ("opset", 18)).
    unless: tuple[tuple[str, object], ...] = ()

    def applies(self, family: str, precision: str, options: object = None) -> bool:
        """Whether converting ``family`` at ``precision`` with ``options`` (an ExportOptions) is refused."""
        if family not in self.families or (self.precisions and precision not in self.precisions):
            return False
        return not self.unless or not all(getattr(options, key, None) == value for key, value in self.unless)


@dataclass(frozen=True)
class Format:
    """An artifact format: how it is produced, what runs it, which precisions it supports."""

    name: str
    title: str
    model_file: str
    exporter: str  # "module:callable" in the converters (torch side)
    backend: str  # "module:class" in the runtime (torch free)
    backend_modules: tuple[str, ...]  # importable modules, any of which makes the backend usable
    install_extra: str
    precisions: tuple[PrecisionSupport, ...]
    notes: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)
    #: platform.system() names the runtime backend runs on (empty: any), e.g. ("Darwin",) for Core ML.
    runtime_systems: tuple[str, ...] = ()
    #: "module:function" that validates a fresh artifact instead of running it through the runtime
    #: (same arguments as vitedge.converters.validate.validate_artifact), e.g. a simulation where the
    #: backend cannot run here; None: validate_artifact.
    validator: str | None = None
    #: Devices the runtime backend can be asked to run on (``--device``, ``Classifier.open(device=…)``), the
    #: default first; empty: the backend picks its own (its library's default) and takes no device option.
    devices: tuple[str, ...] = ()
    #: Packages the runtime backend needs besides its own (``vitedge formats`` and the README table show them),
    #: e.g. ("torch",) for ExecuTorch, whose Python runtime takes torch tensors.
    runtime_requires: tuple[str, ...] = ()
    #: "module:function" that reads the artifact's own tensors after every encoder block for ``vitedge
    #: diagnose`` (vitedge.converters.diagnose.probe says what it takes and returns); None: it cannot.
    intermediates: str | None = None
    #: "module:function" in the runtime (torch free) that says where each op runs and in what precision for
    #: ``vitedge inspect --placement`` (vitedge.runtime.placement says what it takes and returns); None: it cannot.
    placement: str | None = None
    #: Families (FAMILIES keys) this format converts and validates in the tests (tests/test_families.py
    #: converts each one beyond CORE_FAMILIES at fp32 and one int8 precision).
    families: tuple[str, ...] = CORE_FAMILIES
    #: Family/precision combinations the format cannot express (``vitedge convert`` refuses them).
    unsupported: tuple[Unsupported, ...] = ()

    def check_family(self, family: str, precision: str, options: object = None) -> None:
        """Raise a UsageError naming the op and the alternative when this format cannot express ``family``."""
        for entry in self.unsupported:
            if entry.applies(family, precision, options):
                scope = f" at {precision}" if entry.precisions else ""
                raise UsageError(
                    f"{FAMILIES.get(family, family)} cannot be converted to {self.title}{scope}: {entry.op}",
                    hint=entry.alternative,
                )

    def family_status(self, family: str) -> str:
        """One cell of the family x format table: ``yes`` (tested), ``partly`` (tested; some precisions or
        options refused, ``vitedge convert`` says why), ``no`` (refused) or ``untested``."""
        refused = [entry for entry in self.unsupported if family in entry.families]
        if any(not entry.precisions and not entry.unless for entry in refused):
            return "no"
        if family not in self.families:
            return "untested"
        return "partly" if refused else "yes"

    @property
    def precision_names(self) -> tuple[str, ...]:
        return tuple(p.precision for p in self.precisions)

    def support(self, precision: str) -> PrecisionSupport:
        """The format's implementation of ``precision``, or a UsageError naming the valid ones."""
        for entry in self.precisions:
            if entry.precision == precision:
                return entry
        known = ", ".join(self.precision_names)
        if precision in PRECISIONS:
            raise UsageError(
                f"format {self.name!r} does not support precision {precision!r}",
                hint=f"choose one of: {known}",
            )
        raise UsageError(
            f"unknown precision {precision!r}{did_you_mean(precision, PRECISIONS)}",
            hint=f"format {self.name!r} supports: {known}",
        )

    def backend_supported_here(self) -> bool:
        """Whether this operating system can run the format's backend at all."""
        return not self.runtime_systems or platform.system() in self.runtime_systems

    def backend_installed(self) -> bool:
        """Whether one of the backend's modules, and every package it requires, can be imported here."""
        def found(module: str) -> bool:
            try:
                return importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):  # an import hook that refuses it, a module without a spec
                return False

        return any(map(found, self.backend_modules)) and all(map(found, self.runtime_requires))

    @property
    def runtime_text(self) -> str:
        """What the runtime backend needs, for people: ``"onnxruntime"``, ``"executorch + torch"``."""
        return " + ".join((" or ".join(self.backend_modules), *self.runtime_requires))


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "32-bit float weights and activations: the reference"),
        Precision("fp16", "16-bit float weights (half the size); for GPU/NPU targets and size"),
        Precision("int8-dynamic", "int8 weights, activations quantized on the fly"),
        Precision("int8-static", "int8 weights and activations, ranges from calibration images", True),
        Precision("int4-weight", "4-bit weights, float activations"),
        Precision("int8-weight", "int8 weights, float activations"),
        Precision("palettize4", "4-bit palettized weights: indices into 16-value lookup tables, float activations"),
        Precision("palettize6", "6-bit palettized weights: indices into 64-value lookup tables, float activations"),
        Precision("bf16", "bfloat16 compute, 32-bit float weights; for CPUs with AVX512-BF16 or AMX"),
    )
}

#: fp32 exports must reproduce torch to float rounding.
FP32_TOLERANCE = Tolerance(
    min_logits_cosine=0.9999,
    min_embedding_cosine=0.9999,
    max_abs_diff=1e-3,
)

#: ONNX quantized precisions (benchmarks/results/onnx_precisions.md); top-1 agreement is only gated
#: for trained models (a random-init model's top-1 is a coin toss between near-equal logits).
ONNX_FP16_TOLERANCE = Tolerance(min_logits_cosine=0.999, min_embedding_cosine=0.999, min_top1_agreement=0.95)
ONNX_INT8_TOLERANCE = Tolerance(min_logits_cosine=0.98, min_embedding_cosine=0.95, min_top1_agreement=0.9)
ONNX_INT4_TOLERANCE = Tolerance(min_logits_cosine=0.95, min_embedding_cosine=0.9, min_top1_agreement=0.85)

#: TFLite: each met with margin by the chosen recipe on the quickstart's trained ViT and on the tests'
#: random-init ViT; broken quantization (ai-edge-quantizer's static recipes here: min logits cosine ~0.5)
#: fails them. Measured: benchmarks/results/tflite_accuracy.md.
TFLITE_FP16_TOLERANCE = Tolerance(min_logits_cosine=0.999, min_embedding_cosine=0.999, min_top1_agreement=0.95)
TFLITE_INT8_DYNAMIC_TOLERANCE = Tolerance(min_logits_cosine=0.99, min_embedding_cosine=0.99, min_top1_agreement=0.9)
TFLITE_INT8_STATIC_TOLERANCE = Tolerance(min_logits_cosine=0.95, min_embedding_cosine=0.95, min_top1_agreement=0.8)
TFLITE_INT4_TOLERANCE = Tolerance(min_logits_cosine=0.9, min_embedding_cosine=0.95, min_top1_agreement=0.7)

#: Core ML, fp16 compute for all but fp32. Measured by simulation (benchmarks/results/coreml.md): the
#: quickstart's trained ViT agrees 100% (fp16, palettize6), 99.8% (int8-weight), 99.4% (int4-weight),
#: 99.0% (palettize4) with fp32, min logits cosine >= 0.964; the random-init test models, whose near-tied
#: logits flip easily, reach min logits cosines of 0.9999 (fp16), 0.999 (int8), 0.996 (palettize6), 0.87-0.92
#: (4-bit) and 4-bit agreements of 75-90%. The floors keep that margin and fail a broken compression.
COREML_FP16_TOLERANCE = Tolerance(min_logits_cosine=0.999, min_embedding_cosine=0.999, min_top1_agreement=0.95)
COREML_8BIT_TOLERANCE = Tolerance(min_logits_cosine=0.99, min_embedding_cosine=0.99, min_top1_agreement=0.9)
COREML_4BIT_TOLERANCE = Tolerance(min_logits_cosine=0.8, min_embedding_cosine=0.95, min_top1_agreement=0.6)

#: ExecuTorch (XNNPACK), measured through the runtime against torch fp32: the quickstart's trained ViT on 200
#: held-out images, the tests' tiny ViT (seed 0) and three other seeds on 32. int8-dynamic: min logits cosine
#: >= 0.9987, embedding >= 0.9999, 100% top-1 agreement everywhere. int8-static (64 calibration images): trained
#: 0.9990 / 0.997 / 99.0%; tiny 0.981-0.997 / >= 0.997 / 94-100% (near-tied random logits; 8 calibration images
#: drop one seed to 0.935). fp32 matches to float rounding (cosine 1.0). A broken recipe lands far below the floors.
EXECUTORCH_INT8_DYNAMIC_TOLERANCE = Tolerance(min_logits_cosine=0.99, min_embedding_cosine=0.99, min_top1_agreement=0.9)
EXECUTORCH_INT8_STATIC_TOLERANCE = Tolerance(min_logits_cosine=0.95, min_embedding_cosine=0.98, min_top1_agreement=0.85)

#: OpenVINO, each precision as it runs on the CPU (benchmarks/results/openvino.md: 500 held-out images on the
#: quickstart's trained ViT; the tests' tiny ViT, seed 0, and three other seeds on 16). Trained ViT: bf16 and fp16
#: agree 100% (min logits cosine >= 0.99997), int8-weight 100% (0.9995), int4-weight 99.8% (0.994), int8-static
#: 98.2% (0.980; embedding 0.975). Tiny ViTs: bf16/fp16 >= 0.9997, int8-weight >= 0.998, int8-static 0.956-0.995
#: (all 100% agreement), int4-weight 0.86-0.99 with 62-100% agreement (near-tied random logits; seed 0: 0.963, 87.5%).
OPENVINO_FLOAT16_TOLERANCE = Tolerance(min_logits_cosine=0.999, min_embedding_cosine=0.999, min_top1_agreement=0.95)
OPENVINO_INT8_STATIC_TOLERANCE = Tolerance(min_logits_cosine=0.95, min_embedding_cosine=0.95, min_top1_agreement=0.9)
OPENVINO_INT8_WEIGHT_TOLERANCE = Tolerance(min_logits_cosine=0.99, min_embedding_cosine=0.99, min_top1_agreement=0.95)
OPENVINO_INT4_TOLERANCE = Tolerance(min_logits_cosine=0.9, min_embedding_cosine=0.95, min_top1_agreement=0.75)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="onnx",
            title="ONNX",
            model_file="model.onnx",
            exporter="vitedge.converters.onnx.export:export_onnx",
            backend="vitedge.runtime.backends.onnx:OnnxBackend",
            backend_modules=("onnxruntime",),
            install_extra="onnx",
            precisions=(
                PrecisionSupport("fp32", FP32_TOLERANCE, "fused Attention graph, dynamic batch"),
                PrecisionSupport("fp16", ONNX_FP16_TOLERANCE, "fp32 inputs/outputs; slower than fp32 on CPUs"),
                PrecisionSupport("int8-dynamic", ONNX_INT8_TOLERANCE, "per-channel int8 MatMuls; the CPU default"),
                PrecisionSupport("int8-static", ONNX_INT8_TOLERANCE, "QDQ MatMul only, percentile calibration"),
                PrecisionSupport("int4-weight", ONNX_INT4_TOLERANCE, "MatMulNBits, block 32"),
            ),
            notes="onnxruntime on Linux, macOS, Windows, Raspberry Pi (arm64), Android",
            options=("opset", "exporter", "attention", "graph", "calibration", "calibration_samples",
                     "calibration_method", "max_accuracy_drop", "keep_float", "token_merging"),
            intermediates="vitedge.converters.onnx.diagnose:onnx_intermediates",
            placement="vitedge.runtime.placement.onnx:onnx_placement",
            # MobileViT V2's fold and DINOv2's bicubic position-embedding resize (the opset-18 Col2Im and the fp16
            # Resize that onnxruntime got wrong) are rewritten away at export (vitedge.converters.rewrites).
            families=(*CORE_FAMILIES, "beit", "dinov2", "swin", "swinv2", "mobilevit", "mobilevitv2"),
            unsupported=(
                # onnxruntime's quantizers take MatMuls (with weights) here; a MobileViT V2 graph has none: int8-dynamic
                # and int4-weight came out float under an int8 label, int8-static found nothing to calibrate.
                Unsupported(("mobilevitv2",), "ONNX int8 and int4 quantize MatMuls only, and MobileViT V2 has none (its "
                            "attention and MLP are 1x1 convolutions): the artifact would stay float",
                            "use --precision fp16, or OpenVINO --precision int8-weight / TFLite --precision "
                            "int8-dynamic (int8 convolution weights)",
                            precisions=("int8-dynamic", "int8-static", "int4-weight")),
            ),
        ),
        Format(
            name="tflite",
            title="TFLite (LiteRT)",
            model_file="model.tflite",
            exporter="vitedge.converters.tflite.export:export_tflite",
            backend="vitedge.runtime.backends.tflite:TFLiteBackend",
            backend_modules=("ai_edge_litert", "tflite_runtime", "tensorflow"),
            install_extra="tflite",
            precisions=(
                PrecisionSupport("fp32", FP32_TOLERANCE, "litert-torch, batch 1"),
                PrecisionSupport("fp16", TFLITE_FP16_TOLERANCE, "fp16 weights; CPUs compute in fp32"),
                PrecisionSupport("int8-dynamic", TFLITE_INT8_DYNAMIC_TOLERANCE,
                                 "ai-edge-quantizer dynamic_wi8_afp32; the CPU default"),
                PrecisionSupport("int8-static", TFLITE_INT8_STATIC_TOLERANCE,
                                 "PT2E; int8 input and output, quantized by the runtime"),
                PrecisionSupport("int4-weight", TFLITE_INT4_TOLERANCE,
                                 "blocks of 32; int8 head, convolutions and layers not a multiple of 32; "
                                 "int8 compute on the fly"),
            ),
            notes="ai-edge-litert (LiteRT) on Linux, macOS, Windows, Android; tflite-runtime on older "
                  "Raspberry Pi setups (fp32 and int8-static only)",
            options=("calibration", "calibration_samples", "input_layout", "input_type", "max_accuracy_drop",
                     "keep_float", "token_merging"),
            intermediates="vitedge.converters.tflite.diagnose:tflite_intermediates",
            placement="vitedge.runtime.placement.tflite:tflite_placement",
            # MobileViT and MobileViT V2 convert (fp32, fp16 tested: tests/test_families.py), but their random-init
            # test models are too chaotic for the int8 test: MobileViT int8-dynamic passes validation (min logits
            # cosine 0.9975) yet reaches 0.979 on the test photos (int8 weights alone: 0.997), V2 0.84 (int8 weight
            # rounding alone: 0.62). Not listed: each conversion's own validation judges their reduced precisions.
            families=(*CORE_FAMILIES, "beit", "dinov2", "swin", "swinv2"),
            unsupported=(
                # Measured on the test models (calibration 32): full W8A8 min logits cosine 0.81, convolutions
                # alone 0.32, the transformers' linear layers alone 0.99; MobileViT V2 outputs zeros. Q-HyViT
                # (arXiv 2303.12557) reports the same collapse of static int8 on MobileViT's convolutions.
                Unsupported(("mobilevit", "mobilevitv2"), "static int8 activations at its convolutions collapse its "
                            "outputs (test models: min logits cosine 0.81; V2: all zeros)",
                            "use --precision int8-dynamic (int8 per-channel weights, activations quantized per "
                            "call) or fp16", precisions=("int8-static",)),
            ),
        ),
        Format(
            name="coreml",
            title="Core ML",
            model_file="model.mlpackage",
            exporter="vitedge.converters.coreml.export:export_coreml",
            backend="vitedge.runtime.backends.coreml:CoreMLBackend",
            backend_modules=("coremltools",),
            install_extra="coreml",
            precisions=(
                PrecisionSupport("fp32", FP32_TOLERANCE, "ML program, fp32 compute; iOS16+"),
                PrecisionSupport("fp16", COREML_FP16_TOLERANCE, "fp16 compute for GPU and Neural Engine; iOS16+"),
                PrecisionSupport("int8-weight", COREML_8BIT_TOLERANCE, "per-channel symmetric; fp16 compute; iOS16+"),
                PrecisionSupport("int4-weight", COREML_4BIT_TOLERANCE, "symmetric, a scale per block of 32; fp16 compute; iOS18+"),
                PrecisionSupport("palettize4", COREML_4BIT_TOLERANCE, "k-means, a table per 16 output channels; fp16 compute; iOS18+"),
                PrecisionSupport("palettize6", COREML_8BIT_TOLERANCE, "k-means, a table per tensor; fp16 compute; iOS16+"),
            ),
            notes="Core ML on macOS, iOS, iPadOS (Apple only); converts and validates by simulation anywhere",
            options=("input_type", "target", "keep_float", "token_merging"),
            runtime_systems=("Darwin",),
            validator="vitedge.converters.coreml.validate:validate_coreml",
            intermediates="vitedge.converters.coreml.diagnose:coreml_intermediates",
            placement="vitedge.runtime.placement.coreml:coreml_placement",
            # MobileViT V2 converts (fp32 tested: tests/test_families.py); fp16 compute alone moves its chaotic
            # random-init test model past the fp16 tolerance (embedding cosine 0.997), so it is not listed, and each
            # conversion's own validation judges the reduced precisions.
            families=(*CORE_FAMILIES, "beit", "dinov2", "swin", "swinv2", "mobilevit"),
            unsupported=(
                # Test MobileViT: palettize6 min embedding cosine 0.972 (int8-weight 0.999, palettize4 0.949 under
                # the 4-bit floor): BatchNorm folds a different scale into each output channel of a convolution.
                Unsupported(("mobilevit", "mobilevitv2"), "one 64-entry table per tensor cannot fit its convolutions, "
                            "whose folded BatchNorm scales differ per output channel",
                            "use --precision int8-weight or palettize4 (a table per 16 output channels)",
                            precisions=("palettize6",)),
            ),
        ),
        Format(
            name="openvino",
            title="OpenVINO",
            model_file="model.xml",
            exporter="vitedge.converters.openvino.export:export_openvino",
            backend="vitedge.runtime.backends.openvino:OpenVINOBackend",
            backend_modules=("openvino",),
            install_extra="openvino",
            precisions=(
                PrecisionSupport("fp32", FP32_TOLERANCE, "f32 compute, pinned; dynamic batch"),
                PrecisionSupport("bf16", OPENVINO_FLOAT16_TOLERANCE, "the fp32 IR; f32 on other devices, with a warning"),
                PrecisionSupport("fp16", OPENVINO_FLOAT16_TOLERANCE, "f16 compute on GPUs and NPUs, f32 on CPUs without fp16"),
                PrecisionSupport("int8-static", OPENVINO_INT8_STATIC_TOLERANCE,
                                 "nncf.quantize, transformer preset with SmoothQuant; float ops in bf16 where the CPU has it, else f32"),
                PrecisionSupport("int8-weight", OPENVINO_INT8_WEIGHT_TOLERANCE,
                                 "nncf.compress_weights, per-channel asymmetric; int8 GEMMs on CPUs: the plugin quantizes "
                                 "activations at run time (dynamic quantization, groups of 32)"),
                PrecisionSupport("int4-weight", OPENVINO_INT4_TOLERANCE,
                                 "nncf.compress_weights, symmetric groups of 32, int8 patch embedding and head; int8 GEMMs "
                                 "on CPUs (activations quantized at run time, as int8-weight)"),
            ),
            notes="OpenVINO on Linux, Windows, macOS: x86 and ARM CPUs, Intel GPUs and NPUs (--device)",
            options=("calibration", "calibration_samples", "max_accuracy_drop", "keep_float", "token_merging"),
            devices=("CPU", "GPU", "NPU", "AUTO"),
            intermediates="vitedge.converters.openvino.diagnose:openvino_intermediates",
            placement="vitedge.runtime.placement.openvino:openvino_placement",
            families=(*CORE_FAMILIES, "beit", "dinov2", "swin", "swinv2", "mobilevit", "mobilevitv2"),
            unsupported=(
                Unsupported(("mobilevitv2",), "int8 activations into its convolutions (its attention and MLP are 1x1 "
                            "convolutions) lose its outputs (a trained MobileViT V2: min logits cosine 0.37)",
                            "use --precision int8-weight (int8 weights, float activations) or fp16",
                            precisions=("int8-static",)),
                Unsupported(("mobilevitv2",), "NNCF compresses convolution weights to int8 only, and every MobileViT V2 "
                            "layer but its classifier is a convolution (int4-weight would be int8-weight)",
                            "use --precision int8-weight", precisions=("int4-weight",)),
            ),
        ),
        Format(
            name="executorch",
            title="ExecuTorch",
            model_file="model.pte",
            exporter="vitedge.converters.executorch.export:export_executorch",
            backend="vitedge.runtime.backends.executorch:ExecuTorchBackend",
            backend_modules=("executorch",),
            install_extra="executorch",
            precisions=(
                PrecisionSupport("fp32", FP32_TOLERANCE, "XNNPACK delegate, bmm attention, batch 1"),
                PrecisionSupport("int8-dynamic", EXECUTORCH_INT8_DYNAMIC_TOLERANCE,
                                 "XNNPACKQuantizer per-channel, every Linear; the CPU default"),
                PrecisionSupport("int8-static", EXECUTORCH_INT8_STATIC_TOLERANCE,
                                 "XNNPACKQuantizer per-channel, Linear inputs calibrated"),
            ),
            notes="ExecuTorch's Python runtime (needs torch) on Linux, macOS; the same .pte runs in its C++ "
                  "runtime on Android, iOS and embedded Linux",
            options=("calibration", "calibration_samples", "keep_float", "token_merging"),
            runtime_requires=("torch",),
            intermediates="vitedge.converters.executorch.diagnose:executorch_intermediates",
            placement="vitedge.runtime.placement.executorch:executorch_placement",
            families=(*CORE_FAMILIES, "beit", "dinov2", "swin", "swinv2", "mobilevit", "mobilevitv2"),
            unsupported=(
                Unsupported(("mobilevitv2",), "its attention and MLP are 1x1 convolutions, and XNNPACK's dynamically "
                            "quantized convolution fails at run time (\"Propagating input shapes failed\")",
                            "use --precision fp32, or --to openvino --precision int8-weight for int8 weights",
                            precisions=("int8-dynamic",)),
                Unsupported(("mobilevitv2",), "int8 activations into its convolutions (its attention and MLP are 1x1 "
                            "convolutions) lose its outputs (a trained MobileViT V2: min logits cosine 0.83)",
                            "use --precision fp32, or --to openvino --precision int8-weight for int8 weights",
                            precisions=("int8-static",)),
            ),
        ),
    )
}


def get_format(name: str) -> Format:
    """Look a format up by name; a UsageError lists the valid names and the closest match."""
    try:
        return FORMATS[name.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown format {name!r}{did_you_mean(name, FORMATS)}",
            hint=f"choose one of: {', '.join(FORMATS)}",
        ) from None


def get_precision(name: str) -> Precision:
    """Look a precision up by name, with a close-match suggestion on a typo."""
    try:
        return PRECISIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown precision {name!r}{did_you_mean(name, PRECISIONS)}",
            hint=f"choose one of: {', '.join(PRECISIONS)}",
        ) from None


def load_entry_point(dotted: str):
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = dotted.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)
