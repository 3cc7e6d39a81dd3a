"""Golden vectors for the mobile demos, written by the real runtime: ``python -m tests.golden_vectors OUT_DIR``.

The Android demo's pure-Kotlin core and the iOS demo's Swift core re-implement preprocessing
(Pillow's resampling included), manifest parsing and top-k. This module writes what they must
reproduce, from the same code :class:`~vitedge.runtime.Classifier` runs:

- ``images/<case>/``: a valid ``manifest.json`` (its ``preprocess`` block is the spec under test),
  ``rgb.u8`` (the decoded RGB pixels, H x W x 3, row-major: decoding the file is the platform's job,
  so the demos start from these), ``resized.u8`` (after the resize step, before the crop),
  ``tensor.f32`` (the input tensor, little-endian float32, in the manifest's layout, batch 1) and
  ``case.json`` describing them.
- ``topk/<case>/``: ``manifest.json`` (the labels), ``logits.f32`` and ``case.json`` with the
  top-5 that ``Classifier.predict`` returns (label, index, softmax score).
- ``selfcheck/<case>/``: an artifact-shaped folder whose self-check (``selfcheck/``: encoded PNG/JPEG
  images, reference tensor hashes and samples, reference outputs) is written by the same writer as every
  ``vitedge convert`` (:func:`vitedge.runtime.selfcheck_files.write_selfcheck`), so the demos' self-test
  and their golden tests read one format. There is no model: the outputs are fixed stand-ins.
- ``index.json``: the cases and the tolerances the demos' tests use.

The images are derived from the photos in ``tests/data`` (``--photos`` elsewhere). Torch free.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from vitedge.data.selfcheck_images import selfcheck_images
from vitedge.formats import FP32_TOLERANCE, TFLITE_INT8_DYNAMIC_TOLERANCE, Tolerance
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import (
    ConversionInfo,
    FileEntry,
    InputSpec,
    Manifest,
    OutputsSpec,
    SourceInfo,
)
from vitedge.runtime.preprocess import _PIL_FILTERS, preprocess, resized_size
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.runtime.selfcheck import run_selfcheck
from vitedge.runtime.selfcheck_files import tensor_sha256, write_selfcheck

GOLDEN_SCHEMA = "vitedge.golden/1"
TOP_K = 5
TOLERANCE = {"tensor_abs": 1e-5, "score_abs": 1e-6}
"""What the demos' tests allow: the tensors are computed with the same float32 arithmetic, so they
match exactly in practice; scores go through exp() of a different math library."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIT = PreprocessSpec()  # google/vit-base-patch16-224: 224x224 bilinear, 1/255, mean = std = 0.5
DEIT = PreprocessSpec(  # shortest edge 256 bicubic, center crop 224, ImageNet statistics (DINOv2's BitImageProcessor)
    resize_mode="shortest_edge", size=None, shortest_edge=256, resample="bicubic", crop_size=(224, 224),
    mean=IMAGENET_MEAN, std=IMAGENET_STD,
)
DINOV2 = DEIT  # facebook/dinov2-*: BitImageProcessor, shortest edge 256 bicubic, center crop 224, ImageNet statistics
MOBILEVIT = PreprocessSpec(  # apple/mobilevit-*: MobileViTImageProcessor, shortest edge 288 bilinear, crop 256,
    resize_mode="shortest_edge", size=None, shortest_edge=288, resample="bilinear", crop_size=(256, 256),
    mean=None, std=None, channel_order="BGR",  # 1/255 only (no mean/std), channels flipped to BGR
)
DEFAULT_PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data"


@dataclass(frozen=True)
class ImageCase:
    """One image through one preprocess spec.

    ``derive`` makes the image from the photo (None: the photo file's own bytes are decoded);
    the derived image is encoded as PNG and decoded by :func:`load_rgb`, as a file would be.
    """

    name: str
    what: str
    photo: str
    spec: PreprocessSpec
    derive: Callable[[Image.Image], Image.Image] | None = None
    format: str = "tflite"


@dataclass(frozen=True)
class SelfCheckCase:
    """The self-check images through one preprocess spec, judged by one precision's tolerance."""

    name: str
    what: str
    spec: PreprocessSpec
    tolerance: Tolerance


