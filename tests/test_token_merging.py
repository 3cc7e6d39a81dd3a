"""Token merging (ToMe): the merge against ToMe's own formulation, the plan, conversions that reproduce the
token-merged torch model in every format that takes it, R = 0 as the unmerged graph, the budget, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import VALIDATION_SAMPLES
from vitedge.cli import main
from vitedge.converters import ExportOptions, convert, load_source
from vitedge.converters.token_merging.merge import BlockShape, bipartite_merge
from vitedge.converters.token_merging.model import plan_for, token_merged_source
from vitedge.converters.token_merging.plan import plan_tokens
from vitedge.converters.validate import torch_outputs, validation_inputs
from vitedge.errors import UsageError
from vitedge.formats import FORMATS

R = 4  # the tiny ViT (32 px, patch 8): 17 tokens, 2 blocks, so 17 -> 13 -> 9
TOKEN_MERGING_FORMATS = [name for name, fmt in FORMATS.items() if "token_merging" in fmt.options]


def _tome_reference(hidden, size, keys, r, protected):
    """ToMe's own formulation (a full sort, then a scatter-add), to check the exportable one against."""
    metric = keys[:, protected:] / keys[:, protected:].norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)
    node_max, node_idx = scores.max(dim=-1)
    edges = node_max.argsort(dim=-1, descending=True)[..., None]
    kept, merged = edges[:, r:].sort(dim=1).values, edges[:, :r]
    targets = node_idx[..., None].gather(1, merged)

    def merge(values):
        src, dst = values[:, protected:][:, ::2], values[:, protected:][:, 1::2]
        width = values.shape[-1]
        dst = dst.scatter_reduce(1, targets.expand(-1, -1, width), src.gather(1, merged.expand(-1, -1, width)),
                                 reduce="sum")
        return torch.cat([src.gather(1, kept.expand(-1, -1, width)), dst], dim=1)

    sums, sizes = merge(hidden * size), merge(size)
    return torch.cat([hidden[:, :protected], sums / sizes], 1), torch.cat([size[:, :protected], sizes], 1)


@pytest.mark.parametrize(("tokens", "protected", "r"), [(19, 1, 1), (19, 1, 9), (20, 2, 5), (198, 2, 16)])
def test_the_merge_is_tomes_bipartite_soft_matching(tokens, protected, r):
    generator = torch.Generator().manual_seed(tokens + r)
    hidden = torch.randn(3, tokens, 16, generator=generator)
    keys = torch.randn(3, tokens, 8, generator=generator)
    size = torch.randint(1, 5, (3, tokens, 1), generator=generator).float()
    size[:, :protected] = 1  # protected tokens never merge: they stand for themselves
    shape = BlockShape(tokens=tokens, protected=protected, heads=2, head_dim=8, hidden=16)
    merged, merged_size = bipartite_merge(hidden, size, keys, r, shape)
    expected, expected_size = _tome_reference(hidden, size, keys, r, protected)
    assert merged.shape == (3, tokens - r, 16) and torch.equal(merged_size, expected_size)
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)
    # nothing is lost: the patches and their size-weighted sum are the same before and after
    assert torch.equal(merged_size.sum(1), size.sum(1))
    torch.testing.assert_close((merged * merged_size).sum(1), (hidden * size).sum(1), rtol=1e-4, atol=1e-4)
    assert torch.equal(merged[:, :protected], hidden[:, :protected]), "[CLS] (and DeiT's distillation token) stay"
    first, first_size = bipartite_merge(hidden, None, keys, r, shape)  # before any merge: every size is 1
    expected, expected_size = _tome_reference(hidden, torch.ones_like(size), keys, r, protected)
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(first_size, expected_size)


def test_a_constant_r_merges_fewer_where_fewer_tokens_are_left():
    plan = plan_tokens(16, tokens=197, blocks=12, protected=1)  # ViT-B/16-224, ToMe's r = 16
    assert plan.schedule == (16,) * 11 + (10,) and plan.tokens[:3] == (197, 181, 165) and plan.final_tokens == 11
    assert plan_tokens((0, 8, 2), tokens=17, blocks=3, protected=1).tokens == (17, 17, 9)


