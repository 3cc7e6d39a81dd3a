"""The iOS demo cannot be built here (no Swift toolchain): its Swift parses, its tests read golden files that
exist, and the Swift and Kotlin cores know the same preprocess keys as the runtime."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from vitedge.runtime.preprocess_spec import RESAMPLE_FILTERS, PreprocessSpec

ROOT = Path(__file__).resolve().parents[1]
IOS = ROOT / "ios_demo"
GOLDEN = ROOT / "demo_golden"
SWIFT_FILES = sorted(IOS.rglob("*.swift"))


def _syntax_errors(parser, path: Path) -> list[str]:
    found, stack = [], [parser.parse(path.read_bytes()).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            what = f"missing {node.type}" if node.is_missing else f"syntax error near {node.text[:40]!r}"
            found.append(f"{path.relative_to(IOS)}:{node.start_point[0] + 1}:{node.start_point[1] + 1}: {what}")
        stack.extend(node.children)
    return found


def test_every_swift_file_parses():
    tree_sitter = pytest.importorskip("tree_sitter", reason="pip install 'vitedge[dev]' (tree-sitter, tree-sitter-swift)")
    swift = pytest.importorskip("tree_sitter_swift", reason="pip install 'vitedge[dev]' (tree-sitter-swift)")
    parser = tree_sitter.Parser(tree_sitter.Language(swift.language()))
    assert len(SWIFT_FILES) >= 12, [p.name for p in SWIFT_FILES]
    errors = [error for path in SWIFT_FILES for error in _syntax_errors(parser, path)]
    assert not errors, "\n".join(errors)


def test_swift_tests_read_golden_files_that_exist():
    tests = IOS / "VitedgeCore" / "Tests" / "VitedgeCoreTests"
    golden_swift = (tests / "Golden.swift").read_text("utf-8")
    relative = re.search(r'relativePath = "([^"]+)"', golden_swift).group(1)
    assert ((tests / relative).resolve() / "index.json").is_file(), f"{relative} from {tests} is not demo_golden/"
    names_in_golden = {p.name for p in GOLDEN.rglob("*") if p.is_file()}
    text = "\n".join(p.read_text("utf-8") for p in tests.glob("*.swift"))
    for literal in set(re.findall(r'"([\w./-]+\.(?:json|u8|f32))"', text)):
        if "/" in literal:
            assert (GOLDEN / literal).is_file(), f"Swift tests read demo_golden/{literal}, which does not exist"
        else:
            assert literal in names_in_golden, f"Swift tests read {literal}, which no golden case has"
    for folder in set(re.findall(r'appendingPathComponent\("((?:images|topk)/[\w]+)', text)):
        assert (GOLDEN / folder).is_dir(), f"Swift tests read demo_golden/{folder}, which does not exist"
    selfchecks = set(re.findall(r'folder\("(\w+)"\)', text))
    assert selfchecks, "the Swift tests run no golden self-check case"
    for name in selfchecks:
        assert (GOLDEN / "selfcheck" / name / "manifest.json").is_file(), f"Swift tests read demo_golden/selfcheck/{name}, which does not exist"
    for key in ("rgb", "resized", "tensor", "logits", "expected", "file", "width", "height", "shape", "count", "k"):
        assert f'"{key}"' in text, f"Swift tests do not read case.json's {key!r}"


def test_swift_and_kotlin_cores_know_the_runtimes_preprocess_keys_and_filters():
    keys = {field.name for field in dataclasses.fields(PreprocessSpec)}
    swift = (IOS / "VitedgeCore" / "Sources" / "VitedgeCore" / "PreprocessSpec.swift").read_text("utf-8")
    kotlin = (ROOT / "android_demo" / "core" / "src" / "main" / "kotlin" / "dev" / "vitedge" / "core" / "PreprocessSpec.kt").read_text("utf-8")
    swift_keys = set(re.findall(r'"(\w+)"', re.search(r"knownKeys: Set<String> = \[(.*?)\]", swift, re.S).group(1)))
    kotlin_keys = set(re.findall(r'"(\w+)"', re.search(r"KNOWN_KEYS = setOf\((.*?)\)", kotlin, re.S).group(1)))
    assert swift_keys == keys == kotlin_keys, (swift_keys ^ keys, kotlin_keys ^ keys)
    swift_filters = set(re.search(r"case (nearest, .*)", swift).group(1).replace(" ", "").split(","))
    kotlin_filters = set(re.findall(r'^\s+\w+\("(\w+)", [\d.]+\)', kotlin, re.M))
    assert swift_filters == set(RESAMPLE_FILTERS) == kotlin_filters