@dataclass(frozen=True)
class TopKCase:
    """A logits vector and its labels; the runtime's top-5 is the expectation."""

    name: str
    what: str
    logits: np.ndarray
    labels: dict[int, str]


def _gray_patch(photo: Image.Image) -> Image.Image:
    return photo.convert("L").crop((60, 30, 97, 53))  # 37 x 23, mode L


def _rgba_patch(photo: Image.Image) -> Image.Image:
    patch = photo.convert("RGBA").crop((20, 10, 80, 55))  # 60 x 45
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (45, 1))  # 0 (colour kept) .. 255
    patch.putalpha(Image.fromarray(alpha, "L"))
    return patch


def _panorama(photo: Image.Image) -> Image.Image:
    return photo.crop((0, 80, 341, 140))  # 341 x 60, 5.7:1


def _strip(photo: Image.Image) -> Image.Image:
    return photo.crop((40, 40, 90, 50))  # 50 x 10


def _small(photo: Image.Image) -> Image.Image:
    return photo.crop((70, 100, 100, 120))  # 30 x 20


IMAGE_CASES: tuple[ImageCase, ...] = (
    ImageCase(
        "vit_b16_chelsea_jpeg",
        "odd-size RGB JPEG (341x227) to ViT-B/16's 224x224 bilinear, mean = std = 0.5, NCHW (downscale both axes)",
        "chelsea.jpg", VIT,
    ),
    ImageCase(
        "deit_astronaut_jpeg",
        "DeiT-style shortest edge (80) bicubic + center crop 64 with ImageNet mean/std, portrait JPEG 200x300",
        "astronaut.jpg", replace(DEIT, shortest_edge=80, crop_size=(64, 64)),
    ),
    ImageCase(
        "gray_png_upscale",
        "grayscale (mode L) PNG 37x23 upscaled to 56x48 bilinear",
        "chelsea.jpg", replace(VIT, size=(48, 56)), derive=_gray_patch, format="onnx",
    ),
    ImageCase(
        "rgba_png_vertical_only",
        "RGBA PNG 60x45 with an alpha ramp (alpha dropped, not composited) to 60 wide x 30 high: the vertical pass only; NHWC",
        "coffee.png", replace(VIT, size=(30, 60), layout="NHWC"), derive=_rgba_patch,
    ),
    ImageCase(
        "panorama_pad_bgr_nhwc",
        "wide panorama 341x60, shortest edge 32 bicubic, center crop 48x48 taller than the image (zero padding), BGR, NHWC",
        "chelsea.jpg",
        replace(DEIT, shortest_edge=32, crop_size=(48, 48), channel_order="BGR", layout="NHWC"),
        derive=_panorama,
    ),
    ImageCase(
        "uint8_in_model",
        "normalization inside the model (TFLite uint8 input): resized pixels 0..255, 32x32 bilinear from 151x97, NHWC",
        "chelsea.jpg", replace(VIT, size=(32, 32), layout="NHWC", normalization_in_model=True),
        derive=lambda photo: photo.crop((100, 60, 251, 157)),
    ),
    ImageCase(
        "coreml_bicubic_down_up",
        "bicubic 61x29 to 32x32: width down, height up (negative lobes, clipping), Core ML artifact",
        "coffee.png", replace(VIT, size=(32, 32), resample="bicubic"),
        derive=lambda photo: photo.crop((5, 5, 66, 34)), format="coreml",
    ),
    ImageCase(
        "box_rescale_only",
        "box filter, rescale 1/255 without mean/std, 50x10 to 20x16",
        "coffee.png", replace(VIT, size=(16, 20), resample="box", mean=None, std=None), derive=_strip,
    ),
    ImageCase(
        "hamming_no_rescale",
        "hamming filter, no rescale, mean/std applied to 0..255 values, 50x10 to 20x16",
        "coffee.png", replace(VIT, size=(16, 20), resample="hamming", rescale_factor=None, mean=(127.5, 120.0, 110.0), std=(64.0, 60.0, 58.0)),
        derive=_strip,
    ),
    ImageCase(
        "lanczos",
        "lanczos filter, 50x10 to 20x16",
        "coffee.png", replace(VIT, size=(16, 20), resample="lanczos"), derive=_strip,
    ),
    ImageCase(
        "nearest",
        "nearest filter (Pillow's affine scaling path), 50x10 to 23x17",
        "coffee.png", replace(VIT, size=(17, 23), resample="nearest"), derive=_strip,
    ),
    ImageCase(
        "mobilevit_bgr_unnormalized",
        "MobileViT-style: shortest edge 72 bilinear, center crop 40, 1/255 without mean/std, RGB to BGR, NCHW; "
        "a 150x100 PNG cut from a photo",
        "chelsea.jpg", replace(MOBILEVIT, shortest_edge=72, crop_size=(40, 40)),
        derive=lambda photo: photo.crop((120, 40, 270, 140)),
    ),
    ImageCase(
        "dinov2_bicubic_shortest_crop",
        "DINOv2-style: shortest edge 73 (64 * 256 / 224) bicubic, center crop 64, ImageNet mean/std, NCHW; "
        "a 90x140 portrait PNG cut from a photo",
        "astronaut.jpg", replace(DINOV2, shortest_edge=73, crop_size=(64, 64)),
        derive=lambda photo: photo.crop((50, 20, 140, 160)),
    ),
    ImageCase(
        "no_resize_crop_pad",
        "resize 'none', center crop 16x40 wider than the 30x20 image (zero padding left and right)",
        "astronaut.jpg", replace(VIT, resize_mode="none", size=None, crop_size=(16, 40)), derive=_small,
    ),
)


