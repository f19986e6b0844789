"""The model families the command line knows: one module each, with `register_train`, `register_evaluate` and
optionally `register_bench`. A new family adds its module here."""

from engine.cli import chmfl, dgfnet, fl_cnn, fluoro_seg, mfi_ffp

FAMILIES = (fl_cnn, mfi_ffp, fluoro_seg, chmfl, dgfnet)
