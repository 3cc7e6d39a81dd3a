"""The format/precision registry, and everything generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vitedge.errors import UsageError
from vitedge.formats import FORMATS, PRECISIONS, get_format, get_precision, load_entry_point
from vitedge.render import formats_rows, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_setup_commands():
    first_lines = README.read_text().splitlines()[:5]
    assert any(line.startswith("make quickstart") for line in first_lines)
    assert any(line.startswith("make test") for line in first_lines)


def test_readme_formats_table_is_the_registry():
    text = README.read_text()
    table = re.search(r"<!-- formats-table.*?-->\n(.*?)\n<!-- /formats-table -->", text, re.S).group(1)
    rows, header = formats_rows(installed=False)
    assert table == markdown_table(rows, header), "run `vitedge formats --markdown` and paste it into the README"


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_names_real_modules_and_known_precisions(name):
    fmt = FORMATS[name]
    assert set(fmt.precision_names) <= set(PRECISIONS)
    assert callable(load_entry_point(fmt.exporter))
    if fmt.backend_installed():
        assert callable(load_entry_point(fmt.backend))
    if fmt.validator:
        assert callable(load_entry_point(fmt.validator))


def test_lookups_suggest_close_matches():
    assert get_format("ONNX ") is FORMATS["onnx"]
    with pytest.raises(UsageError, match="did you mean 'onnx'"):
        get_format("Onxx")
    with pytest.raises(UsageError, match="did you mean 'int8-dynamic'"):
        get_precision("int8-dynamc")
    with pytest.raises(UsageError, match="does not support precision 'palettize4'.*choose one of: fp32"):
        get_format("onnx").support("palettize4")