SELFCHECK_CASES: tuple[SelfCheckCase, ...] = (
    SelfCheckCase(
        "vit_bilinear_nchw",
        "ViT-style: 64 wide x 56 high bilinear, mean = std = 0.5, NCHW; judged by TFLite int8-dynamic's tolerance",
        replace(VIT, size=(56, 64)), TFLITE_INT8_DYNAMIC_TOLERANCE,
    ),
    SelfCheckCase(
        "deit_bicubic_crop_bgr_nhwc",
        "DeiT-style: shortest edge 72 bicubic, center crop 64, ImageNet mean/std, BGR, NHWC; judged by fp32's tolerance",
        replace(DEIT, shortest_edge=72, crop_size=(64, 64), channel_order="BGR", layout="NHWC"), FP32_TOLERANCE,
    ),
    SelfCheckCase(
        "mobilevit_bgr_unnormalized_nchw",
        "MobileViT-style: shortest edge 96 bilinear, center crop 64, 1/255 without mean/std, BGR, NCHW; judged by "
        "fp32's tolerance",
        replace(MOBILEVIT, shortest_edge=96, crop_size=(64, 64)), FP32_TOLERANCE,
    ),
)


def _topk_cases() -> tuple[TopKCase, ...]:
    rng = np.random.default_rng(20240601)
    awkward = ["tabby, tabby cat", 'say "cheese"', "back\\slash", "café crème", "東京", "naïve ☕", "tab\there"]
    thousand = {i: awkward[i] if i < len(awkward) else f"class {i:04d}" for i in range(1000)}
    ties = np.array([0.5, 2.0, -1.0, 2.0, 2.0, 0.25, 2.0, -3.0], np.float32)
    missing = {0: "zero", 2: "two", 3: "three"}  # indices 1 and 4..7 have no label: LABEL_<i>
    return (
        TopKCase("imagenet_like_1000", "1000 classes, logits ~ N(0, 3), labels with commas, quotes, escapes and non-ASCII",
                 (rng.standard_normal(1000) * 3).astype(np.float32), thousand),
        TopKCase("ties_keep_index_order", "equal logits: the lower index comes first (a stable sort)", ties,
                 {i: f"label {i}" for i in range(len(ties))}),
        TopKCase("three_classes", "fewer classes than k: top-5 has 3 entries",
                 np.array([0.1, -0.2, 0.3], np.float32), {0: "cat", 1: "dog", 2: "bird"}),
        TopKCase("large_logits", "logits around +-1e4: softmax must subtract the maximum",
                 np.array([1.0e4, 9.999e3, -1.0e4, 1.0e4 - 0.5, 5.0e3, 9.9995e3], np.float32),
                 {i: f"c{i}" for i in range(6)}),
        TopKCase("missing_labels", "labels missing for some indices: the runtime says LABEL_<index>",
                 (rng.standard_normal(8) * 2).astype(np.float32), missing),
    )


# -- writing -----------------------------------------------------------------------------------------


