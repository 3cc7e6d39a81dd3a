"""Image loading: parity with transformers' load_image, odd modes, arrays, and clear errors."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitedge.converters.hf_preprocess import spec_from_processor
from vitedge.errors import ImageLoadError, UsageError
from vitedge.runtime.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    describe,
    expand_image_paths,
    load_rgb,
)
from vitedge.runtime.preprocess import preprocess

DATA = Path(__file__).parent / "data"
PHOTOS = ("chelsea.jpg", "astronaut.jpg", "coffee.png")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(DATA / "chelsea.jpg") as image:
        return image.convert("RGB")


def _alpha_ramp(image: Image.Image) -> Image.Image:
    """An alpha channel going from transparent (left) to opaque (right)."""
    ramp = np.linspace(0, 255, image.width, dtype=np.uint8)
    return Image.fromarray(np.broadcast_to(ramp, (image.height, image.width)).copy())


def _with_alpha(image: Image.Image) -> Image.Image:
    image = image.copy()
    image.putalpha(_alpha_ramp(image))
    return image


def _exif(orientation: int) -> dict:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return {"exif": exif}


def _sixteen_bit(photo: Image.Image) -> np.ndarray:
    """16-bit grey values spanning the full range, not just multiples of 257."""
    grey = np.asarray(photo.convert("L")).astype(np.uint16)
    return grey * 257 + (np.arange(grey.size, dtype=np.uint16).reshape(grey.shape) % 257)


# kind -> photo -> (file suffix, image to save, save options): every mode/format transformers reads.
VARIANTS = {
    "jpeg": lambda p: (".jpg", p, {"quality": 90}),
    "png": lambda p: (".png", p, {}),
    "L": lambda p: (".png", p.convert("L"), {}),
    "LA": lambda p: (".png", _with_alpha(p.convert("L")), {}),
    "P": lambda p: (".png", p.quantize(64), {}),
    "P-transparency": lambda p: (".png", p.quantize(64), {"transparency": 0}),
    "RGBA": lambda p: (".png", _with_alpha(p), {}),
    "RGBA-webp": lambda p: (".webp", _with_alpha(p), {"lossless": True}),
    "CMYK": lambda p: (".jpg", p.convert("CMYK"), {"quality": 90}),
    "CMYK-tiff": lambda p: (".tif", p.convert("CMYK"), {}),
    "1": lambda p: (".png", p.convert("1"), {}),
    "bmp": lambda p: (".bmp", p, {}),
    "ppm": lambda p: (".ppm", p, {}),
    "pgm": lambda p: (".pgm", p.convert("L"), {}),
    "exif-6": lambda p: (".jpg", p, _exif(6)),
    "exif-3": lambda p: (".jpg", p, _exif(3)),
    "gif-2-frames": lambda p: (
        ".gif",
        p.quantize(64),
        {"save_all": True, "append_images": [p.rotate(90).quantize(16)]},
    ),
    "tiff-2-pages": lambda p: (".tif", p, {"save_all": True, "append_images": [p.convert("L")]}),
}


def _write_variant(kind: str, photo: Image.Image, folder: Path) -> Path:
    """Write ``photo`` as one mode/format variant; returns the file."""
    suffix, image, options = VARIANTS[kind](photo)
    path = folder / f"{kind}{suffix}"
    image.save(path, **options)
    return path


@pytest.fixture(scope="module")
def deit_processor():
    """transformers' DeiT PIL processor (resize 256x256 bicubic, crop 224, ImageNet mean/std)."""
    from transformers import DeiTImageProcessorPil

    return DeiTImageProcessorPil(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_load_rgb_matches_transformers_load_image(kind, photo, tmp_path, deit_processor):
    from transformers.image_utils import load_image

    path = _write_variant(kind, photo, tmp_path)
    ours = load_rgb(path)
    with Image.open(
        path
    ) as opened:  # load_image(str) does the same open, but leaks multi-frame files' handles
        theirs = load_image(opened)
    assert ours.mode == "RGB"
    assert ours.size == theirs.size
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    # and so the whole chain, load + preprocess, gives the processor's tensor
    expected = deit_processor(theirs, return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(preprocess(ours, spec_from_processor(deit_processor)), expected)


@pytest.mark.parametrize("name", PHOTOS)
def test_test_photos_load_as_in_transformers(name):
    from transformers.image_utils import load_image

    np.testing.assert_array_equal(np.asarray(load_rgb(DATA / name)), np.asarray(load_image(str(DATA / name))))


def test_exif_orientation_is_applied(photo, tmp_path):
    rotated = load_rgb(_write_variant("exif-6", photo, tmp_path))
    upside_down = load_rgb(_write_variant("exif-3", photo, tmp_path))
    assert rotated.size == (photo.height, photo.width)
    assert upside_down.size == photo.size
    plain = np.asarray(load_rgb(_write_variant("jpeg", photo, tmp_path)), dtype=np.int16)
    # orientation 3 is a 180 degree turn: turning it back gives (about: JPEG) the photo.
    assert np.abs(np.asarray(upside_down.rotate(180), dtype=np.int16) - plain).mean() < 3


def test_first_frame_of_a_multi_frame_gif(photo, tmp_path):
    path = _write_variant("gif-2-frames", photo, tmp_path)
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), np.asarray(photo.quantize(64).convert("RGB")))


