"""The built-in "shapes" dataset: synthetic, photograph-free, deterministic image classification.

Each image shows one large object of its class (circle, square, star, arrow, stripes, …) with a
random color, size, position, rotation and aspect on a random background (gradient, blotches,
noise), plus clutter. A ``difficulty`` in [0, 1] scales all of it (see ``_Jitter``): rotation range,
image and shape aspect, scale, clutter, small distractor shapes, occlusion, blur, noise, contrast,
and how far confusable classes drift towards each other (a ring with a small hole, a fat cross,
a stubby arrow). Image sizes vary per image (odd, non-square), so resizing matters.

Objects are dark on a light background, with random hues; with difficulty the two ranges overlap
and the polarity sometimes flips. (Fully arbitrary colors make a ViT trained from scratch on a few
thousand images learn shape far too slowly for the quickstart.)

Every shape is mirror-symmetric, but rotations span the full circle only at difficulty 1: a
horizontal flip keeps the label yet shows an arrow pointing the way easy images never do.

Torch free: numpy, pillow and the runtime's preprocessing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vitedge.errors import UsageError
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec

SPLITS = ("train", "val", "test", "calibration")
IMAGE_FORMATS = {"png": ".png", "jpeg": ".jpg"}

_SUPERSAMPLE = 2  # shapes are drawn at this scale and box-filtered down (anti-aliasing)
_CIRCLE_SIDES = 48

Polygon = np.ndarray  # (k, 2) points in unit coordinates, the object inside the unit disk
Stroke = tuple[Polygon, bool]  # a polygon and whether it fills (True) or cuts a hole (False)


@dataclass(frozen=True)
class ShapesConfig:
    """What the shapes dataset looks like.

    Attributes:
        num_classes: How many classes, the first ones of :data:`SHAPE_CLASSES` (2 to 12).
        difficulty: 0 (clean, upright, high contrast) to 1 (any rotation, noisy, cluttered,
            occluded, low contrast, confusable classes close together). The default, 0.2, is what
            the quickstart trains on: its small ViT reaches about 90% there, not 100%.
        min_size: Smallest image side in pixels (at least 16).
        max_size: Largest image side in pixels. The longer side of each image is drawn from
            [min_size, max_size], the shorter one by a random aspect ratio (up to 1.15 at
            difficulty 0, 1.65 at 1; resizing to a square distorts the shapes that much).
        seed: Base seed; an image is a pure function of (seed, split, class, index).
    """

    num_classes: int = 10
    difficulty: float = 0.2
    min_size: int = 48
    max_size: int = 160
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not _is_int(self.num_classes) or not 2 <= self.num_classes <= len(SHAPE_CLASSES):
            problems.append(f"num_classes must be an integer from 2 to {len(SHAPE_CLASSES)}, got {self.num_classes!r}")
        is_number = isinstance(self.difficulty, (int, float)) and not isinstance(self.difficulty, bool)
        if not is_number or not 0.0 <= self.difficulty <= 1.0:
            problems.append(f"difficulty must be a number from 0 to 1, got {self.difficulty!r}")
        if not _is_int(self.min_size) or self.min_size < 16:
            problems.append(f"min_size must be an integer of at least 16 pixels, got {self.min_size!r}")
        elif not _is_int(self.max_size) or not self.min_size <= self.max_size <= 4096:
            problems.append(f"max_size must be an integer from min_size ({self.min_size}) to 4096, got {self.max_size!r}")
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if problems:
            raise UsageError("invalid shapes dataset config: " + "; ".join(problems))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- shapes, in unit coordinates -------------------------------------------------------------


def _regular_polygon(sides: int, radius: float = 1.0, phase: float = 0.0) -> Polygon:
    angles = phase + 2 * math.pi * np.arange(sides) / sides
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _rectangle(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)


def _circle(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    return [(_regular_polygon(_CIRCLE_SIDES), True)]


def _square(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    return [(_regular_polygon(4, phase=math.pi / 4), True)]


def _triangle(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    return [(_regular_polygon(3, phase=-math.pi / 2), True)]


def _hexagon(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    return [(_regular_polygon(6), True)]


def _pentagon(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    return [(_regular_polygon(5, phase=-math.pi / 2), True)]


def _star(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    # A fat star (high inner radius) drifts towards a pentagon/circle.
    inner = rng.uniform(0.38, 0.5 + 0.22 * difficulty)
    points = _regular_polygon(10, phase=-math.pi / 2)
    points[1::2] *= inner
    return [(points, True)]


def _cross(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    # A fat cross drifts towards a square.
    w = rng.uniform(0.2, 0.3 + 0.18 * difficulty)
    outline = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
    return [(np.array(outline, dtype=np.float64) * 0.8, True)]


def _ring(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    # A small hole drifts towards a circle.
    inner = rng.uniform(0.45 - 0.2 * difficulty, 0.72)
    return [(_regular_polygon(_CIRCLE_SIDES), True), (_regular_polygon(_CIRCLE_SIDES, inner), False)]


def _arrow(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    # A short shaft drifts towards a triangle.
    shaft = rng.uniform(0.14, 0.24)
    tail = -rng.uniform(1.0 - 0.55 * difficulty, 1.0)
    neck, head = 0.15, rng.uniform(0.5, 0.65)
    outline = [(1, 0), (neck, head), (neck, shaft), (tail, shaft), (tail, -shaft), (neck, -shaft), (neck, -head)]
    return [(np.array(outline, dtype=np.float64), True)]


def _stripes(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    bands = 2 * int(rng.integers(2, 4)) + 1  # odd, so both edges are filled
    edges = np.linspace(-0.72, 0.72, bands + 1)
    return [(_rectangle(edges[i], -0.72, edges[i + 1], 0.72), True) for i in range(0, bands, 2)]


def _checker(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    cells = int(rng.integers(3, 5))
    edges = np.linspace(-0.72, 0.72, cells + 1)
    return [
        (_rectangle(edges[i], edges[j], edges[i + 1], edges[j + 1]), True)
        for i in range(cells)
        for j in range(cells)
        if (i + j) % 2 == 0
    ]


def _crescent(rng: np.random.Generator, difficulty: float) -> list[Stroke]:
    offset = rng.uniform(0.35, 0.6)
    bite = _regular_polygon(_CIRCLE_SIDES, 0.85) + np.array([offset, 0.0])
    return [(_regular_polygon(_CIRCLE_SIDES), True), (bite, False)]


_SHAPES: dict[str, Callable[[np.random.Generator, float], list[Stroke]]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "cross": _cross,
    "ring": _ring,
    "hexagon": _hexagon,
    "arrow": _arrow,
    "stripes": _stripes,
    "checker": _checker,
    "pentagon": _pentagon,
    "crescent": _crescent,
}
SHAPE_CLASSES: tuple[str, ...] = tuple(_SHAPES)
"""Every class the generator can draw, in label order; a config uses the first ``num_classes``."""


def shapes_class_names(config: ShapesConfig) -> tuple[str, ...]:
    """The class names of a config, in label order.

    Args:
        config: The dataset config.

    Returns:
        ``config.num_classes`` human-readable names; label ``i`` is ``names[i]``.
    """
    return SHAPE_CLASSES[: config.num_classes]


# --- drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Jitter:
    """Every random range of the generator, derived from the difficulty in one place."""

    confusion: float  # how far confusable shapes drift towards each other, 0..1
    rotation: float  # largest rotation either way, radians
    image_aspect: float  # largest image aspect ratio (resizing to a square distorts shapes)
    shape_aspect: float  # largest log aspect stretch of a shape
    min_scale: float  # smallest object radius, as a fraction of half the shorter side
    clutter: int  # most lines and dots behind the object
    ghost_chance: float  # chance of each of 3 small shapes of any class
    occlusion_chance: float
    occlusion_size: float  # largest occluder side, as a fraction of the image side
    blur: float  # largest Gaussian blur radius, pixels
    noise: float  # largest noise standard deviation, of 255
    light_low: int  # light colors have channels in [light_low, 255]
    dark_high: int  # dark colors have channels in [0, dark_high)
    flip_polarity_chance: float  # chance of light objects on a dark background

    @classmethod
    def from_difficulty(cls, d: float) -> _Jitter:
        return cls(
            confusion=d,
            rotation=math.pi * (0.05 + 0.95 * d * d),
            image_aspect=1.15 + 0.5 * d,
            shape_aspect=0.02 + 0.15 * d,
            min_scale=0.85 - 0.3 * d,
            clutter=round(1 + 7 * d),
            ghost_chance=0.5 * d,
            occlusion_chance=0.5 * d,
            occlusion_size=0.1 + 0.25 * d,
            blur=1.2 * d,
            noise=3 + 27 * d,
            light_low=round(150 - 70 * d),
            dark_high=round(106 + 70 * d),
            flip_polarity_chance=0.3 * d,
        )


@dataclass(frozen=True)
class _Palette:
    """Channel ranges of one scene: objects are dark on a light background, or the reverse.

    Fixed polarity and a wide gap make the classes learnable from little data; difficulty narrows
    the gap until the ranges overlap (low-contrast images) and flips the polarity more often.
    """

    background: tuple[int, int]
    objects: tuple[int, int]

    @classmethod
    def random(cls, rng: np.random.Generator, jitter: _Jitter) -> _Palette:
        light, dark = (jitter.light_low, 256), (0, jitter.dark_high)
        if rng.random() < jitter.flip_polarity_chance:
            return cls(background=dark, objects=light)
        return cls(background=light, objects=dark)


def _random_color(rng: np.random.Generator, channel_range: tuple[int, int] = (0, 256)) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in rng.integers(*channel_range, size=3))
    return red, green, blue


def _image_size(rng: np.random.Generator, config: ShapesConfig, jitter: _Jitter) -> tuple[int, int]:
    """(width, height): the longer side uniform in the size range, a random aspect ratio."""
    long_side = int(rng.integers(config.min_size, config.max_size + 1))
    aspect = math.exp(rng.uniform(0, math.log(jitter.image_aspect)))
    short_side = max(config.min_size, round(long_side / aspect))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def _background(rng: np.random.Generator, width: int, height: int, palette: _Palette) -> Image.Image:
    """A two-color linear gradient mixed with low-frequency blotches, colors from the palette."""
    rows, cols = (int(v) for v in rng.integers(2, 6, size=2))
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(0, 1, cols)[None, :] * math.cos(angle) + np.linspace(0, 1, rows)[:, None] * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = np.array(_random_color(rng, palette.background)), np.array(_random_color(rng, palette.background))
    gradient = start + ramp[..., None] * (end - start)
    blotches = rng.integers(*palette.background, size=(rows, cols, 3))
    mix = rng.uniform(0.2, 0.6)
    grid = (1 - mix) * gradient + mix * blotches
    return Image.fromarray(grid.astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)


def _draw_clutter(image: Image.Image, rng: np.random.Generator, jitter: _Jitter) -> None:
    """Lines and dots of any color, behind the object."""
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(0, jitter.clutter + 1))):
        color = _random_color(rng)
        x0, x1 = rng.uniform(0, width, size=2)
        y0, y1 = rng.uniform(0, height, size=2)
        if rng.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=color, width=int(rng.integers(1, 3)))
        else:
            r = rng.uniform(1, 2 + 0.05 * min(width, height))
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=color)


def _paint_shape(
    image: Image.Image,
    strokes: list[Stroke],
    color: tuple[int, int, int],
    radius: float,
    rng: np.random.Generator,
    jitter: _Jitter,
) -> None:
    """Paint one shape of the given radius at a random place, rotation and aspect, anti-aliased."""
    width, height = image.size
    margin_x, margin_y = min(radius, width / 2), min(radius, height / 2)
    center = np.array([rng.uniform(margin_x, width - margin_x), rng.uniform(margin_y, height - margin_y)])
    aspect = math.exp(rng.uniform(-1, 1) * jitter.shape_aspect)
    rotation = rng.uniform(-1, 1) * jitter.rotation
    cos, sin = math.cos(rotation), math.sin(rotation)
    transform = np.array([[cos, sin], [-sin, cos]]) * np.array([[aspect], [1.0 / aspect]]) * radius
    # Rasterize only the shape's box, at _SUPERSAMPLE times the resolution, then box-filter it down.
    left, top = (int(v) for v in np.floor(center - radius * max(aspect, 1 / aspect)) - 1)
    side = int(math.ceil(2 * radius * max(aspect, 1 / aspect))) + 3
    s = _SUPERSAMPLE
    mask = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(mask)
    for polygon, fill in strokes:
        points = (polygon @ transform + center - (left, top)) * s
        draw.polygon([tuple(p) for p in points.tolist()], fill=255 if fill else 0)
    mask = mask.resize((side, side), Image.Resampling.BOX)
    image.paste(Image.new("RGB", (side, side), color), (left, top), mask)


def generate_image(class_index: int, rng: np.random.Generator, config: ShapesConfig) -> Image.Image:
    """Draw one image of a class.

    Args:
        class_index: The label, in ``range(config.num_classes)``.
        rng: The random generator; the image is a pure function of its state and the config.
        config: The dataset config (difficulty, image sizes).

    Returns:
        An RGB image whose sides lie in [config.min_size, config.max_size].

    Raises:
        UsageError: ``class_index`` is out of range.
    """
    if not _is_int(class_index) or not 0 <= class_index < config.num_classes:
        raise UsageError(f"class_index must be in range(0, {config.num_classes}), got {class_index!r}")
    jitter = _Jitter.from_difficulty(float(config.difficulty))
    width, height = _image_size(rng, config, jitter)
    palette = _Palette.random(rng, jitter)
    image = _background(rng, width, height, palette)
    _draw_clutter(image, rng, jitter)
    half_side = min(width, height) / 2

    # Small shapes of any class: the model must pick out the large one.
    for _ in range(int(rng.binomial(3, jitter.ghost_chance))):
        other = SHAPE_CLASSES[int(rng.integers(0, config.num_classes))]
        strokes = _SHAPES[other](rng, jitter.confusion)
        color = _random_color(rng, palette.objects)
        _paint_shape(image, strokes, color, half_side * rng.uniform(0.15, 0.3), rng, jitter)

    strokes = _SHAPES[SHAPE_CLASSES[class_index]](rng, jitter.confusion)
    color = _random_color(rng, palette.objects)
    _paint_shape(image, strokes, color, half_side * rng.uniform(jitter.min_scale, 0.95), rng, jitter)

    if rng.random() < jitter.occlusion_chance:
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.1, jitter.occlusion_size, size=2) * np.array([width, height])
        ImageDraw.Draw(image).rectangle([x, y, x + w, y + h], fill=_random_color(rng, palette.background))
    blur = rng.uniform(0, jitter.blur)
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))

    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * np.float32(rng.uniform(3, jitter.noise))
    return Image.fromarray((np.asarray(image, np.float32) + noise).clip(0, 255).astype(np.uint8))


# --- splits and folders ----------------------------------------------------------------------


def _check_split(split: str, n_per_class: int) -> None:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not _is_int(n_per_class) or n_per_class < 0:
        raise UsageError(f"n_per_class must be a non-negative integer, got {n_per_class!r}")


def shapes_samples(split: str, n_per_class: int, config: ShapesConfig) -> list[tuple[Image.Image, int]]:
    """Generate a balanced split of the shapes dataset.

    Image ``i`` of class ``c`` depends only on (config, split, c, i), so a larger ``n_per_class``
    extends a smaller one, and the splits never share an image.

    Args:
        split: One of ``"train"``, ``"val"``, ``"test"``, ``"calibration"``.
        n_per_class: Images per class.
        config: The dataset config.

    Returns:
        (image, label) pairs, interleaved by class (every prefix of ``num_classes`` items is balanced).

    Raises:
        UsageError: Unknown split or a bad count.
    """
    _check_split(split, n_per_class)
    split_code = SPLITS.index(split)
    samples = []
    for index in range(n_per_class):
        for label in range(config.num_classes):
            rng = np.random.default_rng([config.seed, split_code, label, index])
            samples.append((generate_image(label, rng, config), label))
    return samples


def shapes_arrays(
    split: str, n_per_class: int, config: ShapesConfig, spec: PreprocessSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a split and preprocess it exactly as the runtime would.

    Args:
        split: The split (see :func:`shapes_samples`).
        n_per_class: Images per class.
        config: The dataset config.
        spec: How images become model inputs (the artifact's preprocess block).

    Returns:
        (inputs, labels): float32 (N, …) in ``spec.layout`` and int64 (N,), in the order of
        :func:`shapes_samples`.

    Raises:
        UsageError: Unknown split or a count below 1.
    """
    if _is_int(n_per_class) and n_per_class == 0:
        raise UsageError("n_per_class must be at least 1 to build input arrays")
    samples = shapes_samples(split, n_per_class, config)
    inputs = np.stack([preprocess(image, spec) for image, _ in samples])
    return inputs, np.array([label for _, label in samples], dtype=np.int64)


