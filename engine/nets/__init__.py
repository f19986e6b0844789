"""The nn.Modules of each model family. Importing this package registers every family."""

from engine import compat  # noqa: F401  (must precede torchvision)
from engine.nets import chmfl, dgfnet, fl_cnn, fluoro_seg, mfi_ffp  # noqa: F401