@pytest.mark.parametrize(("value", "message"), [
    (17, "--token-merging 17: ViT's 12 blocks would merge 204 tokens, it has 196 patch tokens"),
    ((8, 8), "--token-merging 8,8: a schedule gives one r per block; ViT has 12 blocks, this gives 2"),
    ((99,) + (0,) * 11, "--token-merging 99,0,0,0,0,0,0,0,0,0,0,0: block 0 has 197 tokens (1 protected), at most 98"),
])
def test_a_plan_the_tokens_do_not_allow_is_refused(value, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        plan_tokens(value, tokens=197, blocks=12, protected=1, family="ViT")


@pytest.mark.parametrize("model_type", ["vit", "deit"])
def test_every_block_sees_the_tokens_the_plan_says(model_type, tmp_path):
    from tests.conftest import write_tiny_folder

    source = load_source(str(write_tiny_folder(tmp_path / model_type, model_type=model_type)))
    plan = plan_for(source, R)
    assert plan.protected == {"vit": 1, "deit": 2}[model_type]
    merged = token_merged_source(source, plan)
    seen: list[int] = []
    blocks = getattr(merged.model, merged.model.base_model_prefix).layers
    hooks = [norm.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[1]))
             for block in blocks for norm in (block.layernorm_before, block.layernorm_after)]
    with torch.no_grad():
        merged.two_outputs()(torch.zeros(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert seen == [count for tokens, r in zip(plan.tokens, plan.schedule) for count in (tokens, tokens - r)]


def test_r_zero_is_the_unmerged_graph_exactly(tiny_folder, tiny_artifact, tmp_path):
    import onnx

    source = load_source(str(tiny_folder))
    assert token_merged_source(source, plan_for(source, 0)) is source
    assert ExportOptions(token_merging=0).changed() == () and ExportOptions(token_merging=(0, 0)).changed()
    out = tmp_path / "r0"
    for off in (0, (0, 0)):
        convert(str(tiny_folder), to="onnx", out=out, options=ExportOptions(token_merging=off), overwrite=True,
                validation_samples=VALIDATION_SAMPLES)
        assert onnx.load(str(out / "model.onnx")).graph == onnx.load(str(tiny_artifact / "model.onnx")).graph
        assert "token_merging" not in json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def merged_onnx(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("token-merging") / "onnx-fp32"
    convert(str(tiny_folder), to="onnx", out=out, options=ExportOptions(token_merging=R),
            validation_samples=VALIDATION_SAMPLES)
    return out


def test_the_onnx_graph_has_the_token_counts_the_manifest_records(merged_onnx):
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(merged_onnx / "model.onnx")))
    shapes = {value.name: [d.dim_value or None for d in value.type.tensor_type.shape.dim]
              for value in model.graph.value_info}
    norms = [shapes[node.output[0]][1] for node in model.graph.node if node.op_type == "LayerNormalization"]
    recorded = json.loads((merged_onnx / "manifest.json").read_text())["token_merging"]
    assert recorded["schedule"] == [R, R] and recorded["tokens"] == [17, 13] and recorded["final_tokens"] == 9
    expected = [count for tokens, r in zip(recorded["tokens"], recorded["schedule"]) for count in (tokens, tokens - r)]
    assert norms == [*expected, recorded["final_tokens"]], "static token counts, block by block, then the final norm"


def test_the_manifest_records_the_cost_against_the_unmerged_model(merged_onnx, tiny_folder):
    from vitedge.runtime.manifest import read_manifest

    manifest = read_manifest(merged_onnx)  # the schema takes the new field
    against = manifest.token_merging.against_unmerged
    source = load_source(str(tiny_folder))
    inputs, _ = validation_inputs(source.preprocess, VALIDATION_SAMPLES)
    unmerged = torch_outputs(source, inputs)["logits"]
    merged = torch_outputs(token_merged_source(source, plan_for(source, R)), inputs)["logits"]
    assert against["samples"] == VALIDATION_SAMPLES and against["reference"] == "torch fp32, unmerged"
    assert against["top1_agreement"] == float(np.mean(unmerged.argmax(1) == merged.argmax(1)))
    assert manifest.validation.reference == "torch fp32, token-merged as token_merging says"


def test_a_malformed_token_merging_field_is_refused_naming_it(merged_onnx, tmp_path):
    import shutil

    from vitedge.errors import ArtifactError
    from vitedge.runtime.manifest import read_manifest

    folder = tmp_path / "copy"
    shutil.copytree(merged_onnx, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["token_merging"]["tokens"] = "17,13"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="token_merging.tokens"):
        read_manifest(folder)


def test_merged_blocks_export_as_multi_head_attention_with_log_size_as_bias(tiny_folder, tmp_path):
    import onnx
    import onnxruntime as ort

    from vitedge.converters.onnx.attention import MULTI_HEAD_ATTENTION, fused_attention

    source = token_merged_source(load_source(str(tiny_folder)), plan_for(load_source(str(tiny_folder)), R))
    wrapper = source.two_outputs().eval()
    inputs, _ = validation_inputs(source.preprocess, 4)
    path = tmp_path / "fused.onnx"
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(inputs))[0].numpy()
        with fused_attention(source.model, MULTI_HEAD_ATTENTION) as fused:
            torch.onnx.export(wrapper, (torch.from_numpy(inputs),), str(path), dynamo=False, opset_version=17,
                              input_names=["pixel_values"], custom_opsets={"com.microsoft": 1})
    nodes = [node for node in onnx.load(str(path)).graph.node if node.op_type == MULTI_HEAD_ATTENTION]
    # block 1 sees no sizes yet (plain); block 2 adds log(size): inputs 3 and 4 absent, the bias sixth
    assert fused == len(nodes) == 2 and [len(node.input) for node in nodes] == [3, 6] and nodes[1].input[3:5] == ["", ""]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"pixel_values": inputs})[0] - expected).max() < 1e-4