def _manifest(spec: PreprocessSpec, *, fmt: str, labels: dict[int, str], name: str, height: int | None, width: int | None) -> Manifest:
    model_file = {"tflite": "model.tflite", "onnx": "model.onnx", "coreml": "model.mlpackage"}[fmt]
    dtype = "uint8" if spec.normalization_in_model else "float32"
    if height is None or width is None:
        shape: tuple[int | None, ...] = (1, 3, 224, 224) if spec.layout == "NCHW" else (1, 224, 224, 3)
    else:
        shape = (1, 3, height, width) if spec.layout == "NCHW" else (1, height, width, 3)
    return Manifest(
        format=fmt,
        precision="fp32",
        files=(FileEntry(path=model_file, sha256=hashlib.sha256(b"").hexdigest(), bytes=0),),
        input=InputSpec(name="pixel_values", layout=spec.layout, dtype=dtype, shape=shape, dynamic_batch=False),
        outputs=OutputsSpec(logits="logits", embedding="embedding", embedding_size=8, num_classes=len(labels)),
        preprocess=spec,
        labels=labels,
        source=SourceInfo(model=f"golden:{name}", weights="random-init"),
        conversion=ConversionInfo(vitedge_version="golden", created="1970-01-01T00:00:00+00:00",
                                  recipe={"golden": "vectors for the demos' tests; there is no model file"}),
        entry=model_file if fmt == "coreml" else None,
    )


class _FixedLogits:
    """A backend stand-in: returns the given logits and records the tensors it was fed."""

    name = "golden"
    version = "1"
    max_batch_size = 1
    thread_safe = True

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits
        self.fed: list[np.ndarray] = []

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.fed.append(batch.copy())
        return {"logits": np.repeat(self.logits[None], len(batch), axis=0)}


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _encoded(case: ImageCase, photos: Path) -> tuple[bytes, str]:
    raw = (photos / case.photo).read_bytes()
    if case.derive is None:
        return raw, Image.open(io.BytesIO(raw)).format or "?"
    derived = case.derive(Image.open(io.BytesIO(raw)))
    buffer = io.BytesIO()
    derived.save(buffer, format="PNG")
    return buffer.getvalue(), "PNG"


def write_image_case(case: ImageCase, out: Path, photos: Path) -> str:
    """Write one image case folder; returns its name."""
    folder = out / "images" / case.name
    folder.mkdir(parents=True, exist_ok=True)
    encoded, encoded_as = _encoded(case, photos)
    mode = Image.open(io.BytesIO(encoded)).mode
    rgb = load_rgb(encoded)
    target = resized_size(rgb.width, rgb.height, case.spec)
    resized = rgb if target == rgb.size else rgb.resize(target, resample=_PIL_FILTERS[case.spec.resample])
    tensor = preprocess(rgb, case.spec)[None]
    height, width = (tensor.shape[2], tensor.shape[3]) if case.spec.layout == "NCHW" else tensor.shape[1:3]
    manifest = _manifest(case.spec, fmt=case.format, labels={0: "a", 1: "b"}, name=case.name, height=height, width=width)
    # The same tensor comes out of the Classifier's own path (load, preprocess, batch).
    backend = _FixedLogits(np.zeros(2, np.float32))
    Classifier(folder, manifest, backend).predict(encoded, top_k=1)
    if not np.array_equal(backend.fed[0], tensor):
        raise RuntimeError(f"{case.name}: Classifier fed a different tensor than preprocess() returned")
    manifest.write(folder)
    (folder / "rgb.u8").write_bytes(np.asarray(rgb, np.uint8).tobytes())
    (folder / "resized.u8").write_bytes(np.asarray(resized, np.uint8).tobytes())
    (folder / "tensor.f32").write_bytes(tensor.astype("<f4").tobytes())
    _write_json(folder / "case.json", {
        "name": case.name,
        "what": case.what,
        "source": {"photo": case.photo, "derived": case.derive is not None, "encoded_as": encoded_as, "mode": mode},
        "rgb": {"file": "rgb.u8", "width": rgb.width, "height": rgb.height},
        "resized": {"file": "resized.u8", "width": resized.width, "height": resized.height},
        "tensor": {"file": "tensor.f32", "shape": list(tensor.shape), "layout": case.spec.layout, "dtype": "float32"},
    })
    return case.name


