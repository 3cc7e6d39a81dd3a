"""Core ML: conversion per precision, the package's structure, image input folding, simulated validation.

Core ML runs models only on macOS. Everywhere the tests check what a conversion wrote (spec,
interface, labels, metadata, compute precision, compressed weights) and the simulated validation;
the tests that run the model itself are skipped elsewhere, saying why. What every format owes (the
manifest, validation, the runtime's refusal off macOS, tampering, verify) is checked for each precision
by tests/test_conformance.py, on the same session-wide conversions.
"""

from __future__ import annotations

import dataclasses
import json
import platform

import numpy as np
import pytest
import torch

from tests.conftest import TINY_LABELS, write_tiny_folder
from vitedge._version import __version__
from vitedge.cli import main
from vitedge.converters import ExportOptions, convert, load_source
from vitedge.converters.coreml.checks import package_problems
from vitedge.converters.coreml.compat import TARGETS
from vitedge.converters.coreml.export import CLASS_LABEL, CLASS_PROBS, coreml_module
from vitedge.converters.coreml.image import ImageInputPlan
from vitedge.converters.coreml.mlpackage import read_package
from vitedge.converters.coreml.quantize import RECIPES
from vitedge.converters.coreml.simulate import load_package_weights
from vitedge.errors import ConversionError, UsageError
from vitedge.formats import FORMATS
from vitedge.runtime import Classifier
from vitedge.runtime.manifest import read_manifest
from vitedge.runtime.preprocess_spec import PreprocessSpec

COREML = FORMATS["coreml"]
ON_MAC = platform.system() == "Darwin"
needs_macos = pytest.mark.skipif(
    not ON_MAC, reason=f"Core ML runs models only on macOS, not {platform.system()}; the simulated validation stands in here"
)
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
#: Nominal stored bits per weight of each compression (scales, zero points, tables come on top).
NOMINAL_BITS = {"int8-weight": 8, "int4-weight": 4, "palettize4": 4, "palettize6": 6}


def _slow_if_palettized(precision: str):
    """k-means palettization of small tensors runs scikit-learn per group: seconds each."""
    method = RECIPES[precision].method
    return pytest.param(precision, marks=pytest.mark.slow) if method == "palettize_weights" else precision


PRECISION_PARAMS = [_slow_if_palettized(p) for p in COREML.precision_names]


@pytest.fixture(scope="session")
def coreml_artifact(artifact_of):
    """``make(precision)``: the tiny model converted to Core ML at that precision (once per session)."""
    return lambda precision: artifact_of("coreml", precision)


@pytest.fixture(scope="session")
def imagenet_folder(tmp_path_factory):
    processor = {
        "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 32, "width": 32},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, **IMAGENET,
    }
    return write_tiny_folder(tmp_path_factory.mktemp("models") / "tiny-imagenet", processor=processor)


@pytest.fixture(scope="session")
def image_artifact(imagenet_folder, tmp_path_factory):
    """ImageNet statistics, an image input and a newer target, converted through the CLI."""
    out = tmp_path_factory.mktemp("coreml") / "image-fp16"
    code = main(["convert", str(imagenet_folder), "--to", "coreml", "--precision", "fp16", "--input-type", "image",
                 "--target", "iOS17", "--validation-samples", "16", "--out", str(out)])
    assert code == 0
    return out


def test_every_registry_precision_has_a_recipe_and_says_its_target():
    assert set(RECIPES) == set(COREML.precision_names)
    for support in COREML.precisions:
        assert f"{RECIPES[support.precision].minimum_target}+" in support.note
    assert COREML.runtime_systems == ("Darwin",) and COREML.validator


