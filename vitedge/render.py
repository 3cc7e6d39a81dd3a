"""Text the CLI shows people: results, manifests, the formats table. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vitedge.formats import FAMILIES, FORMATS, PRECISIONS


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def formats_rows(*, installed: bool = True) -> tuple[list[list[str]], list[str]]:
    """The registry as rows, one per (format, precision); ``installed`` adds this machine's status."""
    header = ["format", "precision", "runtime", "extra", "what it is"] + (["installed here"] if installed else [])
    rows = []
    for fmt in FORMATS.values():
        status = "yes" if fmt.backend_installed() else f"no: pip install 'vitedge[{fmt.install_extra}]'"
        if not fmt.backend_supported_here():
            status = f"no: runs on {' or '.join(fmt.runtime_systems)} only"
        for support in fmt.precisions:
            what = PRECISIONS[support.precision].description
            if support.note:
                what += f" ({support.note})"
            row = [fmt.name, support.precision, fmt.runtime_text, f"vitedge[{fmt.install_extra}]", what]
            rows.append(row + ([status] if installed else []))
    return rows, header


def families_rows() -> tuple[list[list[str]], list[str]]:
    """The family x format table from the registry: ``yes`` (converted and validated by the conformance
    suite), ``no``/``partly`` (refused, ``vitedge convert`` names the op) or ``untested``."""
    header = ["family", "model_type", *FORMATS]
    rows = [[title, family, *(fmt.family_status(family) for fmt in FORMATS.values())]
            for family, title in FAMILIES.items()]
    return rows, header


def formats_json() -> list[dict[str, Any]]:
    return [
        {
            "format": fmt.name,
            "title": fmt.title,
            "runtime": list(fmt.backend_modules),
            "runtime_requires": list(fmt.runtime_requires),
            "install_extra": fmt.install_extra,
            "installed": fmt.backend_installed(),
            "platforms": fmt.notes,
            "precisions": [
                {"name": s.precision, "description": PRECISIONS[s.precision].description, "note": s.note}
                for s in fmt.precisions
            ],
        }
        for fmt in FORMATS.values()
    ]


def classification_lines(results: Iterable[Any]) -> list[str]:
    """Per image: its name, then one line per prediction (score, label, index), or its error."""
    lines: list[str] = []
    for result in results:
        if result.error is not None:
            lines.append(f"{result.image}: ERROR {result.error.removeprefix(result.image + ': ')}")
            continue
        marker = "  [random-init weights: meaningless]" if result.warning else ""
        lines.append(f"{result.image}{marker}")
        lines += [f"  {p.score:7.2%}  {p.label}  (#{p.index})" for p in result.predictions]
    return lines


