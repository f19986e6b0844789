"""FL-CNN (Shen et al., EJNMMI 2021): one EfficientNet-B0 per task and modality, one-logit head.

The paper fine-tunes an ImageNet EfficientNet-B0 and replaces its last layer with a single-neuron
fully connected layer (Xavier-normal init) preceded by dropout 0.5. `width_mult`/`depth_mult` below
1.0 give the compact configuration used for the CPU-trained demo weights.
"""

from __future__ import annotations

from pathlib import Path

# isort: off
from engine import compat  # noqa: F401  (must precede torchvision)
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
# isort: on

import torch
from torch import nn

from engine.registry import ModelError, register_model

PAPER_CONFIG = {"width_mult": 1.0, "depth_mult": 1.0, "dropout": 0.5, "stochastic_depth_prob": 0.2}
COMPACT_CONFIG = {"width_mult": 0.5, "depth_mult": 0.5, "dropout": 0.5, "stochastic_depth_prob": 0.0}
GRADCAM_LAYER = "features.8"  # the last stage (final 1x1 conv block) of EfficientNet


class FLCNN(nn.Module):
    """EfficientNet-B0 backbone with a one-logit classifier; forward returns logits of shape (B,)."""

    def __init__(self, width_mult: float = 1.0, depth_mult: float = 1.0, dropout: float = 0.5,
                 stochastic_depth_prob: float = 0.2) -> None:
        super().__init__()
        if not (0 < width_mult <= 2 and 0 < depth_mult <= 2):
            raise ValueError(f"width_mult and depth_mult must be in (0, 2], got {width_mult}, {depth_mult}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult)
        backbone = EfficientNet(setting, dropout, stochastic_depth_prob, num_classes=1, last_channel=last_channel)
        self.features = backbone.features
        self.avgpool = backbone.avgpool
        head = backbone.classifier[1]
        nn.init.xavier_normal_(head.weight)
        nn.init.zeros_(head.bias)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x).squeeze(1)


@register_model("fl_cnn")
def build_fl_cnn(config: dict) -> FLCNN:
    known = set(PAPER_CONFIG)
    unknown = set(config) - known - {"pretrained_path"}
    if unknown:
        raise ModelError(f"fl_cnn config has unknown keys {sorted(unknown)}; allowed: {sorted(known)}.")
    return FLCNN(**{k: v for k, v in config.items() if k in known})


def load_imagenet_backbone(net: FLCNN, path: str | Path) -> list[str]:
    """Copy ImageNet EfficientNet-B0 feature weights from a local torchvision .pth/.safetensors file.

    Only the feature extractor is taken (the classifier is replaced as in the paper). Returns the
    keys that were loaded; raises ModelError if the file does not fit this width/depth."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Pretrained weight file {path} not found. Pass a local EfficientNet-B0 ImageNet file "
                         "or train from scratch (omit --pretrained).")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: no pickled code
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    target = net.state_dict()
    mismatched = [k for k, v in features.items() if k not in target or target[k].shape != v.shape]
    if not features or mismatched:
        raise ModelError(f"{path} does not match this EfficientNet configuration "
                         f"({len(mismatched)} mismatched tensors, e.g. {mismatched[:2]}).")
    net.load_state_dict(features, strict=False)
    return sorted(features)
