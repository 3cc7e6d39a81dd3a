"""Swin's and Swin V2's window-attention constants (vitedge.converters.rewrites.window_attention)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vitedge.converters.rewrites import export_rewrites  # noqa: E402

#: The ops transformers builds the shifted-window mask with: integer comparisons that ExecuTorch's quantizer
#: trips on ("Tensor dtype mismatch! Expected: Long") and XNNPACK does not take.
MASK_OPS = ("aten.ge.", "aten.ne.", "aten.masked_fill")


@pytest.fixture(scope="module", params=["swin", "swinv2"])
def source(request):
    from vitedge.converters.loading import load_source

    return load_source(f"preset:{request.param}-tiny-test")


def _graph_ops(module, size: int) -> str:
    program = torch.export.export(module, (torch.zeros(1, 3, size, size),))
    return "\n".join(str(node.target) for node in program.graph.nodes)


def test_the_export_graph_builds_no_mask_and_runs_no_position_mlp(source):
    module = source.two_outputs().eval()
    size = source.image_size
    assert any(op in _graph_ops(module, size) for op in MASK_OPS)  # the original builds its masks in the graph
    with export_rewrites(source.model, size):
        ops = _graph_ops(module, size)
        shifted = [m for m in source.model.modules() if getattr(m, "attention_mask_at_export", None) is not None]
    assert not any(op in ops for op in MASK_OPS)
    assert shifted, "the tiny preset has shifted windows, whose masks become buffers"
    if source.model.config.model_type == "swinv2":  # its position-bias MLP's Linear layers are gone from the graph
        assert ops.count("aten.linear") == len([m for n, m in source.model.named_modules()
                                                 if isinstance(m, torch.nn.Linear) and "position_bias" not in n])


def test_another_input_size_builds_its_own_masks(source):
    module = source.two_outputs().eval()
    pixels = torch.randn(1, 3, 2 * source.image_size, 2 * source.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with export_rewrites(source.model, source.image_size):
            rewritten = module(pixels)
        expected = module(pixels)
    for ours, theirs in zip(rewritten, expected):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