def test_alpha_is_dropped_not_composited(photo):
    rgba = photo.copy()
    rgba.putalpha(0)
    np.testing.assert_array_equal(np.asarray(load_rgb(rgba)), np.asarray(photo))


def test_sixteen_bit_png_is_scaled_not_clipped(photo, tmp_path):
    values = _sixteen_bit(photo)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)  # mode I;16
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    expected = np.round(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), np.repeat(expected[..., None], 3, axis=2))


def test_eight_bit_data_stored_in_sixteen_bits_comes_back_unchanged(photo):
    grey = np.asarray(photo.convert("L"))
    from_sixteen = load_rgb(Image.fromarray(grey.astype(np.uint16) * 257))
    np.testing.assert_array_equal(np.asarray(from_sixteen), np.asarray(photo.convert("L").convert("RGB")))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_sixteen_bit_modes(mode, photo):
    values = _sixteen_bit(photo)
    raw = values.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    image = Image.frombytes(mode, photo.size, raw)
    expected = np.round(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(load_rgb(image))[..., 1], expected)


def test_int32_tiff_with_sixteen_bit_values(photo, tmp_path):
    values = _sixteen_bit(photo).astype(np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(values).save(path)  # mode I
    np.testing.assert_array_equal(np.asarray(load_rgb(path))[..., 0], np.round(values / 257).astype(np.uint8))


def test_int32_outside_sixteen_bits_is_stretched():
    values = np.array([[-1000, 0], [1000, 99_000]], dtype=np.int32)
    grey = np.asarray(load_rgb(Image.fromarray(values)))[..., 0]
    assert grey[0, 0] == 0 and grey[1, 1] == 255 and 0 < grey[0, 1] < grey[1, 0] < 255


def test_float_tiff(photo, tmp_path):
    grey = np.asarray(photo.convert("L"))
    path = tmp_path / "float.tif"
    Image.fromarray(grey.astype(np.float32) / 255).save(path)  # mode F in [0, 1]
    np.testing.assert_array_equal(np.asarray(load_rgb(path))[..., 2], grey)
    stretched = Image.fromarray(np.array([[-2.0, 0.0], [1.0, 6.0]], dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(load_rgb(stretched))[..., 0], [[0, 64], [96, 255]])
    with pytest.raises(ImageLoadError, match="NaN"):
        load_rgb(Image.fromarray(np.array([[np.nan, 0.5]], dtype=np.float32)))


@pytest.mark.parametrize(
    "mode", ["L", "LA", "La", "P", "PA", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "1"]
)
def test_every_pil_mode_gives_rgb(mode, photo):
    image = photo.convert("RGBA").convert(mode) if mode in ("La", "RGBa") else photo.convert(mode)
    rgb = load_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == photo.size


def test_bytes_and_pil_inputs_match_the_file(photo, tmp_path):
    path = _write_variant("exif-6", photo, tmp_path)
    from_path = np.asarray(load_rgb(path))
    np.testing.assert_array_equal(np.asarray(load_rgb(path.read_bytes())), from_path)
    np.testing.assert_array_equal(np.asarray(load_rgb(str(path))), from_path)
    with Image.open(path) as opened:
        np.testing.assert_array_equal(np.asarray(load_rgb(opened)), from_path)


def test_input_pil_image_is_not_modified(photo):
    image = photo.convert("L")
    loaded = load_rgb(image)
    assert image.mode == "L" and loaded is not image
    assert load_rgb(photo) is not photo


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda grey, rgb: grey, "grey"),
        (lambda grey, rgb: grey[..., None], "grey"),
        (lambda grey, rgb: rgb, "rgb"),
        (lambda grey, rgb: np.concatenate([rgb, np.zeros_like(rgb[..., :1])], axis=2), "rgb"),
        (lambda grey, rgb: grey.astype(np.uint16) * 257, "grey"),
        (lambda grey, rgb: rgb.astype(np.float32) / 255, "rgb"),
        (lambda grey, rgb: rgb.astype(np.float64) / 255, "rgb"),
    ],
    ids=["HxW", "HxWx1", "HxWx3", "HxWx4", "uint16", "float32", "float64"],
)
def test_arrays(make, expected, photo):
    rgb = np.asarray(photo)
    grey = np.asarray(photo.convert("L"))
    want = rgb if expected == "rgb" else np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(load_rgb(make(grey, rgb))), want)


