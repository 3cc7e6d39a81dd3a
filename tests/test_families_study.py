"""The family study (benchmarks/studies/families.py): the registry cells it converts, and its quick path end to end
(tiny presets, a handful of images): the report's structure, not its numbers."""

from __future__ import annotations

import dataclasses
import re

import pytest

from vitedge.benchmarks.results import load_runs
from vitedge.benchmarks.studies import families
from vitedge.benchmarks.studies.families_matrix import (
    CONVERT,
    REFUSED,
    UNTESTED,
    cell,
    default_precisions,
    family_cells,
)
from vitedge.formats import FAMILIES, FORMATS, Unsupported


def test_cells_follow_the_registry():
    onnx = FORMATS["onnx"]
    for family in FAMILIES:
        for item in family_cells(family):
            fmt = FORMATS[item.format]
            assert item.precision in fmt.precision_names
            if item.status == CONVERT:
                assert family in fmt.families
            if item.status == UNTESTED:
                assert family not in fmt.families
            assert item.converts == (item.status != REFUSED)  # the study measures what is not refused
    assert len(family_cells("vit")) == sum(len(fmt.precisions) for fmt in FORMATS.values())
    refused = cell(FORMATS["tflite"], "mobilevit", "int8-static")
    assert refused.status == REFUSED and "convolutions" in refused.reason and "int8-dynamic" in refused.reason
    assert cell(onnx, "dinov2", "fp16").status == cell(onnx, "dinov2", "fp32").status == CONVERT


def test_a_refusal_with_options_that_convert_is_converted_with_them():
    fmt = dataclasses.replace(FORMATS["onnx"], families=("vit", "mobilevitv2"), unsupported=(
        Unsupported(("mobilevitv2",), "col2im", "use --exporter dynamo --opset 18",
                    unless=(("exporter", "dynamo"), ("opset", 18))),
        Unsupported(("mobilevitv2",), "fp16 fold", "use fp32", precisions=("fp16",)),
    ))
    converted = cell(fmt, "mobilevitv2", "fp32")
    assert converted.status == CONVERT and converted.options_text == "--exporter dynamo --opset 18"
    assert cell(fmt, "mobilevitv2", "fp16").status == REFUSED  # refused whatever the options
    assert cell(fmt, "vit", "fp32").options == ()


def test_default_precisions_are_fp32_and_the_first_int8():
    assert default_precisions(FORMATS["onnx"]) == ("fp32", "int8-dynamic")
    assert default_precisions(FORMATS["coreml"]) == ("fp32", "int8-weight")
    assert len(family_cells("vit", ["onnx", "coreml"], every_precision=False)) == 4


def test_unknown_family_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        families.main(["--families", "vit,deitt", "--quick"])
    assert exit_info.value.code == 2
    assert "--families: unknown deitt; choose from vit, deit" in capsys.readouterr().err


def _table(lines: list[str], heading: str) -> list[list[str]]:
    """The first Markdown table after ``heading``: its header and rows, as cells."""
    start = next(i for i in range(lines.index(heading), len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start:end] if "---" not in line]


@pytest.mark.slow
def test_quick_study_writes_both_parts(tmp_path, capsys):
    out = tmp_path / "families.md"
    code = families.main(["--quick", "--families", "vit", "--formats", "onnx", "--threads", "1", "--out", str(out),
                          "--work", str(tmp_path / "work")])
    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line.startswith("#")] == [
        "# Model families after conversion: accuracy, latency, size, memory",
        "## 1. Accuracy after conversion", "### ONNX",
        "## 2. Latency, size and peak memory (random weights)", "### ViT tiny: `preset:vit-tiny-test` (a test preset)"]
    models = _table(lines, "## 1. Accuracy after conversion")
    assert models[0][:4] == ["family", "preset", "parameters", "preprocessing (the family's processor)"]
    assert models[1][:2] == ["ViT", "`vit-tiny-test`"] and models[1][4] == "1 of 1"
    onnx = _table(lines, "### ONNX")
    assert onnx[0] == ["family", "PyTorch fp32", *FORMATS["onnx"].precision_names]
    measured = dict(zip(onnx[0], onnx[1]))
    for precision in default_precisions(FORMATS["onnx"]):
        assert re.fullmatch(r"\d+\.\d% \(\d+\.\d%\)", measured[precision]), measured
    assert measured["fp16"] == "-"  # the quick path converts fp32 and int8-dynamic only

    details = _table(lines, "### ViT tiny: `preset:vit-tiny-test` (a test preset)")
    assert [row[0] for row in details[1:]] == ["PyTorch eager fp32", "onnx-fp32", "onnx-int8-dynamic"]
    assert all(row[-1] == "ok" and re.fullmatch(r"[\d.,]+", row[1]) for row in details[1:])
    runs = load_runs(out.with_suffix(".json"))
    assert [run.title for run in runs] == ["ViT accuracy", "ViT tiny"]
    assert runs[0].data.labelled and runs[1].settings.threads == 1

    # everything is cached: a second pass trains and converts nothing
    capsys.readouterr()
    assert families.main(["--quick", "--families", "vit", "--formats", "onnx", "--convert-only",
                          "--work", str(tmp_path / "work")]) == 0
    said = capsys.readouterr().err
    assert "fine-tuning" not in said and "ready (" not in said and "models and artifacts are ready" in said
