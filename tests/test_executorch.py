"""ExecuTorch: what is specific to it. The conformance suite (tests/test_conformance.py) covers what every
format owes (manifest, validation, predict/embed vs torch, batches, tampering, verify) from the registry row.

Here: the delegation record and the undelegated-matmul warning, the attention rewrite, the runtime's
clear errors (backend or torch not installed, a file that is no ExecuTorch program), and the recipes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA
from vitedge.cli import main
from vitedge.converters.executorch.delegation import (
    DelegationRecord,
    delegation_record,
    warn_if_matmuls_undelegated,
)
from vitedge.converters.executorch.quantize import CHOSEN, RECIPES
from vitedge.errors import ArtifactError, BackendUnavailableError
from vitedge.formats import FORMATS
from vitedge.runtime import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import FileEntry, read_manifest
from vitedge.runtime.preprocess import preprocess_batch

pytest.importorskip("executorch", reason="pip install 'vitedge[executorch]'")

FORMAT = FORMATS["executorch"]


def test_every_precision_has_a_recipe_and_every_recipe_a_known_precision():
    assert set(CHOSEN) == set(FORMAT.precision_names)
    assert all(recipe.precision in FORMAT.precision_names for recipe in RECIPES.values())
    assert all(CHOSEN[p].recipe in RECIPES and RECIPES[CHOSEN[p].recipe].precision == p for p in CHOSEN)
    assert all(RECIPES[CHOSEN[p].recipe].attention == "vitedge_bmm" for p in CHOSEN)


def test_family_choices_are_recipes_of_their_precision_for_families_the_format_converts():
    from vitedge.converters.executorch.quantize import FAMILY_CHOSEN, recipe_for

    for (family, precision), choice in FAMILY_CHOSEN.items():
        assert family in FORMAT.families and RECIPES[choice.recipe].precision == precision
        assert recipe_for(precision, family).name == choice.recipe != recipe_for(precision).name


def test_a_model_whose_attention_cannot_switch_keeps_its_own_kernel_and_says_so():
    from vitedge.converters.executorch.attention import KERNEL, attention_kernel
    from vitedge.converters.loading import load_source

    model = load_source("preset:mobilevit-tiny-test").model  # its attention does not call transformers' interface
    with attention_kernel(model, KERNEL) as kernel:
        assert kernel == model.config._attn_implementation != KERNEL


@pytest.mark.parametrize("precision", ["fp32", "int8-dynamic"])
def test_manifest_records_what_xnnpack_delegated_and_every_matmul_is_delegated(precision, artifact_of, capsys):
    recipe = read_manifest(artifact_of("executorch", precision)).conversion.recipe
    assert main(["inspect", str(artifact_of("executorch", precision))]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("delegation ")]
    assert len(shown) == 1 and "XnnpackBackend: " in shown[0] and "not delegated: " in shown[0]
    delegation = recipe["delegation"]
    assert recipe["attention_kernel"] == "vitedge_bmm" and recipe["partitioner"] == "XnnpackPartitioner"
    assert recipe["layer_norm"].startswith("xnnpack")
    assert delegation["subgraphs"] >= 1 and delegation["delegated_nodes"] > 0
    assert delegation["undelegated_nodes"] == sum(delegation["undelegated"].values())
    # every op of the ViT's blocks is delegated (LayerNorm too, rewritten); only the [CLS] token's copies are not
    assert set(delegation["undelegated"]) <= {"aten.expand_copy", "aten.select_copy"}
    assert delegation["subgraphs"] <= 4  # one encoder, not one subgraph per LayerNorm


def test_layer_norm_rewrite_computes_what_layer_norm_computes_and_is_undone():
    import torch

    from vitedge.converters.executorch.layernorm import delegable_layer_norm, layer_norms_for_xnnpack

    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(48, eps=1e-6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    for shape in ((5, 48), (2, 7, 48), (48,)):
        x = torch.randn(*shape) * 3 + 1
        torch.testing.assert_close(delegable_layer_norm(norm, x), norm(x), atol=1e-5, rtol=1e-5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 48), norm)
    x = torch.randn(2, 3, 4)
    with layer_norms_for_xnnpack(model) as recorded:
        assert recorded and "forward" in vars(norm)
        torch.testing.assert_close(model(x), torch.nn.functional.layer_norm(model[0](x), (48,), norm.weight,
                                                                           norm.bias, 1e-6), atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(norm)
    with layer_norms_for_xnnpack(model, enabled=False) as recorded:
        assert recorded is None and "forward" not in vars(norm)


def _bmm_module():
    import torch

    class TwoMatmuls(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.proj(x)
            return torch.bmm(torch.softmax(torch.bmm(h, h.transpose(1, 2)), dim=-1), h)

    return TwoMatmuls().eval(), (torch.randn(2, 4, 8),)


def _lowered(module, sample, partitioner):
    import torch
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(torch.export.export(module, sample), partitioner=[partitioner])


def test_a_matmul_xnnpack_did_not_take_is_recorded_and_warned_about_in_one_line():
    from executorch.backends.xnnpack.partition.config.gemm_configs import LinearConfig
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    module, sample = _bmm_module()
    record = delegation_record(_lowered(module, sample, XnnpackPartitioner(configs=[LinearConfig])))
    assert record.undelegated_matmuls == {"aten.bmm": 2} and record.subgraphs == 1
    with pytest.warns(UserWarning) as caught:
        warn_if_matmuls_undelegated(record, "ExecuTorch fp32")
    (warning,) = caught
    message = str(warning.message)
    assert "\n" not in message and message.startswith("ExecuTorch fp32: XNNPACK did not take 2 aten.bmm")


def test_a_fully_delegated_program_warns_nothing():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    module, sample = _bmm_module()
    record = delegation_record(_lowered(module, sample, XnnpackPartitioner()))
    assert record.undelegated == {} and record.delegated > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_matmuls_undelegated(record, "ExecuTorch fp32")


def test_the_record_counts_compute_only():
    record = DelegationRecord(3, 40, {"aten.native_layer_norm": 5, "aten.bmm": 1})
    assert record.to_dict()["undelegated_nodes"] == 6 and record.undelegated_matmuls == {"aten.bmm": 1}


def test_bmm_attention_computes_what_eager_attention_computes(tiny_folder):
    import torch

    from vitedge.converters.executorch.attention import KERNEL, attention_kernel
    from vitedge.converters.loading import load_source

    source = load_source(str(tiny_folder))
    module = source.two_outputs().eval()
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), attention_kernel(source.model, "eager"):
        eager = module(pixels)
    before = source.model.config._attn_implementation
    with torch.no_grad(), attention_kernel(source.model, KERNEL) as kernel:
        rewritten = module(pixels)
    assert kernel == KERNEL and source.model.config._attn_implementation == before
    for a, b in zip(eager, rewritten):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# -- the runtime's errors -------------------------------------------------------------------------------


def test_not_installed_says_what_to_install(artifact_of, monkeypatch):
    import importlib.util

    folder = artifact_of("executorch", "fp32")
    real = importlib.util.find_spec
    for missing in ("executorch", "torch"):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, missing=missing: None if name == missing else real(name, *a))
        with pytest.raises(BackendUnavailableError, match=r"needs executorch \(with torch\), which is not installed") as caught:
            Classifier.open(folder)
        assert caught.value.hint == "pip install 'vitedge[executorch]'"


def test_converting_without_executorch_says_what_to_install(tiny_folder, tmp_path, monkeypatch):
    import importlib.util

    from vitedge.converters import convert
    from vitedge.errors import ConversionError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    with pytest.raises(ConversionError, match=r"needs executorch, which is not installed; pip install 'vitedge\[convert\]'"):
        convert(str(tiny_folder), to="executorch", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _with_model_file(folder: Path, tmp_path: Path, data: bytes) -> Path:
    """A copy of the artifact whose model file is ``data``, its checksum updated (so the runtime reads it)."""
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    manifest = read_manifest(copy)
    (copy / manifest.model_file).write_bytes(data)
    files = tuple(FileEntry.of(copy, e.path) if e.path == manifest.model_file else e for e in manifest.files)
    dataclasses.replace(manifest, files=files).write(copy)
    return copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: bytes([0xFF] * 8) + data[8:], "not an ExecuTorch program"),
        (lambda data: data[: len(data) // 2], r"ExecuTorch cannot load it \(File size is too small"),
        (lambda data: b"", "not an ExecuTorch program"),
    ],
    ids=["garbage-header", "truncated", "empty"],
)
def test_a_file_that_is_no_executorch_program_is_an_artifact_error(damage, message, artifact_of, tmp_path):
    folder = artifact_of("executorch", "fp32")
    broken = _with_model_file(folder, tmp_path, damage((folder / "model.pte").read_bytes()))
    with pytest.raises(ArtifactError, match=message) as caught:
        Classifier.open(broken)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{broken / 'model.pte'}: ")


def test_a_garbage_model_file_is_one_line_from_the_cli_not_a_crash(artifact_of, tmp_path):
    """ExecuTorch 1.5 aborts the whole process on a file identifier that is not UTF-8; the backend checks first."""
    folder = artifact_of("executorch", "fp32")
    broken = _with_model_file(folder, tmp_path, bytes(range(128, 256)) * 4)
    script = f"from vitedge.cli import main; raise SystemExit(main(['predict', {str(broken)!r}, {str(DATA / 'astronaut.jpg')!r}]))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr.splitlines() == [f"vitedge: error: {broken / 'model.pte'}: not an ExecuTorch program "
                                        "(no 'ET' file identifier); re-create the artifact with vitedge convert --to executorch"]


def test_batches_run_image_by_image(artifact_of):
    classifier = Classifier.open(artifact_of("executorch", "int8-dynamic"), batch_size=4)
    assert classifier.backend.max_batch_size == 1 and classifier.backend.name == "executorch"
    outputs = classifier.run(np.zeros((3, 3, 32, 32), dtype=np.float32))
    assert outputs["logits"].shape == (3, 4) and outputs["embedding"].shape == (3, 64)
    np.testing.assert_array_equal(outputs["logits"][0], outputs["logits"][2])


def test_the_thread_pool_is_sized_once_per_process_and_never_under_a_loaded_program(artifact_of):
    """Resizing ExecuTorch's pool under a loaded program hangs that program's next run: a later count warns instead."""
    folders = [str(artifact_of("executorch", "fp32")), str(artifact_of("executorch", "int8-dynamic"))]
    script = textwrap.dedent(
        f"""
        import warnings
        import numpy as np
        from vitedge.runtime import Classifier
        first = Classifier.open({folders[0]!r}, num_threads=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            second = Classifier.open({folders[1]!r}, num_threads=2)
        x = np.zeros((2, 3, 32, 32), dtype=np.float32)
        for _ in range(3):
            first.run(x), second.run(x)
        print(first.backend.num_threads, second.backend.num_threads, [str(w.message) for w in caught])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second, messages = done.stdout.split(" ", 2)
    assert (first, second) == ("1", "1") and "2 thread(s) not applied" in messages


def test_formats_says_the_runtime_needs_torch(capsys):
    assert main(["formats", "--json"]) == 0
    row = next(row for row in json.loads(capsys.readouterr().out) if row["format"] == "executorch")
    assert row["runtime"] == ["executorch"] and row["runtime_requires"] == ["torch"]
    assert FORMAT.runtime_text == "executorch + torch"


# -- the published benchmarks' peer: ExecuTorch's documented recipe ------------------------------------


def test_the_peer_is_executorchs_documented_recipe_and_runs_in_the_runtime(tiny_folder, artifact_of, tmp_path):
    from vitedge.benchmarks.studies.peers import EXECUTORCH_PEER, executorch_docs_peer
    from vitedge.converters.loading import load_source

    folder = executorch_docs_peer(load_source(str(tiny_folder)), "fp32", tmp_path / "peer")
    manifest = read_manifest(folder)
    recipe = manifest.conversion.recipe
    assert recipe["peer"] == EXECUTORCH_PEER and recipe["name"] == "executorch-docs-fp32" and manifest.validation is None
    assert recipe["attention_kernel"] not in (None, "vitedge_bmm")  # the model's own kernel
    ours = read_manifest(artifact_of("executorch", "fp32")).conversion.recipe["delegation"]
    # the model's own attention leaves its mask and the 4-D matmuls' expand copies to portable kernels
    assert recipe["delegation"]["undelegated_nodes"] > ours["undelegated_nodes"]
    assert recipe["delegation"]["subgraphs"] > ours["subgraphs"]
    inputs = preprocess_batch([load_rgb(DATA / "astronaut.jpg"), load_rgb(DATA / "coffee.png")], manifest.preprocess)
    ours_logits = Classifier.open(artifact_of("executorch", "fp32")).run(inputs)["logits"]
    np.testing.assert_allclose(Classifier.open(folder).run(inputs)["logits"], ours_logits, atol=1e-4)


def test_publish_benchmarks_the_executorch_peers(monkeypatch, tmp_path):
    from vitedge.benchmarks.studies import publish

    monkeypatch.setattr(publish, "_slot", lambda folder, fresh, make, target, failed: target)
    plan = publish.Plan("tiny", "tiny-vit", settings=None, samples=1)
    peers = {target.name: target for target in publish.plan_slots(plan, None, tmp_path, fresh=False)
             if target.kind == "peer"}
    for precision in ("fp32", "int8-dynamic"):
        target = peers[f"ExecuTorch-{precision} (docs recipe)"]
        assert target.spec == str(tmp_path / "peers" / f"executorch-{precision}")
    assert len({target.spec for target in peers.values()}) == len(peers), "each peer in a folder of its own"