def test_an_int8_dynamic_merged_onnx_graph_records_its_fused_attention(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=tmp_path / "int8",
                     options=ExportOptions(token_merging=R), validation_samples=VALIDATION_SAMPLES)
    recipe = result.manifest.conversion.recipe
    assert recipe["fused_attention_layers"] == 2 and recipe["fused_attention_op"] == "com.microsoft.MultiHeadAttention"
    assert result.manifest.validation.passed


def _closer_to_merged(folder, source, plan) -> None:
    """The artifact's logits are the token-merged model's, not the unmerged one's (the graph really merges)."""
    from vitedge.runtime import Classifier

    inputs, _ = validation_inputs(source.preprocess, 8)
    artifact = Classifier.open(folder).run(inputs)["logits"]
    merged = torch_outputs(token_merged_source(source, plan), inputs)["logits"]
    unmerged = torch_outputs(source, inputs)["logits"]
    assert np.abs(artifact - merged).max() < 0.1 * np.abs(artifact - unmerged).max()


@pytest.mark.slow
@pytest.mark.parametrize(("format_name", "precision"), [
    *[(name, "fp32") for name in TOKEN_MERGING_FORMATS], ("onnx", "int8-dynamic"), ("tflite", "int8-dynamic"),
])
def test_each_format_reproduces_the_token_merged_model(format_name, precision, tiny_folder, tmp_path):
    out = tmp_path / f"{format_name}-{precision}"
    result = convert(str(tiny_folder), to=format_name, precision=precision, out=out,
                     options=ExportOptions(token_merging=R), validation_samples=VALIDATION_SAMPLES)
    source = load_source(str(tiny_folder))
    plan = plan_for(source, R)
    recorded = result.manifest.token_merging
    assert (recorded.schedule, recorded.tokens, recorded.r) == (plan.schedule, plan.tokens, R)
    report = result.manifest.validation
    assert report.passed and report.reference.endswith("token-merged as token_merging says")
    if precision == "fp32":
        assert report.max_abs_diff_logits < 1e-4
        if not report.simulated:  # Core ML is simulated off macOS
            _closer_to_merged(out, source, plan)


@pytest.mark.slow
@pytest.mark.parametrize("format_name", ["tflite", "openvino"])
def test_a_conversion_cache_never_hands_out_the_other_graph(format_name, tiny_folder, tmp_path):
    """TFLite and OpenVINO keep their last float conversion, keyed by the weights: merged and unmerged share them."""
    source = load_source(str(tiny_folder))
    for r in (2, R):  # in one process, as a study converting R = 0..max does
        convert(source, to=format_name, out=tmp_path / f"r{r}", options=ExportOptions(token_merging=r), overwrite=True,
                validation_samples=VALIDATION_SAMPLES)
        _closer_to_merged(tmp_path / f"r{r}", source, plan_for(source, r))


def test_auto_picks_the_largest_r_within_the_budget(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=tmp_path / "auto",
                     options=ExportOptions(token_merging="auto", max_accuracy_drop=10.0),
                     validation_samples=VALIDATION_SAMPLES)
    info = result.manifest.token_merging
    drops = {int(r): drop for r, drop in info.budget["drop_points_by_r"].items()}
    assert info.budget["largest_r"] == 8 and info.budget["images"] == 64 and info.budget["max_drop_points"] == 10.0
    assert all(drop > 10.0 for r, drop in drops.items() if r > info.r), "every larger R misses the budget"
    assert info.r == 0 or drops[info.r] <= 10.0
    assert "accuracy_budget" not in result.manifest.conversion.recipe, "the budget went into R, not into int8"


def run(capsys, *argv):
    code = main(list(argv))
    _, err = capsys.readouterr()
    return code, err.strip().splitlines()[-1]


