"""ExecuTorch's diagnosis hooks: ``inspect --placement`` (XNNPACK subgraphs vs portable kernels) and ``--keep-float``."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("executorch")

import torch  # noqa: E402  (after the skip: executorch's tests need torch)

from vitedge.cli import main  # noqa: E402
from vitedge.converters.executorch.export import MODEL_PREFIX  # noqa: E402
from vitedge.converters.executorch.quantize import get_recipe, pt2e_quantize  # noqa: E402
from vitedge.converters.loading import load_source  # noqa: E402
from vitedge.runtime.manifest import read_manifest  # noqa: E402
from vitedge.runtime.placement.executorch import PORTABLE, XNNPACK, executorch_placement  # noqa: E402

KEPT = "vit.layers.0.mlp.fc1"


def test_placement_lists_the_xnnpack_subgraphs_and_the_light_ops_on_portable_kernels(artifact_of, capsys):
    artifact = str(artifact_of("executorch", "fp32"))
    assert main(["inspect", artifact, "--placement", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)
    manifest = read_manifest(artifact)
    subgraphs = [op for op in placement["ops"] if op["device"] == XNNPACK]
    assert len(subgraphs) == manifest.conversion.recipe["delegation"]["subgraphs"] > 0
    assert all(op["op_type"] == "XnnpackBackend" and op["precision"] == "fp32" for op in subgraphs)
    portable = {op["op_type"] for op in placement["ops"] if op["device"] == PORTABLE}
    assert "aten::native_layer_norm" not in portable and placement["fallbacks"] == 0  # rewritten for XNNPACK
    assert main(["inspect", artifact, "--placement", "--require-delegate"]) == 0
    assert "XNNPACK subgraph" in capsys.readouterr().out


def _program_with_undelegated_bmm() -> bytes:
    from executorch.backends.xnnpack.partition.config.gemm_configs import LinearConfig
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from tests.test_executorch import _bmm_module

    program = torch.export.export(*_bmm_module())
    partitioner = XnnpackPartitioner(configs=[LinearConfig])  # XNNPACK takes the Linear only
    return to_edge_transform_and_lower(program, partitioner=[partitioner]).to_executorch().buffer


def test_require_delegate_fails_on_a_matmul_left_to_a_portable_kernel(artifact_of, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "planted"
    shutil.copytree(artifact_of("executorch", "fp32"), folder)
    manifest = read_manifest(folder)
    (folder / manifest.model_file).write_bytes(_program_with_undelegated_bmm())
    fallbacks = executorch_placement(folder, manifest).fallbacks
    assert [op.op_type for op in fallbacks] == ["aten::bmm", "aten::bmm"]
    assert all(op.device == PORTABLE and "did not take" in op.reason for op in fallbacks)
    monkeypatch.setattr("vitedge.runtime.placement.verify_files", lambda folder, manifest: None)  # the file was swapped
    assert main(["inspect", str(folder), "--placement", "--require-delegate"]) == 3
    captured = capsys.readouterr()
    assert "aten::bmm" in captured.out and "--require-delegate" in captured.err


def _weight_dequantized(graph: torch.fx.GraphModule, module_path: str) -> bool:
    """Whether the linear of ``module_path`` reads a dequantized (int8) weight."""
    linears = [node for node in graph.graph.nodes if node.target == torch.ops.aten.linear.default
               and any(path == module_path for path, _ in node.meta.get("nn_module_stack", {}).values())]
    assert len(linears) == 1, module_path
    weight = linears[0].args[1]
    return "dequantize" in str(weight.target)


def test_keep_float_leaves_the_named_linear_in_float(tiny_folder):
    module = load_source(str(tiny_folder)).two_outputs().eval()
    sample = (torch.zeros(1, 3, 32, 32),)
    graph = pt2e_quantize(module, sample, get_recipe("xnnpack-dynamic-wi8"), None, (MODEL_PREFIX + KEPT,))
    assert not _weight_dequantized(graph, MODEL_PREFIX + KEPT)
    assert _weight_dequantized(graph, MODEL_PREFIX + "vit.layers.0.mlp.fc2"), "the others are still int8"


@pytest.mark.parametrize(("precision", "pattern", "message"), [
    ("int8-dynamic", "vit.layers.9", "names no quantized op of this model"),
    ("fp32", KEPT, "applies to reduced precisions"),
])
def test_a_bad_keep_float_is_one_line_before_the_conversion(tiny_folder, tmp_path, capsys, precision, pattern, message):
    out = tmp_path / "out"
    assert main(["convert", str(tiny_folder), "--to", "executorch", "--precision", precision,
                 "--keep-float", pattern, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_a_planted_fault_is_found_and_keep_float_on_the_named_op_restores_agreement(tmp_path):
    from tests.test_diagnose import FAULTY_BLOCK, write_faulty_folder
    from vitedge.converters import ExportOptions, convert
    from vitedge.converters.diagnose.engine import diagnose

    folder = write_faulty_folder(tmp_path / "vit-4")
    with pytest.warns(UserWarning, match="does not match the torch fp32 model"):
        faulty = convert(str(folder), to="executorch", precision="int8-dynamic", out=tmp_path / "int8",
                         validation_samples=4, accept_failed_validation=True)
    [found] = diagnose([faulty.path], str(folder), samples=8)
    assert found.culprit == f"block {FAULTY_BLOCK}"
    assert found.suggested_float_ops == (f"vit.layers.{FAULTY_BLOCK}.mlp.fc2",)
    fixed = convert(str(folder), to="executorch", precision="int8-dynamic", out=tmp_path / "fixed", validation_samples=4,
                    options=ExportOptions(keep_float=found.suggested_float_ops), accept_failed_validation=True)
    assert fixed.manifest.conversion.recipe["float_layers"] == list(found.suggested_float_ops)
    [after] = diagnose([fixed.path], str(folder), samples=8)
    assert f"vit.layers.{FAULTY_BLOCK}.mlp.fc2" not in after.quantized_ops
    before, now = (next(e for e in d.stats if e.tap == "logits") for d in (found, after))
    assert before.cosine < 0.9 and now.cosine > 0.999
