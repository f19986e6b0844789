"""Tumor segmentation nets for grey NIR fluorescence frames (Hou, Zou, Wang, Surg Innov 2024).

The paper compares UNet, UNet++, DeepLabv3+ and Swin UNETR. The first three come from
segmentation_models_pytorch, Swin UNETR from MONAI (2-D). Every net takes one grey channel and
gives one logit channel. They all downsample by 32, so `FluoroSegNet` pads any frame on the
bottom/right (edge values repeated) to a multiple of 32 and crops the logits back: a frame of any
size gives logits of its own size.

Configurations: the paper's (smp defaults with a ResNet34 encoder; MONAI's Swin UNETR with feature
size 48) and compact ones used for the CPU-trained demo weights (MobileNetV2, timm's ResNet10-T or
ResNet18 encoders, narrower decoders, Swin feature size 12), small enough that two demo nets fit the
shared weight budget. `encoder` names the part that transfer learning freezes:
smp's `encoder`, Swin UNETR's transformer `swinViT`.
"""

from __future__ import annotations

# isort: off
from engine import compat  # noqa: F401  (must precede torchvision, timm and smp)
# isort: on

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import ModelError, register_model

ARCHS = ("unet", "unetplusplus", "deeplabv3plus", "swin_unetr")
ARCH_NAMES = {"unet": "UNet", "unetplusplus": "UNet++", "deeplabv3plus": "DeepLabv3+", "swin_unetr": "Swin UNETR"}
ENCODER_BATCHNORM = ("frozen", "adapt")  # a frozen encoder's BatchNorm statistics while the decoder trains
MULTIPLE = 32  # every encoder here halves the resolution five times

PAPER_CONFIGS: dict[str, dict] = {
    "unet": {"arch": "unet", "encoder": "resnet34", "decoder_channels": [256, 128, 64, 32, 16]},
    "unetplusplus": {"arch": "unetplusplus", "encoder": "resnet34", "decoder_channels": [256, 128, 64, 32, 16]},
    "deeplabv3plus": {"arch": "deeplabv3plus", "encoder": "resnet34", "decoder_channels": 256, "output_stride": 16},
    "swin_unetr": {"arch": "swin_unetr", "feature_size": 48, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24]},
}
COMPACT_CONFIGS: dict[str, dict] = {
    "unet": {"arch": "unet", "encoder": "mobilenet_v2", "decoder_channels": [96, 48, 24, 16, 8]},
    "unetplusplus": {"arch": "unetplusplus", "encoder": "tu-resnet10t", "decoder_channels": [64, 32, 16, 16, 8]},
    "deeplabv3plus": {"arch": "deeplabv3plus", "encoder": "resnet18", "decoder_channels": 64, "output_stride": 16},
    "swin_unetr": {"arch": "swin_unetr", "feature_size": 12, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24]},
}


def config_for(arch: str, preset: str = "compact") -> dict:
    if arch not in ARCHS:
        raise ModelError(f"Unknown segmentation net '{arch}'; choose one of {', '.join(ARCHS)}.")
    table = {"compact": COMPACT_CONFIGS, "paper": PAPER_CONFIGS}.get(preset)
    if table is None:
        raise ModelError(f"Unknown preset '{preset}'; use compact or paper.")
    return {**table[arch], "in_channels": 1, "classes": 1}


def _smp_core(config: dict) -> nn.Module:
    import segmentation_models_pytorch as smp

    arch, encoder = config["arch"], config.get("encoder", "resnet34")
    common = {"encoder_name": encoder, "encoder_weights": None, "in_channels": int(config.get("in_channels", 1)),
              "classes": int(config.get("classes", 1))}
    if arch == "unet":
        return smp.Unet(decoder_channels=tuple(config["decoder_channels"]), **common)
    if arch == "unetplusplus":
        return smp.UnetPlusPlus(decoder_channels=tuple(config["decoder_channels"]), **common)
    return smp.DeepLabV3Plus(decoder_channels=int(config["decoder_channels"]),
                             encoder_output_stride=int(config.get("output_stride", 16)), **common)


def _swin_core(config: dict) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=int(config.get("in_channels", 1)), out_channels=int(config.get("classes", 1)),
                     feature_size=int(config["feature_size"]), depths=tuple(config["depths"]),
                     num_heads=tuple(config["num_heads"]), spatial_dims=2)


class FluoroSegNet(nn.Module):
    """A segmentation core that accepts any H x W: pads to a multiple of 32, returns (B, 1, H, W) logits."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        arch = config.get("arch")
        if arch not in ARCHS:
            raise ModelError(f"Unknown segmentation net '{arch}'; choose one of {', '.join(ARCHS)}.")
        if int(config.get("in_channels", 1)) != 1 or int(config.get("classes", 1)) != 1:
            raise ModelError("fluoro_seg nets take one grey channel and give one tumor logit.")
        self.arch = arch
        self.adapt_encoder_batchnorm = False  # see freeze_encoder
        self.core = _swin_core(config) if arch == "swin_unetr" else _smp_core(config)

    @property
    def encoder(self) -> nn.Module:
        """The part pretrained on the source data and frozen while fine-tuning."""
        return self.core.swinViT if self.arch == "swin_unetr" else self.core.encoder

    def freeze_encoder(self, frozen: bool = True, batchnorm: str = "frozen") -> None:
        """Fix the encoder's weights. `batchnorm`: 'frozen' keeps its BatchNorm statistics from pretraining
        (the encoder stays in eval mode while the decoder trains); 'adapt' re-estimates them on the fine-tuning
        data, which is what PyTorch does when only requires_grad is switched off (the paper used PyTorch 1.9)."""
        if batchnorm not in ENCODER_BATCHNORM:
            raise ModelError(f"Encoder BatchNorm must be one of {', '.join(ENCODER_BATCHNORM)}, got '{batchnorm}'.")
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)
        self.adapt_encoder_batchnorm = batchnorm == "adapt"

    def train(self, mode: bool = True) -> FluoroSegNet:
        """Training mode, except that a frozen encoder keeps its BatchNorm statistics (eval mode) unless they are
        to adapt."""
        super().train(mode)
        frozen = not any(p.requires_grad for p in self.encoder.parameters())
        if mode and frozen and not self.adapt_encoder_batchnorm:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % MULTIPLE, (-w) % MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        logits = self.core(x)
        return logits[..., :h, :w]


@register_model("fluoro_seg")
def build_fluoro_seg(config: dict) -> FluoroSegNet:
    return FluoroSegNet(config)


def count_parameters(net: nn.Module) -> float:
    return sum(p.numel() for p in net.parameters()) / 1e6
