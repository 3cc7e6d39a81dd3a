"""Diagnose a conversion: where, layer by layer, an artifact departs from the torch fp32 model.

:func:`vitedge.converters.diagnose.engine.diagnose` runs the source model in torch and the artifact
(through its format's ``intermediates`` hook, :attr:`vitedge.formats.Format.intermediates`) on the same
inputs and compares them after the embeddings, every encoder block, the final norm and the head
(:mod:`.compare`); :mod:`.text` prints the table and the advice, :mod:`.report` draws the HTML report.
This package's ``__init__`` stays import-light: the format hooks import :mod:`.probe` from it.
"""
