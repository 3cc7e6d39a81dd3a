"""Where each op of an artifact runs, and in what precision (``vitedge inspect --placement``). Torch free.

A format's ``placement`` hook (:attr:`vitedge.formats.Format.placement`, ``"module:function"`` in this
package) is called as ``hook(folder, manifest, device=None, num_threads=None)`` and returns a
:class:`Placement`: every op, the device or delegate its runtime put it on, the precision it
computes in, and, for an op that fell back from the preferred device, the reason the runtime gives.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from vitedge.errors import BackendUnavailableError, UsageError
from vitedge.formats import get_format, load_entry_point
from vitedge.runtime.manifest import read_manifest, verify_files


@dataclass(frozen=True)
class OpPlacement:
    """One op as the runtime placed it.

    Attributes:
        index: Its position in the executed graph.
        name: The op's (node's) name in the model.
        op_type: The op, e.g. ``MatMulInteger`` or ``FULLY_CONNECTED``.
        device: Where it runs: an execution provider, a delegate, a compute unit.
        precision: What it computes in (``fp32``, ``fp16``, ``int8``, ``int4 weights``…); empty for
            shape and index ops.
        fallback: Whether it left the preferred device.
        reason: Why, as far as the runtime says.
    """

    index: int
    name: str
    op_type: str
    device: str
    precision: str
    fallback: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Placement:
    """Every op of an artifact and where it runs."""

    artifact: str
    runtime: str
    preferred: str
    ops: tuple[OpPlacement, ...]
    how: str
    notes: tuple[str, ...] = ()

    @property
    def fallbacks(self) -> tuple[OpPlacement, ...]:
        return tuple(op for op in self.ops if op.fallback)

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "runtime": self.runtime, "preferred": self.preferred, "how": self.how,
                "notes": list(self.notes), "fallbacks": len(self.fallbacks), "ops": [asdict(op) for op in self.ops]}

    def lines(self) -> list[str]:
        """A summary for people: ops per device and precision, then every fallback with its reason."""
        lines = [f"{self.artifact}: {len(self.ops)} ops on {self.runtime}; preferred: {self.preferred}",
                 f"read: {self.how}"]
        counts = Counter((op.device, op.precision or "-") for op in self.ops)
        widths = [max((len(key[i]) for key in counts), default=0) for i in (0, 1)]
        for (device, precision), count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            kinds = Counter(op.op_type for op in self.ops if op.device == device and (op.precision or "-") == precision)
            shown = ", ".join(f"{name} x{n}" for name, n in kinds.most_common(6))
            lines.append(f"  {count:5d}  {device:<{widths[0]}}  {precision:<{widths[1]}}  {shown}")
        fallbacks = self.fallbacks
        lines.append(f"fell back from {self.preferred}: {len(fallbacks)} op(s)" if fallbacks
                     else f"every op runs on {self.preferred}")
        lines += [f"  #{op.index} {op.op_type} {op.name}: on {op.device}; {op.reason}" for op in fallbacks]
        lines += [f"note: {note}" for note in self.notes]
        return lines


def placement_of(folder: str | os.PathLike, *, device: str | None = None, num_threads: int | None = None) -> Placement:
    """Where each op of the artifact in ``folder`` runs on this machine (its format's ``placement`` hook).

    Raises:
        UsageError: the format has no placement hook.
        ArtifactError: a missing or tampered artifact.
        BackendUnavailableError: the runtime (or the asked device) is not available here.
    """
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    fmt = get_format(manifest.format)
    if not fmt.placement:
        raise UsageError(f"{folder}: vitedge cannot yet say where the ops of {fmt.title} artifacts run")
    if fmt.backend_supported_here() and not fmt.backend_installed():
        raise BackendUnavailableError(f"{folder}: a {fmt.title} artifact needs {' or '.join(fmt.backend_modules)}, "
                                      "which is not installed", hint=f"pip install 'vitedge[{fmt.install_extra}]'")
    return load_entry_point(fmt.placement)(Path(folder), manifest, device=device, num_threads=num_threads)