def test_bool_array():
    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(np.asarray(load_rgb(mask))[..., 0], [[255, 0], [0, 255]])


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 4, 3), np.int64),
        np.zeros((4, 4, 3), np.int8),
        np.full((4, 4, 3), 1.5, np.float32),
        np.full((4, 4, 3), np.nan, np.float32),
    ],
    ids=["2-channels", "4-D", "1-D", "empty", "int64", "int8", "float-over-1", "nan"],
)
def test_bad_arrays(array):
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(array)
    assert str(caught.value).startswith(describe(array))


def test_describe(photo, tmp_path):
    assert describe("some/cat.jpg") == "some/cat.jpg"
    assert describe(Path("some") / "cat.jpg") == os.path.join("some", "cat.jpg")
    assert describe(photo.resize((640, 480))) == "<PIL image 640x480 RGB>"
    with Image.open(DATA / "coffee.png") as opened:
        assert describe(opened) == str(DATA / "coffee.png")
    assert describe(np.zeros((480, 640, 3), np.uint8)) == "<array 480x640x3 uint8>"
    assert describe(b"12345") == "<bytes: 5>"


# -- errors -----------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (wrong) data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _broken_file(kind: str, folder: Path) -> Path:
    photo_bytes = (DATA / "chelsea.jpg").read_bytes()
    contents = {
        "missing": None,
        "directory": None,
        "empty": b"",
        "text": b"this is not an image\n",
        "random-bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "truncated-jpeg": photo_bytes[: len(photo_bytes) // 3],
        "truncated-png": (DATA / "coffee.png").read_bytes()[:2000],
        "corrupt-png-data": _png_header_only(64, 64),
    }
    path = folder / f"{kind}.jpg"
    if kind == "directory":
        path.mkdir()
    elif contents[kind] is not None:
        path.write_bytes(contents[kind])
    return path


