"""coremltools as vitedge uses it: imported quietly, deployment targets, and the internals we rely on.

Everything that depends on how coremltools 9 works inside (its MIL program loader, the output types
a converted program carries) lives here, so a coremltools upgrade is checked in one place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitedge.errors import ConversionError, UsageError, did_you_mean

#: Deployment targets ``--target`` accepts, oldest first (mlprogram with fp16 I/O needs iOS 16).
TARGETS = ("iOS16", "iOS17", "iOS18")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence coremltools' log lines and progress bars, and torch's tracer warnings, inside the block."""
    logger = logging.getLogger("coremltools")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def coremltools() -> Any:
    """The coremltools module, imported without its import-time warnings (untested torch, no macOS).

    Raises:
        ConversionError: coremltools is not installed.
    """
    try:
        with quiet():
            import coremltools as ct
    except ImportError:
        raise ConversionError("Core ML conversion needs coremltools, which is not installed",
                              hint="pip install 'vitedge[convert]'") from None
    _fix_scalar_casts()
    return ct


def _fix_scalar_casts() -> None:
    """Let coremltools 9.0's torch frontend cast one-element shape values under NumPy >= 2.4.

    Its ``_cast`` (behind ``aten::Int``, which a traced ``x.shape[i] // n`` becomes: Swin, BEiT, DINOv2,
    MobileViT) calls ``int()`` on a folded constant of shape (1,), which NumPy 2.4 refuses ("only
    0-dimensional arrays can be converted to Python scalars"; coremltools issue 2633, fixed after 9.0 by
    pull request 2632). Such a constant is cast through ``.item()``; everything else goes to the original.
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops

    original = ops._cast
    if getattr(original, "vitedge_fixed", False):
        return

    def _cast(context, node, dtype, dtype_name):
        (x,) = ops._get_inputs(context, node, expected=1)
        value = x.val if x.can_be_folded_to_const() else None
        if value is not None and getattr(value, "shape", ()) and getattr(value, "size", 0) == 1:
            context.add(mb.const(val=dtype(value.item()), name=node.name), node.name)
        else:
            original(context, node, dtype, dtype_name)

    _cast.vitedge_fixed = True
    ops._cast = _cast


def check_target(target: str, *, minimum: str, precision: str) -> str:
    """``target`` when it is known and new enough for ``precision``, else a UsageError saying what is."""
    if target not in TARGETS:
        raise UsageError(
            f"unknown Core ML target {target!r}{did_you_mean(target, TARGETS)}",
            hint=f"choose one of: {', '.join(TARGETS)}",
        )
    if TARGETS.index(target) < TARGETS.index(minimum):
        raise UsageError(
            f"Core ML precision {precision!r} needs --target {minimum} or newer, not {target}",
            hint=f"pass --target {minimum}, or choose a precision that runs on {target} (vitedge formats)",
        )
    return target


def deployment_target(target: str) -> Any:
    """The ``coremltools.target`` member named ``target`` (e.g. ``"iOS17"``)."""
    return getattr(coremltools().target, target)


def load_program(package: Path) -> tuple[Any, Any]:
    """(spec, MIL program) of a saved .mlpackage, without compiling or running it (works on Linux)."""
    ct = coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    with quiet():
        model = ct.models.MLModel(str(package), skip_model_load=True)
        spec = model.get_spec()
        program = milproto_load(
            model_spec=spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir
        )
    return spec, program


def program_of(mlmodel: Any) -> Any:
    """The MIL program of an in-memory mlprogram model (e.g. one just compressed), ready to convert again.

    Converting it again (to add a classifier) must give the same interface: image inputs are declared
    again, with scale 1 and no bias because the program already holds the scale and bias ops.
    """
    ct = coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    spec = mlmodel.get_spec()
    program = milproto_load(
        model_spec=spec, specification_version=spec.specificationVersion, file_weights_dir=mlmodel.weights_dir
    )
    function = program.functions["main"]
    # Without this, coremltools 9 indexes past the end of the output types when the classifier adds outputs;
    # the output dtypes stay in the program itself.
    function.set_output_types(None)
    images = [f for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"]
    function.set_input_types(tuple(
        ct.ImageType(
            name=f.name, shape=function.inputs[f.name].shape, channel_first=True,
            color_layout=type(f.type.imageType).ColorSpace.Name(f.type.imageType.colorSpace),
        )
        for f in images
    ))
    return program
