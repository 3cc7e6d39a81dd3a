"""The demos' golden vectors (demo_golden/) are what the runtime writes today, and cover the cases they claim."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.golden_vectors import IMAGE_CASES, IMAGENET_MEAN, SELFCHECK_CASES, write_golden
from vitedge.runtime.manifest import Manifest

GOLDEN = Path(__file__).resolve().parents[1] / "demo_golden"


def _same_json(a, b, where: str) -> None:
    """Equal JSON, floats within 1e-7 (softmax scores go through exp(), which may differ in the last bit)."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            _same_json(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _same_json(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_committed_golden_vectors_match_a_fresh_run_of_the_runtime(tmp_path):
    write_golden(tmp_path)
    committed = sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file() and p.name != "README.md")
    fresh = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert committed == fresh, "regenerate: python -m tests.golden_vectors demo_golden"
    for name in fresh:
        if name.endswith(".json"):
            _same_json(json.loads((tmp_path / name).read_text("utf-8")), json.loads((GOLDEN / name).read_text("utf-8")), name)
        else:
            assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes(), (
                f"{name} drifted from the runtime; regenerate: python -m tests.golden_vectors demo_golden"
            )


def test_golden_manifests_are_valid_artifact_manifests():
    for manifest_path in GOLDEN.glob("*/*/manifest.json"):
        manifest = Manifest.from_dict(json.loads(manifest_path.read_text("utf-8")), where=str(manifest_path))
        assert manifest.schema == "vitedge.artifact/1"


def test_golden_set_covers_the_cases_the_demos_rely_on():
    cases = {name: json.loads((GOLDEN / "images" / name / "case.json").read_text("utf-8")) for name in
             json.loads((GOLDEN / "index.json").read_text("utf-8"))["images"]}
    specs = {case.name: case.spec for case in IMAGE_CASES}
    modes = {case["source"]["mode"] for case in cases.values()}
    assert {"RGB", "L", "RGBA"} <= modes
    assert {case["source"]["encoded_as"] for case in cases.values()} >= {"JPEG", "PNG"}
    assert {spec.resample for spec in specs.values()} == {"nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"}
    assert {spec.layout for spec in specs.values()} == {"NCHW", "NHWC"}
    assert any(spec.channel_order == "BGR" for spec in specs.values())
    assert any(spec.normalization_in_model for spec in specs.values())
    assert any(spec.resize_mode == "shortest_edge" and spec.crop_size for spec in specs.values())
    # the families' own steps: MobileViT (BGR, 1/255 without mean/std), DINOv2 (bicubic shortest edge + crop)
    selfchecks = [case.spec for case in SELFCHECK_CASES]
    for family_specs in (list(specs.values()), selfchecks):
        assert any(spec.channel_order == "BGR" and spec.mean is None and spec.rescale_factor for spec in family_specs)
    assert any(spec.resize_mode == "shortest_edge" and spec.resample == "bicubic" and spec.crop_size
               and spec.mean == IMAGENET_MEAN and spec.layout == "NCHW" for spec in specs.values())
    assert any(case["rgb"]["width"] >= 5 * case["rgb"]["height"] for case in cases.values())  # a panorama
    size = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert size < 2_500_000, f"demo_golden/ is {size} bytes; keep the committed set small"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case_name", "kind", "processor"),
    [
        ("vit_b16_chelsea_jpeg", "ViT", {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2}),
        ("deit_astronaut_jpeg", "DeiT", {"do_resize": True, "size": {"shortest_edge": 80}, "resample": 3,
                                         "do_center_crop": True, "crop_size": {"height": 64, "width": 64},
                                         "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}),
        ("dinov2_bicubic_shortest_crop", "Bit", {"size": {"shortest_edge": 73}, "crop_size": {"height": 64, "width": 64},
                                                 "image_mean": [0.485, 0.456, 0.406],
                                                 "image_std": [0.229, 0.224, 0.225]}),
        ("mobilevit_bgr_unnormalized", "MobileViT", {"size": {"shortest_edge": 72}, "resample": 2,
                                                     "crop_size": {"height": 40, "width": 40}}),
    ],
)
def test_golden_tensors_equal_hugging_face_image_processors(case_name, kind, processor):
    """The vectors the demos chase are Hugging Face's own preprocessing, not just ours."""
    transformers = pytest.importorskip("transformers")
    folder = GOLDEN / "images" / case_name
    case = json.loads((folder / "case.json").read_text("utf-8"))
    rgb = np.frombuffer((folder / "rgb.u8").read_bytes(), np.uint8).reshape(case["rgb"]["height"], case["rgb"]["width"], 3)
    expected = np.frombuffer((folder / "tensor.f32").read_bytes(), "<f4").reshape(case["tensor"]["shape"])
    image_processor = getattr(transformers, f"{kind}ImageProcessorPil")(**processor)
    actual = image_processor(Image.fromarray(rgb), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