@pytest.mark.parametrize("precision", PRECISION_PARAMS)
def test_package_is_what_the_manifest_says(coreml_artifact, precision):
    folder = coreml_artifact(precision)
    manifest = read_manifest(folder)
    recipe = RECIPES[precision]
    on_disk = sorted(str(p.relative_to(folder)) for p in (folder / "model.mlpackage").rglob("*") if p.is_file())
    assert [entry.path for entry in manifest.files] == on_disk
    package = read_package(folder / manifest.model_file)
    (model_input,) = package.inputs
    assert (model_input.name, model_input.kind, model_input.shape, model_input.detail) == (
        manifest.input.name, "multiArray", (1, 3, 32, 32), "FLOAT32")
    assert manifest.input.shape == (1, 3, 32, 32) and manifest.input.layout == "NCHW"
    assert [o.name for o in package.outputs] == [CLASS_LABEL, CLASS_PROBS, manifest.outputs.logits, manifest.outputs.embedding]
    assert package.feature(manifest.outputs.logits).shape == (1, len(TINY_LABELS))
    assert package.feature(manifest.outputs.embedding).shape == (1, manifest.outputs.embedding_size)
    assert package.feature(CLASS_PROBS).kind == "dictionary" and package.feature(CLASS_LABEL).kind == "string"
    assert (package.predicted_feature, package.predicted_probabilities) == (CLASS_LABEL, CLASS_PROBS)
    assert manifest.conversion.recipe["classifier"]["probabilities_output"] == CLASS_PROBS
    assert package.labels == TINY_LABELS == tuple(manifest.labels[i] for i in range(len(TINY_LABELS)))
    assert package.author == f"vitedge {__version__}" and precision in package.short_description
    assert json.loads(package.user_defined["vitedge.labels"]) == list(TINY_LABELS)
    assert package.user_defined["vitedge.precision"] == precision
    assert package.compute_dtypes == {recipe.compute_precision}
    assert package.specification_version == 7 + TARGETS.index(recipe.minimum_target)  # iOS16 is spec 7
    assert manifest.conversion.recipe["minimum_deployment_target"] == recipe.minimum_target
    assert package.input_affine == ()  # a MultiArray input takes normalized floats as they are
    assert package_problems(package, manifest) == []


@pytest.mark.parametrize("precision", [_slow_if_palettized(p) for p in NOMINAL_BITS])
def test_weights_are_compressed_as_asked(coreml_artifact, tiny_folder, precision):
    package = read_package(coreml_artifact(precision) / "model.mlpackage")
    encoder_linears = [name for name, p in load_source(str(tiny_folder)).model.named_parameters()
                       if name.startswith("vit.layers.") and name.endswith("weight") and p.ndim == 2]
    assert len(encoder_linears) == 12
    compressed = {w.name for w in package.compressed}
    for name in encoder_linears:
        assert any(name.replace(".", "_") in op_name for op_name in compressed), f"{name} is not compressed"
    fp32_bits = 2 * sum(w.dense_bits for w in package.compressed)  # dense_bits are fp16
    ratio = sum(w.stored_bits for w in package.compressed) / fp32_bits
    nominal = NOMINAL_BITS[precision] / 32  # int8: 1/4, 4-bit: 1/8 of the fp32 bytes
    assert nominal <= ratio <= nominal * 1.15, f"{ratio:.4f} of fp32 (nominal {nominal:.4f})"


def test_package_checks_catch_a_manifest_that_does_not_match(coreml_artifact):
    manifest = read_manifest(coreml_artifact("fp16"))
    package = read_package(coreml_artifact("fp16") / manifest.model_file)
    recipe = {**manifest.conversion.recipe, "compute_precision": "fp32",
              "compression": {"method": "coremltools.optimize.coreml.palettize_weights", "nbits": 4}}
    lying = dataclasses.replace(manifest, labels={0: "zebra", **{i: label for i, label in enumerate(TINY_LABELS) if i}},
                                conversion=dataclasses.replace(manifest.conversion, recipe=recipe))
    problems = "\n".join(package_problems(package, lying))
    assert "the labels is ['apple'" in problems and "the compute precision is ['fp16']" in problems
    assert "no weight is compressed" in problems


def test_fp16_halves_the_weights_and_fp32_is_exact(coreml_artifact):
    def weight_bytes(precision):
        return sum(e.bytes for e in read_manifest(coreml_artifact(precision)).files if e.path.endswith("weight.bin"))

    assert 0.45 < weight_bytes("fp16") / weight_bytes("fp32") < 0.55
    report = read_manifest(coreml_artifact("fp32")).validation
    assert report.min_logits_cosine > 0.99999 and report.max_abs_diff_logits < 1e-4


