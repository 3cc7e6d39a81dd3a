"""What XNNPACK took and what it left to ExecuTorch's portable kernels, for the manifest and a warning.

A node XNNPACK does not take runs on ExecuTorch's portable (reference) or optimized kernels, between
delegate calls. For a few cheap ops (LayerNorm, which XNNPACK's partitioner in ExecuTorch 1.5 does not
take; the [CLS] token's ``expand`` and ``select``) that costs little. A matmul left behind costs a lot:
ViT attention whose batched matmuls fell back ran many times slower than onnxruntime (executorch issue
6961). So every conversion records the delegation (counts from ExecuTorch's own
``get_delegation_info``) and says so, in a warning line, when a matmul was not delegated.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

#: Operators that are matrix multiplications (edge-dialect node names: ``aten_bmm_default``, ``aten_linear_default_3``).
MATMUL_OPS = ("bmm", "mm", "addmm", "baddbmm", "matmul", "linear", "convolution")
#: Graph plumbing that is no computation (tuple unpacking).
NOT_COMPUTE = ("getitem",)
#: Operator namespaces in edge-dialect node names, and the overload suffixes after the operator.
NAMESPACES = ("aten", "dim_order_ops", "quantized_decomposed")
OVERLOAD = r"_(default|tensor|scalar|self|int|dim|start_step|out)$"


@dataclass(frozen=True)
class DelegationRecord:
    """The delegation of one lowered program.

    Attributes:
        subgraphs: XNNPACK subgraphs (delegate calls per inference).
        delegated: Nodes inside them.
        undelegated: Compute nodes left outside, by operator (e.g. ``{"aten.native_layer_norm": 25}``).
    """

    subgraphs: int
    delegated: int
    undelegated: dict[str, int] = field(default_factory=dict)

    @property
    def undelegated_matmuls(self) -> dict[str, int]:
        return {op: count for op, count in self.undelegated.items() if _is_matmul(op)}

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``conversion.recipe.delegation``."""
        return {
            "backend": "XnnpackBackend",
            "subgraphs": self.subgraphs,
            "delegated_nodes": self.delegated,
            "undelegated_nodes": sum(self.undelegated.values()),
            "undelegated": dict(sorted(self.undelegated.items())),
        }


def delegation_record(edge_program) -> DelegationRecord:
    """The delegation of a lowered ``EdgeProgramManager`` (before ``to_executorch``, which adds memory nodes)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge_program.exported_program().graph_module)
    undelegated = {
        _operator(op_type): breakdown.non_delegated
        for op_type, breakdown in info.delegation_by_operator.items()
        if breakdown.non_delegated and op_type not in NOT_COMPUTE
    }
    delegated = sum(b.delegated for op, b in info.delegation_by_operator.items() if op not in NOT_COMPUTE)
    return DelegationRecord(info.num_delegated_subgraphs, delegated, undelegated)


def warn_if_matmuls_undelegated(record: DelegationRecord, what: str) -> None:
    """One warning line when a matmul runs outside XNNPACK (on ExecuTorch's slow portable kernels)."""
    left = record.undelegated_matmuls
    if left:
        listed = ", ".join(f"{count} {op}" for op, count in sorted(left.items()))
        warnings.warn(
            f"{what}: XNNPACK did not take {listed}; they run on ExecuTorch's portable kernels, "
            "much slower (the manifest's conversion.recipe.delegation lists what was not delegated)",
            stacklevel=3,
        )


def _operator(op_type: str) -> str:
    """``aten_native_layer_norm_default`` -> ``aten.native_layer_norm`` (the overload dropped); others as they are."""
    for namespace in NAMESPACES:
        if op_type.startswith(namespace + "_"):
            op = re.sub(OVERLOAD, "", op_type[len(namespace) + 1 :])
            return f"{namespace}.{op}"
    return op_type


def _is_matmul(operator: str) -> bool:
    return operator.rpartition(".")[2] in MATMUL_OPS
