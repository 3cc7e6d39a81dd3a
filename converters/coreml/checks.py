"""Check a Core ML package against its manifest without running it (so on Linux too).

The interface (input kind and size, outputs and their shapes, the classifier's outputs), the labels,
vitedge's metadata, the compute precision, the deployment target and the weight compression must all
be what the manifest says. :func:`vitedge.converters.coreml.validate.validate_coreml` adds every
problem found to the validation report, so a conversion with one fails and ``vitedge verify``
shows it.
"""

from __future__ import annotations

import json

from vitedge.converters.coreml.compat import TARGETS
from vitedge.converters.coreml.mlpackage import PackageSummary
from vitedge.runtime.manifest import Manifest

#: Core ML specification version of each deployment target (iOS16 is 7).
SPEC_VERSIONS = {target: 7 + index for index, target in enumerate(TARGETS)}
#: Scales, zero points and lookup tables may add this much to the nominal bits per weight.
OVERHEAD = 1.15


def nominal_bits(compression: dict) -> int:
    """Bits per weight a compression recipe asks for (``dtype`` int8/int4, or ``nbits``)."""
    return int(compression["nbits"]) if "nbits" in compression else int(compression["dtype"].removeprefix("int"))


def package_problems(package: PackageSummary, manifest: Manifest) -> list[str]:
    """What in ``package`` differs from ``manifest`` (empty when nothing does)."""
    recipe = manifest.conversion.recipe
    problems = []

    def expect(what: str, found, wanted) -> None:
        if found != wanted:
            problems.append(f"{what} is {found!r}, the manifest says {wanted!r}")

    image = manifest.preprocess.normalization_in_model
    model_input = package.inputs[0]
    height_width = manifest.input.shape[1:3] if manifest.input.layout == "NHWC" else manifest.input.shape[2:]
    expect("the package's inputs", len(package.inputs), 1)
    expect("the input", (model_input.name, model_input.kind), (manifest.input.name, "image" if image else "multiArray"))
    expect("the input size", model_input.shape[-2:], tuple(height_width))
    outputs = {o.name: o for o in package.outputs}
    classifier = recipe["classifier"]
    expect("the classifier outputs", (package.predicted_feature, package.predicted_probabilities),
           (classifier["label_output"], classifier["probabilities_output"]))
    for name, width in ((manifest.outputs.logits, manifest.outputs.num_classes),
                        (manifest.outputs.embedding, manifest.outputs.embedding_size)):
        expect(f"output {name!r}", outputs[name].shape if name in outputs else None, (1, width))
    labels = [manifest.labels[index] for index in sorted(manifest.labels)]
    expect("the labels", list(package.labels), labels)
    expect("the labels in the metadata", json.loads(package.user_defined.get("vitedge.labels", "null")), labels)
    expect("the precision in the metadata", package.user_defined.get("vitedge.precision"), manifest.precision)
    expect("the compute precision", sorted(package.compute_dtypes), [recipe["compute_precision"]])
    expect("the specification version", package.specification_version, SPEC_VERSIONS[recipe["minimum_deployment_target"]])
    compression = recipe.get("compression")
    if compression is None:
        expect("the compressed weights", len(package.compressed), 0)
    elif not package.compressed:
        problems.append("no weight is compressed, the manifest says " + compression["method"])
    else:
        bits = 16 * sum(w.stored_bits for w in package.compressed) / sum(w.dense_bits for w in package.compressed)
        wanted = nominal_bits(compression)  # dense_bits are fp16: 16 per weight
        if not wanted <= bits <= wanted * OVERHEAD:
            problems.append(f"compressed weights take {bits:.2f} bits each, the manifest's recipe {wanted}")
    return problems