@pytest.mark.skipif(ON_MAC, reason="on macOS the validation runs the model: nothing is simulated")
@pytest.mark.parametrize("precision", PRECISION_PARAMS)
def test_simulated_validation_says_so_and_names_the_compute_precision(coreml_artifact, precision):
    report = read_manifest(coreml_artifact(precision)).validation
    compute = RECIPES[precision].compute_precision
    assert f"simulated, as {platform.system()} cannot run Core ML" in report.inputs and compute in report.inputs


@pytest.mark.parametrize(("statistics", "folded"), [({"mean": (0.5,) * 3, "std": (0.5,) * 3}, False),
                                                    ({"mean": tuple(IMAGENET["image_mean"]),
                                                      "std": tuple(IMAGENET["image_std"])}, True)])
def test_image_input_plan_reproduces_the_normalization_in_torch(tiny_folder, statistics, folded):
    spec = PreprocessSpec(size=(32, 32), **statistics)
    plan = ImageInputPlan.for_spec(spec)
    if folded:
        assert plan.scale == pytest.approx(1 / 255) and plan.bias == pytest.approx(tuple(-m for m in spec.mean))
        assert plan.folded_std == pytest.approx(spec.std)
    else:
        assert plan.scale == pytest.approx(1 / 127.5) and plan.bias == (-1.0, -1.0, -1.0) and plan.folded_std is None
    source = load_source(str(tiny_folder))
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.float32)
    normalized = ((pixels / 255 - np.asarray(spec.mean)) / np.asarray(spec.std)).transpose(0, 3, 1, 2)
    with torch.no_grad():
        expected = source.two_outputs()(torch.from_numpy(normalized.astype(np.float32)))
        _, *got = coreml_module(source, plan)(torch.from_numpy(plan.network_input(pixels)))
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want, atol=2e-5, rtol=1e-4)


def test_image_input_package(image_artifact):
    manifest = read_manifest(image_artifact)
    package = read_package(image_artifact / manifest.model_file)
    (model_input,) = package.inputs
    assert (model_input.name, model_input.kind, model_input.shape, model_input.detail) == ("image", "image", (32, 32), "RGB")
    assert (manifest.input.name, manifest.input.layout, manifest.input.dtype) == ("image", "NHWC", "uint8")
    assert manifest.preprocess.normalization_in_model and manifest.preprocess.layout == "NHWC"
    image = manifest.conversion.recipe["input"]
    assert image["type"] == "image" and image["color_layout"] == "RGB"
    assert image["std_folded_into_patch_embedding"] == pytest.approx(IMAGENET["image_std"])
    scale, bias = package.input_affine  # Core ML's image scale and bias, once
    assert scale == ("mul", pytest.approx((image["scale"],))) and bias == ("add", pytest.approx(tuple(image["bias"])))
    assert package.specification_version == 8 and manifest.conversion.recipe["minimum_deployment_target"] == "iOS17"
    report = manifest.validation
    assert report.passed and report.simulated is not ON_MAC
    assert report.min_logits_cosine > 0.999 and report.top1_agreement == 1.0


def test_targets_and_input_types_are_checked(tiny_folder, tmp_path):
    def attempt(precision, **options):
        convert(str(tiny_folder), to="coreml", precision=precision, out=tmp_path / "x", options=ExportOptions(**options))

    with pytest.raises(UsageError, match="'int4-weight' needs --target iOS18 or newer, not iOS17"):
        attempt("int4-weight", target="iOS17")
    with pytest.raises(UsageError, match="unknown Core ML target 'ios17' \\(did you mean 'iOS17'\\?\\)"):
        attempt("fp16", target="ios17")
    with pytest.raises(UsageError, match="Core ML takes --input-type float or image"):
        attempt("fp16", input_type="uint8")
    with pytest.raises(UsageError, match="does not support precision 'int8-dynamic'"):
        attempt("int8-dynamic")
    with pytest.raises(UsageError, match="does not take the option\\(s\\) opset"):
        attempt("fp16", opset=18)
    assert not (tmp_path / "x").exists()