@pytest.mark.parametrize(("option", "message"), [
    (["--token-merging", "9"], "--token-merging 9: ViT's 2 blocks would merge 18 tokens, it has 16 patch tokens; "
                               "the largest R for this model is 8"),
    (["--token-merging", "4,4,4"], "--token-merging 4,4,4: a schedule gives one r per block; ViT has 2 blocks"),
    (["--token-merging", "4,8"], "--token-merging 4,8: block 1 has 13 tokens (1 protected), at most 6 can merge"),
    (["--token-merging=-1"], "--token-merging -1: r counts tokens, it cannot be negative"),
    (["--token-merging", "many"], "--token-merging many: not a number of tokens"),
    (["--token-merging", "auto"], "--token-merging auto chooses R by an accuracy budget: none was given"),
])
def test_cli_refuses_a_bad_r_in_one_line(option, message, capsys, tiny_folder, tmp_path):
    code, line = run(capsys, "convert", str(tiny_folder), "--to", "onnx", "--out", str(tmp_path / "a"), *option)
    assert code != 0 and line.startswith(f"vitedge: error: {message}")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(("model", "option", "message"), [
    ("preset:beit-tiny-test", ["--token-merging", "2"], "--token-merging 2: BEiT models cannot merge tokens"),
    ("preset:vit-tiny-patch16-224", ["--token-merging", "auto", "--max-accuracy-drop", "1"],
     "--token-merging auto needs a trained model"),
])
def test_cli_refuses_what_cannot_merge(model, option, message, capsys, tmp_path):
    code, line = run(capsys, "convert", model, "--to", "onnx", "--out", str(tmp_path / "a"), *option)
    assert code != 0 and line.startswith(f"vitedge: error: {message}")


def test_convert_says_what_it_merged_and_verify_checks_the_merged_model(capsys, merged_onnx, tiny_folder, tmp_path):
    code = main(["convert", str(tiny_folder), "--to", "onnx", "--out", str(tmp_path / "b"), "--token-merging", "4",
                 "--validation-samples", "4"])
    out, _ = capsys.readouterr()
    assert code == 0 and "token merging: R = 4: 17 -> 9 tokens over 2 blocks; top-1 agreement with the unmerged" in out
    code = main(["verify", str(merged_onnx), "--against", str(tiny_folder)])
    out, _ = capsys.readouterr()
    assert code == 0 and f"parity against {tiny_folder}: PASSED" in out
    code = main(["inspect", str(merged_onnx)])
    out, _ = capsys.readouterr()
    assert code == 0 and "token merging R = 4: 17 -> 9 tokens over 2 blocks" in out


def test_diagnose_compares_block_by_block_with_the_token_merged_model(tiny_folder, tmp_path):
    from vitedge.converters.diagnose.engine import diagnose

    out = tmp_path / "int8"
    convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=out, options=ExportOptions(token_merging=R),
            validation_samples=VALIDATION_SAMPLES)
    (found,) = diagnose([out], str(tiny_folder), samples=8)
    assert not found.missing, "every block's output has the token-merged model's shape"
    assert [stat.tap for stat in found.stats][:3] == ["embeddings", "block 0", "block 1"]
    assert all(stat.min_cosine > 0.9 for stat in found.stats)


def _row(r: int, p50_ms: float, top1: float | None) -> dict:
    return {"r": r, "status": "ok", "error": None, "validated": True, "min_cosine": 0.99, "tokens": None if r == 0 else 9,
            "p50_ms": p50_ms, "p90_ms": p50_ms, "top1": top1, "agreement": None, "torch_agreement": None}


def test_the_study_picks_the_fastest_r_within_one_point():
    from vitedge.benchmarks.studies.token_merging import curve_table, verdict, with_ratios

    rows = with_ratios([_row(0, 30.0, 0.90), _row(4, 24.0, 0.895), _row(8, 18.0, 0.891), _row(12, 15.0, 0.87)])
    assert [round(row["speedup"], 2) for row in rows] == [1.0, 1.25, 1.67, 2.0]
    assert verdict(rows) == "best within 1 point of top-1: R = 8, 1.67x (0.9 points); meets the 1.5x target"
    assert verdict(with_ratios([_row(0, 30.0, 0.9), _row(4, 24.0, 0.85)])).endswith("1.00x (0.0 points); misses the 1.5x target")
    assert verdict(with_ratios([_row(0, 30.0, None), _row(16, 17.0, None)])) == "latency only: 1.76x at R = 16"
    refused = with_ratios([_row(0, 30.0, 0.90), _row(4, 24.0, 0.895), {**_row(8, 18.0, 0.9), "validated": False}])
    assert verdict(refused).startswith("best within 1 point of top-1: R = 4, 1.25x")  # R = 8 failed its validation
    assert curve_table(rows)[2].startswith("| 0 | all (unmerged) | 30.0 | 30.0 | 1.00x | 90.0% | 0.0 |")