BROKEN = {
    "missing": "no such file",
    "directory": "directory",
    "empty": "empty file",
    "text": "not an image",
    "random-bytes": "not an image",
    "truncated-jpeg": "truncated or corrupt",
    "truncated-png": "truncated or corrupt",
    "corrupt-png-data": "truncated or corrupt",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_files_raise_image_load_error(kind, tmp_path):
    path = _broken_file(kind, tmp_path)
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and BROKEN[kind] in message
    assert "\n" not in message and caught.value.source == str(path)
    assert caught.value.__suppress_context__ or caught.value.__cause__ is None


def test_broken_bytes():
    with pytest.raises(ImageLoadError, match=r"^<bytes: 0>: empty"):
        load_rgb(b"")
    with pytest.raises(ImageLoadError, match=r"^<bytes: 4>: not an image"):
        load_rgb(b"abcd")


def test_url_is_not_downloaded():
    with pytest.raises(ImageLoadError, match="URLs are not downloaded"):
        load_rgb("https://example.com/cat.jpg")


def test_unsupported_type():
    with pytest.raises(ImageLoadError, match="unsupported input type int"):
        load_rgb(42)


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(12_000, 10_000))
    assert path.stat().st_size < 200
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path, max_pixels=1_000_000)
    message = str(caught.value)
    assert str(path) in message and "12000x10000" in message and "1,000,000" in message
    assert "--max-pixels" in message and "max_pixels=" in message


def test_pillow_own_bomb_error_is_reported_the_same_way(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(ImageLoadError, match="--max-pixels") as caught:
        load_rgb(path)
    assert str(path) in str(caught.value) and "10,000,000,000 pixels" in str(caught.value)


def test_pillow_limit_is_raised_for_a_larger_max_pixels_and_never_lowered(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    tiny = Image.new("RGB", (2, 2))
    load_rgb(tiny, max_pixels=10_001)
    assert Image.MAX_IMAGE_PIXELS == 5001
    load_rgb(tiny, max_pixels=50)
    assert Image.MAX_IMAGE_PIXELS == 5001


def test_pillow_bomb_warning_is_silenced_within_max_pixels(monkeypatch, photo):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # warns from 50k pixels, photo has 77k
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = load_rgb((DATA / "chelsea.jpg").read_bytes(), max_pixels=90_000)
    assert image.size == photo.size and not caught


def test_default_max_pixels():
    assert DEFAULT_MAX_PIXELS == 150_000_000


@pytest.mark.parametrize("max_pixels", [0, -5, 1.5, True])
def test_bad_max_pixels(max_pixels):
    with pytest.raises(UsageError):
        load_rgb(b"x", max_pixels=max_pixels)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_no_file_handles_left_open(photo, tmp_path):
    paths = [_write_variant(kind, photo, tmp_path) for kind in ("gif-2-frames", "tiff-2-pages", "jpeg")]
    paths += [_broken_file(kind, tmp_path) for kind in ("truncated-jpeg", "text", "empty")]
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))
    before = len(os.listdir("/proc/self/fd"))
    for path in [*paths, bomb] * 3:
        with contextlib.suppress(ImageLoadError):
            load_rgb(path)
    assert len(os.listdir("/proc/self/fd")) == before


# -- expanding folders ------------------------------------------------------------------------------


def test_expand_image_paths(tmp_path):
    folder = tmp_path / "photos"
    for relative in [
        "b.JPG",
        "a.png",
        "notes.txt",
        ".hidden.jpg",
        ".git/x.png",
        "sub/c.jpeg",
        "sub/deep/e.webp",
        "z.TIFF",
    ]:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(b"")
    single = tmp_path / "single.png"
    single.write_bytes(b"")
    missing = str(tmp_path / "missing.jpg")
    expanded = expand_image_paths([str(single), str(folder), missing, str(single)])
    inside = [str(folder / name) for name in ["a.png", "b.JPG", "sub/c.jpeg", "sub/deep/e.webp", "z.TIFF"]]
    assert expanded == [str(single), *inside, missing, str(single)]
    assert expand_image_paths([folder], recursive=False) == [
        str(folder / "a.png"),
        str(folder / "b.JPG"),
        str(folder / "z.TIFF"),
    ]
    assert expand_image_paths(str(folder)) == inside
    assert expand_image_paths([]) == []


def test_image_extensions():
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".pbm"} <= IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)


def test_bytes_round_trip_of_every_test_photo():
    for name in PHOTOS:
        with Image.open(io.BytesIO((DATA / name).read_bytes())) as image:
            assert load_rgb((DATA / name).read_bytes()).size == image.size