def write_image_folder(
    root: str | os.PathLike[str],
    split: str,
    n_per_class: int,
    config: ShapesConfig,
    *,
    image_format: str = "png",
) -> Path:
    """Write a split of the shapes dataset as an image folder ``root/<split>/<class name>/<NNNN>.png``.

    Args:
        root: Parent folder; created when missing.
        split: The split to write (see :func:`shapes_samples`).
        n_per_class: Images per class.
        config: The dataset config.
        image_format: ``"png"`` (lossless) or ``"jpeg"`` (quality 95).

    Returns:
        The split folder ``root/<split>``, readable with :func:`vitedge.data.imagefolder.read_image_folder`.

    Raises:
        UsageError: Unknown format or split, a bad count, or a split folder that is not empty.
    """
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"unknown image_format {image_format!r}; choose one of {', '.join(IMAGE_FORMATS)}")
    _check_split(split, n_per_class)
    folder = Path(root) / split
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder}: folder is not empty", hint="choose a new folder or delete this one")
    names = shapes_class_names(config)
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    extension = IMAGE_FORMATS[image_format]
    options = {"quality": 95} if image_format == "jpeg" else {}
    for position, (image, label) in enumerate(shapes_samples(split, n_per_class, config)):
        index = position // config.num_classes
        image.save(folder / names[label] / f"{index:04d}{extension}", **options)
    return folder
