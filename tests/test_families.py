"""The model families beyond ViT: adapters, presets, and every (format, family) the registry claims.

Each family's tiny preset keeps its ops (relative position bias, LayerScale and interpolated position
embeddings, shifted windows, unfold/fold) at a size that converts in seconds. The conversion cases
come from the registry (``Format.families``), at fp32 and the format's first int8 precision, each
converted once per session; refusals come from ``Format.unsupported``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA
from vitedge.cli import main
from vitedge.converters.presets import PRESETS
from vitedge.errors import UsageError
from vitedge.formats import CORE_FAMILIES, FAMILIES, FORMATS
from vitedge.runtime import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.preprocess import preprocess_batch

torch = pytest.importorskip("torch")

NEW_FAMILIES = [family for family in FAMILIES if family not in CORE_FAMILIES]
PHOTOS = [DATA / "astronaut.jpg", DATA / "chelsea.jpg", DATA / "coffee.png"]


def _tiny(family: str) -> str:
    return f"preset:{family}-tiny-test"


@pytest.fixture(scope="module")
def sources():
    from vitedge.converters.loading import load_source

    cache: dict = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_source(_tiny(family))
        return cache[family]

    return get


def _photos(source) -> np.ndarray:
    return preprocess_batch([load_rgb(path) for path in PHOTOS], source.preprocess)


# -- adapters: (logits, embedding) as transformers computes them ----------------------------------------


def _expected_embedding(model, family: str, pixels):
    base = getattr(model, model.base_model_prefix)(pixels)
    if family == "dinov2":  # the classifier reads [CLS] + mean of the patch tokens
        hidden = base.last_hidden_state
        return torch.cat([hidden[:, 0], hidden[:, 1:].mean(1)], dim=1)
    if family == "beit":  # mean of the patch tokens, then the pooler's LayerNorm
        return model.beit.pooler.layernorm(base.last_hidden_state[:, 1:].mean(1))
    return base.last_hidden_state.mean(dim=[-2, -1]) if family.startswith("mobilevit") else base.pooler_output


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_adapter_gives_the_classifiers_logits_and_its_input(family, sources):
    source = sources(family)
    pixels = torch.from_numpy(_photos(source))
    with torch.no_grad():
        expected_logits = source.model(pixel_values=pixels).logits
        logits, embedding = source.two_outputs()(pixels)
        expected_embedding = _expected_embedding(source.model, family, pixels)
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=0)
    torch.testing.assert_close(embedding, expected_embedding, rtol=1e-5, atol=1e-5)
    assert logits.std(0).max() > 1e-3, "random-init logits must differ between inputs for validation to mean anything"
    architecture = source.info.architecture
    assert architecture["model_type"] == family and architecture["embedding"]


# -- presets -------------------------------------------------------------------------------------------

PUBLISHED = {  # config.json values of the checkpoints the presets copy
    "beit-base-patch16-224": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                              "use_relative_position_bias": True, "use_mean_pooling": True, "patch_size": 16},
    "dinov2-small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "image_size": 518,
                     "patch_size": 14},
    "swin-tiny-patch4-window7-224": {"embed_dim": 96, "depths": [2, 2, 6, 2], "window_size": 7, "image_size": 224},
    "swinv2-tiny-patch4-window8-256": {"embed_dim": 96, "depths": [2, 2, 6, 2], "window_size": 8, "image_size": 256},
    "mobilevit-small": {"hidden_sizes": [144, 192, 240], "image_size": 256},
    "mobilevitv2-1.0-256": {"width_multiplier": 1.0, "image_size": 256},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_have_the_published_architecture(name):
    config = PRESETS[name].build_config()
    got = {key: list(value) if isinstance(value, tuple) else value
           for key, value in ((key, getattr(config, key)) for key in PUBLISHED[name])}
    assert got == PUBLISHED[name] and config.num_labels == 1000


def test_every_new_family_has_a_tiny_preset():
    assert {PRESETS[f"{family}-tiny-test"].model_type for family in NEW_FAMILIES} == set(NEW_FAMILIES)


# -- conversions the registry claims -------------------------------------------------------------------


def _first_int8(fmt) -> str | None:
    return next((name for name in fmt.precision_names if name.startswith("int8")), None)


def _conversion_params() -> list:
    return [
        pytest.param(fmt.name, family, precision, id=f"{fmt.name}-{family}-{precision}")
        for fmt in FORMATS.values()
        for family in fmt.families
        if family not in CORE_FAMILIES
        for precision in ("fp32", _first_int8(fmt))
        if precision and not any(entry.applies(family, precision) for entry in fmt.unsupported)
    ]


@pytest.mark.parametrize(("to", "family", "precision"), _conversion_params())
def test_family_converts_and_predicts_like_torch(to, family, precision, sources, tmp_path_factory):
    from vitedge.converters.pipeline import convert

    fmt = FORMATS[to]
    if not fmt.backend_installed() or not fmt.backend_supported_here():
        pytest.skip(f"the {fmt.title} backend cannot run here")
    source = sources(family)
    out = tmp_path_factory.mktemp("families") / f"{to}-{family}-{precision}"
    result = convert(source, to=to, out=out, precision=precision, validation_samples=4)
    assert result.validation.passed
    classifier = Classifier.open(out)
    assert classifier.manifest.source.architecture["embedding"] == source.info.architecture["embedding"]
    with torch.no_grad():
        logits, _ = source.two_outputs()(torch.from_numpy(_photos(source)))
    ours = classifier.run(_photos(source))["logits"]
    cosines = (ours * logits.numpy()).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(logits.numpy(), axis=1)
    assert cosines.min() > (0.9999 if precision == "fp32" else 0.99)


# -- refusals ------------------------------------------------------------------------------------------


def test_a_format_that_cannot_express_a_family_refuses_naming_the_op(tmp_path):
    from vitedge.converters.pipeline import convert

    with pytest.raises(UsageError, match=r"MobileViT V2 cannot be converted to ONNX: .*col2im") as error:
        convert(_tiny("mobilevitv2"), to="onnx", out=tmp_path / "out")
    assert "--exporter dynamo --opset 18" in error.value.hint
    assert not (tmp_path / "out").exists()


def test_cli_refusal_is_one_line(tmp_path, capsys):
    code = main(["convert", _tiny("dinov2"), "--to", "onnx", "--precision", "fp16", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "DINOv2 cannot be converted to ONNX at fp16" in err


def test_formats_shows_the_family_table(capsys):
    assert main(["formats", "--families"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["family", "model_type", *FORMATS]
    rows = {line.split()[-len(FORMATS) - 1]: line.split()[-len(FORMATS):] for line in lines[2:]}
    assert set(rows) == set(FAMILIES)
    for fmt_index, fmt in enumerate(FORMATS.values()):
        for family, cells in rows.items():
            assert cells[fmt_index] == fmt.family_status(family).split()[0]


def test_every_family_has_an_adapter_and_nothing_else_does():
    from vitedge.converters.adapters import supported_model_types

    assert set(supported_model_types()) == set(FAMILIES)


def test_readme_family_table_is_the_registry():
    from vitedge.render import families_rows, markdown_table

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("<!-- families-table")
    block = text[text.index("\n", start) + 1:text.index("<!-- /families-table -->")].strip()
    assert block == markdown_table(*families_rows()), "run `vitedge formats --families --markdown` and paste it"


@pytest.mark.parametrize("family", ["beit", "swin"])
def test_executorch_bmm_kernel_adds_the_bias_and_masks_like_eager(family, sources):
    from vitedge.converters.executorch.attention import KERNEL, attention_kernel

    source = sources(family)
    module = source.two_outputs()
    pixels = torch.from_numpy(_photos(source))
    with torch.no_grad(), attention_kernel(source.model, "eager"):
        eager = module(pixels)
    with torch.no_grad(), attention_kernel(source.model, KERNEL):
        rewritten = module(pixels)
    for a, b in zip(eager, rewritten):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
