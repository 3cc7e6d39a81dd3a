"""Real data: scikit-learn's handwritten digits through every format and precision, classified by the runtime.

A small ViT (the quickstart's architecture) is fine-tuned with ``vitedge finetune`` on 1,400 of the 1,797
digit images (8x8 grayscale, upscaled to 32x32), converted to each (format, precision) given, and every
artifact classifies the 397 held-out digits through the torch-free runtime. The table shows each one's
accuracy and its distance from fp32: int8 should stay within 1.5 points. Accuracy only, no timings.

    python -m vitedge.benchmarks.studies.real_digits --out benchmarks/results/real_digits.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitedge.benchmarks.results_file import emit, measured_on

DEFAULT_TARGETS = (
    "onnx:fp32", "onnx:int8-dynamic", "onnx:int8-static", "tflite:fp32", "tflite:int8-dynamic", "tflite:int8-static",
    "openvino:fp32", "openvino:bf16", "openvino:int8-static", "openvino:int8-weight", "executorch:fp32",
    "executorch:int8-dynamic", "executorch:int8-static",
)
TRAIN_IMAGES = 1400
DESCRIPTION = (
    "A 4-block ViT (the quickstart's architecture) fine-tuned from scratch with `vitedge finetune` on 1,400 of "
    "scikit-learn's 1,797 handwritten digits (8x8 grayscale, upscaled to 32x32); each artifact classifies the 397 "
    "held-out digits through the torch-free runtime. int8-static calibrates on the training images."
)


def write_digits(root: Path, seed: int = 0) -> None:
    """The digits as two ImageFolders, ``root/train`` and ``root/test``, and a from-scratch ViT config."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from transformers import ViTConfig

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    for split, indices in (("train", order[:TRAIN_IMAGES]), ("test", order[TRAIN_IMAGES:])):
        for index in indices:
            pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
            folder = root / split / str(digits.target[index])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "L").resize((32, 32), Image.NEAREST).save(folder / f"{index:04d}.png")
    names = {index: str(index) for index in range(10)}
    ViTConfig(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512, image_size=32,
              patch_size=8, num_labels=10, id2label=names, label2id={v: k for k, v in names.items()}
              ).to_json_file(root / "config.json")


def fine_tune(root: Path, epochs: int) -> Path:
    """``vitedge finetune`` from the config, as a user runs it."""
    model = root / "model"
    if not (model / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "vitedge.cli", "finetune", str(root / "config.json"), "--data",
                        str(root / "train"), "--out", str(model), "--epochs", str(epochs), "--lr", "1e-3",
                        "--threads", "1", "--quiet"], check=True)
    return model


def accuracy(artifact: Path, test: Path) -> float:
    """Top-1 accuracy of ``artifact`` on the test ImageFolder, through the runtime."""
    from vitedge.runtime import Classifier
    from vitedge.runtime.images import expand_image_paths

    paths = expand_image_paths([str(test)])
    truth = np.array([int(Path(path).parent.name) for path in paths])
    predicted = np.array([result.predictions[0].index for result in Classifier.open(artifact).predict(paths, top_k=1)])
    return float(np.mean(predicted == truth))


def convert_target(root: Path, model: Path, target: str) -> Path:
    from vitedge.converters import ExportOptions, convert

    fmt, precision = target.split(":")
    out = root / "artifacts" / f"{fmt}-{precision}"
    if not (out / "manifest.json").is_file():
        options = ExportOptions(calibration=str(root / "train")) if precision == "int8-static" else None
        convert(str(model), to=fmt, precision=precision, out=out, validation_images=root / "test", options=options)
    return out


def report(rows: list[tuple[str, float]]) -> str:
    fp32 = {target.split(":")[0]: value for target, value in rows if target.endswith(":fp32")}
    lines = ["| format | precision | test accuracy | vs fp32 (points) |", "|---|---|---|---|"]
    for target, value in rows:
        fmt, precision = target.split(":")
        delta = "" if fmt not in fp32 else f"{100 * (value - fp32[fmt]):+.2f}"
        lines.append(f"| {fmt} | {precision} | {100 * value:.2f}% | {delta} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the Markdown file to write (default: print)")
    parser.add_argument("--work", type=Path, default=Path(".bench-work/real-digits"), help="data, model, artifacts")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="FORMAT:PRECISION,...")
    args = parser.parse_args(argv)
    if not (args.work / "test").is_dir():
        write_digits(args.work)
    model = fine_tune(args.work, args.epochs)
    rows = []
    for target in args.targets.split(","):
        rows.append((target, accuracy(convert_target(args.work, model, target), args.work / "test")))
        print(f"{target}: {100 * rows[-1][1]:.2f}%", flush=True)
    command = "python -m vitedge.benchmarks.studies.real_digits" + (f" --out {args.out}" if args.out else "")
    body = (f"# Real data: handwritten digits in every format\n\n`{command}`. {measured_on()}\n\n"
            f"{DESCRIPTION}\n\n{report(rows)}\n")
    emit(body, args.out)


if __name__ == "__main__":
    main()