def test_unmappable_weight_stops_the_simulation(tiny_folder):
    module = coreml_module(load_source(str(tiny_folder)), None)
    with pytest.raises(ConversionError, match="cannot map the Core ML weight 'mystery_weight_to_fp16_quantized'"):
        load_package_weights(module, {"mystery_weight_to_fp16_quantized": np.zeros((4, 4), np.float16)})


class _FakeMLModel:
    """Stands in for coremltools' MLModel where Core ML cannot load models: records what it is fed."""

    def __init__(self, path, compute_units):
        self.path, self.compute_units, self.fed = path, compute_units, []

    def predict(self, data):
        batch = data if isinstance(data, list) else [data]
        self.fed += [next(iter(item.values())) for item in batch]
        outputs = [{"logits": np.full((1, 4), len(self.fed) + i, np.float32), "embedding": np.zeros((1, 64), np.float32),
                    CLASS_LABEL: "apple"} for i in range(len(batch))]
        return outputs if isinstance(data, list) else outputs[0]


@pytest.mark.parametrize("which", ["fp16", "image"])
def test_backend_feeds_core_ml_per_image_and_stacks_outputs(coreml_artifact, image_artifact, monkeypatch, which):
    from vitedge.runtime.backends import coreml as backend_module

    folder = image_artifact if which == "image" else coreml_artifact(which)
    manifest = read_manifest(folder)
    monkeypatch.setattr(backend_module.ct.models, "MLModel", _FakeMLModel)
    backend = backend_module.CoreMLBackend(folder / manifest.model_file, manifest, compute_units="CPU_AND_NE")
    assert backend._model.compute_units.name == "CPU_AND_NE" and backend.max_batch_size is None
    for batch_size in (1, 3):
        batch = np.random.default_rng(0).uniform(0, 255, (batch_size, *manifest.input.shape[1:])).astype(np.float32)
        outputs = backend.run(batch)
        assert outputs["logits"].shape == (batch_size, 4) and outputs["embedding"].shape == (batch_size, 64)
        fed = backend._model.fed[-batch_size:]
        if which == "image":  # an image input gets 8-bit RGB images of the model's size
            assert all(image.mode == "RGB" and image.size == (32, 32) for image in fed)
            np.testing.assert_array_equal(np.asarray(fed[0]), np.rint(batch[0]).astype(np.uint8))
        else:
            assert all(item.shape == (1, 3, 32, 32) and item.dtype == np.float32 for item in fed)
    with pytest.raises(UsageError, match="did you mean 'CPU_ONLY'"):
        backend_module.CoreMLBackend(folder / manifest.model_file, manifest, compute_units="CPU_ONL")


@needs_macos
@pytest.mark.parametrize("compute_units", ["CPU_ONLY", "ALL"])
def test_core_ml_runs_the_package_on_macos(coreml_artifact, tiny_folder, compute_units):
    from vitedge.converters.coreml.validate import validate_coreml
    from vitedge.runtime.backends.coreml import CoreMLBackend

    folder = coreml_artifact("fp16")
    manifest = read_manifest(folder)
    backend = CoreMLBackend(folder / manifest.model_file, manifest, compute_units=compute_units)
    results = Classifier(folder, manifest, backend).predict([np.zeros((40, 50, 3), np.uint8)] * 3, top_k=2)
    assert all(r.ok and r.top.label in TINY_LABELS for r in results)
    report = validate_coreml(folder, load_source(str(tiny_folder)), COREML.support("fp16").tolerance, samples=8)
    assert report.passed and not report.simulated


@needs_macos
def test_core_ml_image_input_runs_on_macos(image_artifact):
    assert main(["verify", str(image_artifact), "--samples", "8"]) == 0
    result = Classifier.open(image_artifact).predict(np.zeros((40, 50, 3), np.uint8))
    assert result.ok and result.top.label in TINY_LABELS
