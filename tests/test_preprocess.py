"""Preprocessing parity with transformers' PIL-backend image processors, and reading their configs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitedge.converters.family_preprocess import family_spec, processor_config
from vitedge.converters.hf_preprocess import default_spec, load_spec, spec_from_processor
from vitedge.converters.presets import PRESETS
from vitedge.errors import ConversionError, ModelLoadError, UsageError
from vitedge.formats import FAMILIES
from vitedge.runtime.images import load_rgb
from vitedge.runtime.preprocess import preprocess, preprocess_batch, resized_size
from vitedge.runtime.preprocess_spec import PreprocessSpec

transformers = pytest.importorskip("transformers")

DATA = Path(__file__).parent / "data"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# (width, height): the photos' own sizes, odd ones, extreme aspect ratios, 1x1, smaller than a crop.
SIZES = [
    (341, 227),
    (200, 300),
    (333, 517),
    (17, 1000),
    (1000, 17),
    (1, 1),
    (100, 60),
    (224, 224),
    (256, 256),
]


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """The test photos at every size in SIZES (RGB, as load_image gives them)."""
    sources = [load_rgb(DATA / name) for name in ("chelsea.jpg", "astronaut.jpg", "coffee.png")]
    return [
        sources[index % len(sources)].resize(size, Image.Resampling.BICUBIC)
        for index, size in enumerate(SIZES)
    ]


def _processor(kind: str, **options):
    return getattr(transformers, f"{kind}ImageProcessorPil")(**options)


IMAGENET = {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}
PROCESSORS = {
    "vit-224": lambda: _processor("ViT"),
    "vit-384": lambda: _processor("ViT", size={"height": 384, "width": 384}),
    "vit-32-bicubic": lambda: _processor("ViT", size={"height": 32, "width": 32}, resample=3),
    "vit-48x64-nearest": lambda: _processor("ViT", size={"height": 48, "width": 64}, resample=0),
    "vit-lanczos": lambda: _processor("ViT", size={"height": 64, "width": 64}, resample=1),
    "vit-box": lambda: _processor("ViT", size={"height": 64, "width": 64}, resample=4),
    "vit-hamming": lambda: _processor("ViT", size={"height": 64, "width": 64}, resample=5),
    "vit-no-resize": lambda: _processor("ViT", do_resize=False),
    "vit-no-normalize": lambda: _processor("ViT", do_normalize=False),
    "vit-no-rescale": lambda: _processor("ViT", do_rescale=False),
    "vit-raw": lambda: _processor("ViT", do_rescale=False, do_normalize=False),
    "deit": lambda: _processor("DeiT", **IMAGENET),  # 256x256 bicubic, crop 224
    "beit": lambda: _processor("Beit"),
    "beit-crop": lambda: _processor("Beit", do_center_crop=True, crop_size={"height": 200, "width": 180}),
    "shortest-256-crop-224": lambda: _processor("Bit", size={"shortest_edge": 256}, **IMAGENET),
    "shortest-64-no-crop": lambda: _processor("Bit", size={"shortest_edge": 64}, do_center_crop=False),
    "crop-only-odd": lambda: _processor("Bit", do_resize=False, crop_size={"height": 301, "width": 99}),
    "convnext-224": lambda: _processor("ConvNext", size={"shortest_edge": 224}, crop_pct=0.875),
    "convnext-384-warp": lambda: _processor("ConvNext", size={"shortest_edge": 384}),
    "siglip-not-listed-but-standard": lambda: _processor("Siglip"),
    "mobilevit": lambda: _processor("MobileViT", size={"shortest_edge": 288}, resample=2),  # RGB -> BGR
    "mobilevit-no-flip-odd-crop": lambda: _processor("MobileViT", do_flip_channel_order=False,
                                                     crop_size={"height": 63, "width": 97}),
}


@pytest.mark.parametrize("kind", sorted(PROCESSORS))
def test_preprocess_matches_transformers(kind, photos):
    processor = PROCESSORS[kind]()
    spec = spec_from_processor(processor)
    for image in photos:
        expected = processor(image, return_tensors="np")["pixel_values"][0]
        ours = preprocess(image, spec)
        assert ours.dtype == np.float32
        assert ours.shape == expected.shape, f"{kind} on {image.size}"
        np.testing.assert_array_equal(ours, expected, err_msg=f"{kind} on {image.size}")


# Every family's processor (the one `vitedge finetune` writes for a preset or config.json start: MobileViT's with its
# BGR flip and no normalization, BiT's for DINOv2, BEiT's, DeiT's, ViT's for Swin) in every resize mode, with and
# without a center crop, at the family's filter and statistics.
FAMILY_RESIZES = {
    "exact": {"resize_mode": "exact", "size": (48, 40), "shortest_edge": None},
    "shortest_edge": {"resize_mode": "shortest_edge", "size": None, "shortest_edge": 48},
    "none": {"resize_mode": "none", "size": None, "shortest_edge": None},
}


@pytest.mark.parametrize("crop", [None, (40, 36)], ids=["no-crop", "crop"])
@pytest.mark.parametrize("resize", sorted(FAMILY_RESIZES))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_processors_match_transformers_in_every_resize_mode(family, resize, crop, photos):
    spec = dataclasses.replace(family_spec(family, 40), crop_size=crop, **FAMILY_RESIZES[resize])
    config = processor_config(spec, family)
    processor = _processor(config.pop("image_processor_type").removesuffix("ImageProcessor"), **config)
    assert spec_from_processor(processor) == spec
    for image in photos:
        expected = processor(image, return_tensors="np")["pixel_values"][0]
        np.testing.assert_array_equal(preprocess(image, spec), expected, err_msg=f"{family} {resize} on {image.size}")


def test_batch_matches_transformers(photos):
    processor = PROCESSORS["deit"]()
    expected = processor(photos, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(preprocess_batch(photos, spec_from_processor(processor)), expected)


@pytest.mark.parametrize(
    ("width", "height", "shortest_edge", "expected"),
    [
        (341, 227, 256, (384, 256)),
        (227, 341, 256, (256, 384)),
        (17, 1000, 256, (256, 15058)),
        (5, 5, 3, (3, 3)),
    ],
)
def test_shortest_edge_rounding(width, height, shortest_edge, expected):
    spec = PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=shortest_edge)
    assert resized_size(width, height, spec) == expected


def test_layout_channel_order_and_normalization_in_model(photos):
    image = photos[0]
    nchw = preprocess(image, PreprocessSpec())
    np.testing.assert_array_equal(preprocess(image, PreprocessSpec(layout="NHWC")), nchw.transpose(1, 2, 0))
    np.testing.assert_array_equal(preprocess(image, PreprocessSpec(channel_order="BGR")), nchw[::-1])
    raw = preprocess(image, PreprocessSpec(normalization_in_model=True))
    np.testing.assert_array_equal(
        raw, np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    )
    assert raw.flags.c_contiguous and nchw.flags.c_contiguous


def test_non_rgb_input_is_converted(photos):
    grey = photos[0].convert("L")
    np.testing.assert_array_equal(
        preprocess(grey, PreprocessSpec()), preprocess(grey.convert("RGB"), PreprocessSpec())
    )


def test_batch_shapes_and_errors(photos):
    assert preprocess_batch(photos[:2], PreprocessSpec()).shape == (2, 3, 224, 224)
    assert preprocess_batch([], PreprocessSpec(layout="NHWC")).shape == (0, 224, 224, 3)
    varying = PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=32)
    with pytest.raises(UsageError, match="different sizes"):
        preprocess_batch(photos[:2], varying)
    with pytest.raises(UsageError):
        preprocess_batch([], varying)


# -- reading processors and preprocessor_config.json ------------------------------------------------

# The preprocessor_config.json files of the real hub models (as published), and the spec each gives.
CONFIGS = {
    "google/vit-base-patch16-224": (
        {
            "do_normalize": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "resample": 2,
            "size": 224,
            "feature_extractor_type": "ViTFeatureExtractor",
        },
        default_spec(224),
    ),
    "facebook/deit-base-distilled-patch16-224": (
        {
            "crop_size": 224,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "DeiTFeatureExtractor",
            "image_mean": IMAGENET_MEAN,
            "image_std": IMAGENET_STD,
            "resample": 3,
            "size": 256,
        },
        PreprocessSpec(
            size=(256, 256),
            resample="bicubic",
            crop_size=(224, 224),
            mean=tuple(IMAGENET_MEAN),
            std=tuple(IMAGENET_STD),
        ),
    ),
    "microsoft/beit-base-patch16-224": (
        {
            "crop_size": 224,
            "do_center_crop": False,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "BeitFeatureExtractor",
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "reduce_labels": False,
            "resample": 2,
            "size": 224,
        },
        default_spec(224),
    ),
    "facebook/dinov2-base": (
        {
            "crop_size": {"height": 224, "width": 224},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": IMAGENET_MEAN,
            "image_processor_type": "BitImageProcessor",
            "image_std": IMAGENET_STD,
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": 256},
        },
        PreprocessSpec(
            resize_mode="shortest_edge",
            size=None,
            shortest_edge=256,
            resample="bicubic",
            crop_size=(224, 224),
            mean=tuple(IMAGENET_MEAN),
            std=tuple(IMAGENET_STD),
        ),
    ),
}


# The other families' published preprocessor_config.json files: each must give its preset's spec.
_SWIN = {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
         "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": 3}
_MOBILEVIT = {"crop_size": 256, "do_center_crop": True, "do_flip_channel_order": True, "do_resize": True,
              "feature_extractor_type": "MobileViTFeatureExtractor", "resample": 2, "size": 288}
FAMILY_CONFIGS = {
    "beit-base-patch16-224": CONFIGS["microsoft/beit-base-patch16-224"][0],
    "dinov2-small": CONFIGS["facebook/dinov2-base"][0],
    "swin-tiny-patch4-window7-224": {**_SWIN, "size": 224},
    "swinv2-tiny-patch4-window8-256": {**_SWIN, "size": 256},
    "mobilevit-small": _MOBILEVIT,
    "mobilevitv2-1.0-256": {**_MOBILEVIT, "image_processor_type": "MobileViTImageProcessor"},
}
CONFIGS.update({f"preset:{name}": (config, PRESETS[name].preprocess()) for name, config in FAMILY_CONFIGS.items()})


def _model_folder(tmp_path: Path, config: dict) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("model", sorted(CONFIGS))
def test_load_spec_of_real_configs(model, tmp_path, photos):
    config, expected_spec = CONFIGS[model]
    folder = _model_folder(tmp_path, config)
    spec, raw = load_spec(folder, image_size=999)
    assert spec == expected_spec
    assert raw == config
    # and the spec reproduces the processor transformers loads from that folder (PIL backend)
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    for image in photos:
        expected = processor(image, return_tensors="np")["pixel_values"][0]
        np.testing.assert_array_equal(preprocess(image, spec), expected, err_msg=f"{model} on {image.size}")


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None,
    reason="with torchvision, AutoImageProcessor picks it",
)
def test_auto_image_processor_without_torchvision_is_the_pil_one(tmp_path):
    folder = _model_folder(tmp_path, CONFIGS["facebook/deit-base-distilled-patch16-224"][0])
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "DeiTImageProcessorPil"


def test_missing_config_gives_the_default(tmp_path):
    spec, raw = load_spec(tmp_path, image_size=384)
    assert spec == default_spec(384) and raw == {}
    assert spec.output_size == (384, 384) and spec.resample == "bilinear"
    assert spec.rescale_factor == 1 / 255 and spec.mean == spec.std == (0.5, 0.5, 0.5)


def test_default_spec_matches_vit_image_processor_defaults(photos):
    processor = _processor("ViT")
    assert spec_from_processor(processor) == default_spec(224)


def test_broken_config_is_a_model_load_error(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="preprocessor_config.json"):
        load_spec(folder, image_size=224)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: _processor("ViT", size={"longest_edge": 224}), "longest_edge"),
        (lambda: _processor("ViT", size={"shortest_edge": 224, "longest_edge": 448}), "longest_edge"),
        (lambda: _processor("ViT", size={"max_height": 224, "max_width": 224}), "max_height"),
        (lambda: _processor("ViT", do_pad=True, pad_size={"height": 256, "width": 256}), "do_pad"),
        (
            lambda: _processor("ConvNext", size={"shortest_edge": 224}, do_center_crop=True, crop_size=200),
            "crop_pct",
        ),
        (lambda: _processor("PoolFormer"), "PoolFormerImageProcessorPil"),
    ],
    ids=[
        "longest-edge",
        "shortest-and-longest",
        "max-height-width",
        "pad",
        "convnext-double-crop",
        "custom-pipeline",
    ],
)
def test_unreproducible_processors_are_refused(make, named):
    with pytest.raises(ConversionError, match=named):
        spec_from_processor(make())


def test_unreproducible_config_is_refused_by_load_spec(tmp_path):
    folder = _model_folder(
        tmp_path, {"image_processor_type": "ViTImageProcessor", "size": {"longest_edge": 224}}
    )
    with pytest.raises(ConversionError, match="longest_edge"):
        load_spec(folder, image_size=224)


def test_resample_given_as_enum_or_int():
    enum = transformers.image_utils.PILImageResampling.BICUBIC
    assert spec_from_processor(_processor("ViT", resample=enum)).resample == "bicubic"
    assert spec_from_processor(_processor("ViT", resample=int(enum))).resample == "bicubic"
