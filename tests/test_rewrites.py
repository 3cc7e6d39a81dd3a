"""Export-time rewrites (vitedge.converters.rewrites): the model's own numbers, taken off after the export."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vitedge.converters.rewrites import apply_rewrites, export_rewrites, rewritten_export  # noqa: E402

#: The rewrites each family's tiny preset gets (ViT and DeiT need none).
EXPECTED = {
    "vit": (),
    "beit": ("relative-position-index-constant",),
    "dinov2": ("position-table-at-export-size",),
    "swin": ("window-attention-constants",),
    "swinv2": ("window-attention-constants",),
    "mobilevit": (),
    "mobilevitv2": ("mobilevitv2-attention-implicit-broadcast", "mobilevitv2-fold-as-reshape"),
}


@pytest.fixture(scope="module")
def sources():
    from vitedge.converters.loading import load_source

    cache: dict = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_source(f"preset:{family}-tiny-test")
        return cache[family]

    return get


def _state(model) -> tuple:
    own = tuple(sorted((name, key) for name, module in model.named_modules() for key in module.__dict__
                       if key in ("forward", "unfolding", "folding", "interpolate_pos_encoding", "get_attn_mask")))
    return tuple(model.state_dict()), tuple(name for name, _ in model.named_buffers()), own


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_rewrites_keep_the_models_numbers_and_come_off_after(family, sources):
    source = sources(family)
    module = source.two_outputs()
    pixels = torch.randn(2, 3, source.image_size, source.image_size, generator=torch.Generator().manual_seed(0))
    before = _state(source.model)
    with torch.no_grad():
        expected = module(pixels)
        with export_rewrites(source.model, source.image_size) as applied:
            rewritten = module(pixels)
        after = module(pixels)
    assert applied == EXPECTED[family]
    for ours, theirs in zip((*rewritten, *after), (*expected, *expected)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert _state(source.model) == before


def test_the_dinov2_table_is_a_constant_and_another_size_still_interpolates(sources):
    source = sources("dinov2")
    embeddings = source.model.dinov2.embeddings
    other = source.image_size + 8  # one patch more each way
    tokens = (other // source.model.config.patch_size) ** 2 + 1
    dummy = torch.zeros(1, tokens, source.model.config.hidden_size)
    with torch.no_grad():
        expected = embeddings.interpolate_pos_encoding(dummy, other, other)
        with export_rewrites(source.model, source.image_size):
            assert isinstance(embeddings.position_embeddings_at_export, torch.nn.Parameter)
            torch.testing.assert_close(embeddings.interpolate_pos_encoding(dummy, other, other), expected,
                                       rtol=0, atol=0)
            traced = torch.jit.trace(source.two_outputs(), torch.zeros(1, 3, source.image_size, source.image_size))
    assert "upsample_bicubic2d" not in str(traced.inlined_graph)


def test_applying_twice_to_a_copy_rewrites_nothing_more(sources):
    import copy

    source = sources("mobilevitv2")
    with export_rewrites(source.model, source.image_size):
        model = copy.deepcopy(source.model)
    assert apply_rewrites(model, source.image_size) == ()
    rewritten = next(m for m in model.modules() if type(m).__name__ == "MobileViTV2Layer")
    assert rewritten.folding.__self__ is rewritten  # bound to the copy, not to the source's module


def test_rewritten_export_records_the_rewrites_in_the_recipe(sources, tmp_path):
    from vitedge.converters.export_types import ExportedModel, ExportOptions
    from vitedge.runtime.manifest import InputSpec, OutputsSpec

    seen = {}

    def exporter(source, workdir, options):
        seen["rewritten"] = "interpolate_pos_encoding" in source.model.dinov2.embeddings.__dict__
        return ExportedModel(files=(), input=InputSpec("x", "NCHW", "float32", (1, 3, 32, 32), False),
                             outputs=OutputsSpec("logits", "embedding", 64, 10), recipe={"name": "test"})

    exported = rewritten_export(exporter, sources("dinov2"), tmp_path, ExportOptions())
    assert seen["rewritten"] and exported.recipe == {"name": "test", "rewrites": ["position-table-at-export-size"]}
    assert "interpolate_pos_encoding" not in sources("dinov2").model.dinov2.embeddings.__dict__

