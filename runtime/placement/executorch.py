"""The ExecuTorch format's ``placement`` hook: the XNNPACK subgraphs and the ops left to portable kernels.

The .pte program itself says where each step runs: its execution plan is a chain of instructions,
each a ``DelegateCall`` (one XNNPACK subgraph, an opaque blob compiled at load time) or a
``KernelCall`` (an operator run by ExecuTorch's portable or optimized kernels). ExecuTorch's Python
runtime does not list them (``Program``/``MethodMeta`` give only inputs, outputs and memory), so the
program's flatbuffer is read with ExecuTorch's own deserializer (``executorch.exir._serialize``,
offline, no device needed). What is inside each subgraph is known only from the conversion's record
(the manifest's ``conversion.recipe.delegation``), shown as a note.

XNNPACK in ExecuTorch 1.5 does not take LayerNorm, nor the [CLS] token's ``expand``/``select``: those
run on portable kernels by design and cost little. A matmul, linear or convolution left to a portable
kernel costs a lot (many times slower), so only those count as fallbacks (``--require-delegate``).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from vitedge.errors import ArtifactError
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.placement import OpPlacement, Placement

XNNPACK = "XNNPACK delegate"
PORTABLE = "CPU (ExecuTorch portable kernel)"
METHOD = "forward"
#: Operators whose fallback to a portable kernel is a performance bug (``aten::bmm``, ``aten::linear``…).
HEAVY_OPS = ("bmm", "mm", "addmm", "baddbmm", "matmul", "linear", "convolution", "conv2d")
QUANTIZED_NAMESPACE = "quantized_decomposed"


def read_program(model_path: Path) -> Any:
    """The deserialized program (``executorch.exir.schema.Program``) of a .pte file.

    Raises:
        ArtifactError: the file is no ExecuTorch program.
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        program = deserialize_pte_binary(model_path.read_bytes())
    except Exception as error:  # the flatbuffer reader raises many types on a damaged file
        raise ArtifactError(f"{model_path}: not a readable ExecuTorch program ({type(error).__name__})",
                            hint="convert the model again") from error
    return getattr(program, "program", program)  # 1.x returns a PTEFile holding the program


def _plan(program: Any, model_path: Path) -> Any:
    for plan in program.execution_plan:
        if plan.name == METHOD:
            return plan
    raise ArtifactError(f"{model_path}: the program has no {METHOD!r} method", hint="convert the model again")


def kernel_placement(index: int, operator: Any) -> OpPlacement:
    """A ``KernelCall``: on a portable kernel; a fallback when it is a matmul, linear or convolution."""
    name = f"{operator.name}.{operator.overload}" if operator.overload else operator.name
    op = operator.name.rpartition("::")[2]
    heavy = op in HEAVY_OPS
    precision = "int8" if operator.name.startswith(QUANTIZED_NAMESPACE) else "fp32"
    reason = ("XNNPACK's partitioner did not take it at conversion; it runs many times slower here"
              if heavy else "")
    return OpPlacement(index, name, operator.name, PORTABLE, precision, heavy, reason)


def _delegated_precision(manifest: Manifest) -> str:
    recipe = manifest.conversion.recipe
    weights, activations = recipe.get("weights", ""), recipe.get("activations", "")
    if weights in ("", "float32") and activations in ("", "float32"):
        return "fp32"
    return f"{weights} weights, {activations} activations"


def record_notes(manifest: Manifest) -> tuple[str, ...]:
    """What the conversion recorded about the subgraphs' contents (the program does not say)."""
    record = manifest.conversion.recipe.get("delegation")
    if not record:
        return ()
    left = ", ".join(f"{op} x{count}" for op, count in record.get("undelegated", {}).items()) or "none"
    return (f"the conversion's record: {record.get('delegated_nodes')} nodes in {record.get('subgraphs')} XNNPACK "
            f"subgraph(s); left to portable kernels: {left}",
            "ops inside a subgraph are compiled by XNNPACK at load time; the program does not list them")


def executorch_placement(folder: Path, manifest: Manifest, *, device: str | None = None,
                         num_threads: int | None = None) -> Placement:
    """Every instruction of the ``forward`` method: an XNNPACK subgraph or an operator on a portable kernel."""
    model_path = Path(folder) / manifest.model_file
    plan = _plan(read_program(model_path), model_path)
    precision = _delegated_precision(manifest)
    ops = []
    for index, instruction in enumerate(i for chain in plan.chains for i in chain.instructions):
        args = instruction.instr_args
        if hasattr(args, "delegate_index"):
            backend = plan.delegates[args.delegate_index].id
            ops.append(OpPlacement(index, f"subgraph {args.delegate_index}", backend, XNNPACK, precision))
        elif hasattr(args, "op_index"):
            ops.append(kernel_placement(index, plan.operators[args.op_index]))
    light = [op for op in ops if op.device == PORTABLE and not op.fallback]
    notes = (f"{len(light)} light op(s) run on portable kernels by design (XNNPACK does not take them); only a "
             "matmul, linear or convolution there counts as a fallback",) if light else ()
    return Placement(
        artifact=str(folder), runtime=f"ExecuTorch {importlib.metadata.version('executorch')}", preferred=XNNPACK,
        ops=tuple(ops), how="the .pte program's instructions (DelegateCall: an XNNPACK subgraph; KernelCall: an "
                            "operator on a portable kernel)",
        notes=notes + record_notes(manifest),
    )