def manifest_text(manifest: Any, path: str) -> str:
    """A readable summary of a manifest (``vitedge inspect``)."""
    m = manifest
    size = sum(entry.bytes for entry in m.files)
    shape = "x".join("N" if d is None else str(d) for d in m.input.shape)
    pre = m.preprocess
    if pre.resize_mode == "exact":
        resize = f"resize to {pre.size[0]}x{pre.size[1]} ({pre.resample})"
    elif pre.resize_mode == "shortest_edge":
        resize = f"shortest edge to {pre.shortest_edge} ({pre.resample})"
    else:
        resize = "no resize"
    if pre.crop_size:
        resize += f", center crop {pre.crop_size[0]}x{pre.crop_size[1]}"
    normalize = "in the model" if pre.normalization_in_model else f"x{pre.rescale_factor:.6g}, mean {pre.mean}, std {pre.std}"
    labels = ", ".join(m.labels[i] for i in sorted(m.labels)[:5]) + (", …" if len(m.labels) > 5 else "")
    arch = m.source.architecture
    lines = [
        f"artifact      {path}",
        f"schema        {m.schema}",
        f"format        {m.format}  precision {m.precision}",
        "files         " + ", ".join(f"{e.path} ({human_bytes(e.bytes)}, sha256 {e.sha256[:12]}…)" for e in m.files),
        f"size          {human_bytes(size)}",
        f"input         {m.input.name}: {m.input.dtype} {m.input.layout} {shape}"
        + (" (dynamic batch)" if m.input.dynamic_batch else ""),
        f"outputs       logits: {m.outputs.logits} ({m.outputs.num_classes} classes)"
        + (f", embedding: {m.outputs.embedding} ({m.outputs.embedding_size} dims)" if m.outputs.embedding else ""),
        f"preprocess    {resize}; normalize {normalize}; {pre.channel_order}",
        f"labels        {len(m.labels)}: {labels}",
        f"source        {m.source.model}" + (f" @ {m.source.revision}" if m.source.revision else "")
        + f"  weights: {m.source.weights}",
        f"architecture  {arch.get('model_type')} hidden {arch.get('hidden_size')}, {arch.get('num_hidden_layers')} layers, "
        f"{arch.get('num_attention_heads')} heads, image {arch.get('image_size')}, patch {arch.get('patch_size')}, "
        f"{arch.get('parameters', 0) / 1e6:.1f}M parameters",
        f"converted     {m.conversion.created} by vitedge {m.conversion.vitedge_version}; "
        + ", ".join(f"{k} {v}" for k, v in m.conversion.tools.items()),
        "recipe        " + ", ".join(f"{k}={v}" for k, v in m.conversion.recipe.items() if k != "delegation"),
    ]
    if isinstance(m.conversion.recipe.get("delegation"), dict):
        lines.append("delegation    " + delegation_text(m.conversion.recipe["delegation"]))
    lines.append("validation    " + (validation_text(m.validation) if m.validation else "none"))
    if getattr(m, "token_merging", None) is not None:
        lines.append("token merging " + token_merging_text(m.token_merging))
    selfcheck = getattr(m, "selfcheck", None)
    lines.append("self-check    " + (f"{selfcheck.index} + {len(selfcheck.files) - 1} file(s), "
                                     f"{human_bytes(sum(e.bytes for e in selfcheck.files))}: vitedge verify runs it"
                                     if selfcheck else "none (made before vitedge wrote self-checks)"))
    if m.is_random_init:
        lines.append("warning       random-init weights: for latency work only, predictions are meaningless")
    return "\n".join(lines)


def validation_text(report: Any) -> str:
    verdict = "PASSED" if report.passed else "FAILED: " + "; ".join(report.failures)
    embedding = (
        f", min embedding cosine {report.min_embedding_cosine:.6f}" if report.min_embedding_cosine is not None else ""
    )
    simulated = " (simulated)" if report.simulated else ""
    return (
        f"{verdict}{simulated} vs {report.reference} on {report.inputs}: top-1 agreement {report.top1_agreement:.2%}, "
        f"min logits cosine {report.min_logits_cosine:.6f}{embedding}, max abs logits diff {report.max_abs_diff_logits:.3g}"
        + execution_text(report.execution)
    )


def token_merging_text(info: Any) -> str:
    """``"R = 8: 197 -> 101 tokens over 12 blocks; top-1 agreement with the unmerged model 100.00% on 32 images"``."""
    asked = f"R = {info.r}" if info.r is not None else "a schedule per block"
    text = f"{asked}: {info.tokens[0]} -> {info.final_tokens} tokens over {len(info.schedule)} blocks"
    against = info.against_unmerged
    if against:
        text += (f"; top-1 agreement with the unmerged model {against['top1_agreement']:.2%} on {against['samples']} "
                 f"inputs (min logits cosine {against['min_logits_cosine']:.4f})")
    if info.budget:
        text += (f"; chosen within a {info.budget['max_drop_points']:g}-point budget "
                 f"({info.budget['drop_points']:g} points on {info.budget['images']} budget images)")
    return text


def execution_text(execution: dict[str, str] | None) -> str:
    """``"; ran on CPU in bf16 (openvino 2026.4.1)"``: where a backend that reports it ran; empty otherwise."""
    if not execution:
        return ""
    runtime = f" ({execution['runtime']})" if execution.get("runtime") else ""
    return f"; ran on {execution.get('device', '?')} in {execution.get('precision', '?')}{runtime}"


def delegation_text(delegation: dict[str, Any]) -> str:
    """``"XnnpackBackend: 26 subgraphs, 355 nodes; not delegated: 25 aten.native_layer_norm, …"`` (a delegate's record)."""
    left = delegation.get("undelegated") or {}
    rest = ", ".join(f"{count} {op}" for op, count in sorted(left.items(), key=lambda item: -item[1])) or "nothing"
    return (f"{delegation.get('backend', '?')}: {delegation.get('subgraphs', '?')} subgraphs, "
            f"{delegation.get('delegated_nodes', '?')} nodes; not delegated: {rest}")