def write_topk_case(case: TopKCase, out: Path) -> str:
    """Write one top-k case folder; returns its name."""
    folder = out / "topk" / case.name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(VIT, fmt="tflite", labels=case.labels, name=case.name, height=224, width=224)
    manifest = replace(manifest, outputs=replace(manifest.outputs, num_classes=len(case.logits)))
    result = Classifier(folder, manifest, _FixedLogits(case.logits)).predict(np.zeros((4, 4, 3), np.uint8), top_k=TOP_K)
    manifest.write(folder)
    (folder / "logits.f32").write_bytes(case.logits.astype("<f4").tobytes())
    _write_json(folder / "case.json", {
        "name": case.name,
        "what": case.what,
        "logits": {"file": "logits.f32", "count": len(case.logits)},
        "k": TOP_K,
        "expected": result.to_dict()["predictions"],
    })
    return case.name


def write_selfcheck_case(case: SelfCheckCase, out: Path, number: int) -> str:
    """Write one artifact-shaped folder with a self-check (stand-in outputs: there is no model); returns its name."""
    folder = out / "selfcheck" / case.name
    folder.mkdir(parents=True, exist_ok=True)
    images = selfcheck_images()
    tensors = [preprocess(load_rgb(image.data), case.spec) for image in images]
    rng = np.random.default_rng([20240601, number])
    logits = (rng.standard_normal((len(images), 10)) * 3).astype(np.float32)
    embedding = rng.standard_normal((len(images), 16)).astype(np.float32)
    tolerance = {key: getattr(case.tolerance, key) for key in case.tolerance.__dataclass_fields__}
    files = write_selfcheck(folder, images=images, spec=case.spec, tensors=tensors, logits=logits, embedding=embedding,
                            reference="golden stand-in outputs (no model: the demos' tests run a stand-in)",
                            model_tolerance=tolerance, made_with={"golden": case.what})
    height, width = case.spec.output_size
    manifest = _manifest(case.spec, fmt="tflite", labels={i: f"class {i}" for i in range(10)}, name=case.name,
                         height=height, width=width)
    manifest = replace(manifest, outputs=replace(manifest.outputs, embedding_size=16, num_classes=10)).with_selfcheck(files)
    manifest.write(folder)
    # The runtime's own self-check passes on it, bit for bit, with a stand-in model that answers the references.
    answers = {tensor_sha256(tensor): {"logits": logits[i : i + 1], "embedding": embedding[i : i + 1]}
               for i, tensor in enumerate(tensors)}
    report = run_selfcheck(folder, manifest, runner=lambda batch: answers[tensor_sha256(batch[0])])
    if not report.ok or report.preprocessing.details["bit_identical"] != len(images):
        raise RuntimeError(f"{case.name}: the runtime's self-check does not pass: {report.lines()}")
    return case.name


def write_golden(out: str | Path, photos: str | Path = DEFAULT_PHOTOS) -> Path:
    """Write every case under ``out`` (created if needed) and its ``index.json``.

    Args:
        out: The golden folder (the repository keeps it in ``demo_golden/``).
        photos: Folder with chelsea.jpg, astronaut.jpg and coffee.png (the repository's tests/data).

    Returns:
        The path of ``index.json``.
    """
    out, photos = Path(out), Path(photos)
    images = [write_image_case(case, out, photos) for case in IMAGE_CASES]
    topk = [write_topk_case(case, out) for case in _topk_cases()]
    selfchecks = [write_selfcheck_case(case, out, number) for number, case in enumerate(SELFCHECK_CASES)]
    index = out / "index.json"
    _write_json(index, {
        "schema": GOLDEN_SCHEMA,
        "generator": "python -m tests.golden_vectors demo_golden",
        "tolerance": TOLERANCE,
        "images": images,
        "topk": topk,
        "selfcheck": selfchecks,
    })
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write (the repository's is demo_golden/)")
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder with chelsea.jpg, astronaut.jpg, coffee.png")
    args = parser.parse_args(argv)
    index = write_golden(args.out, args.photos)
    print(f"wrote {index.parent} ({len(IMAGE_CASES)} image cases, {len(_topk_cases())} top-k cases, "
          f"{len(SELFCHECK_CASES)} self-check cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
