"""CHMFL (Peng et al.): PET and CT encoders, hierarchical multi-modality fusion at every level, a classifier on
the fused levels and the constrained tumour-segmentation decoder (a dual-encoder V-Net whose skips carry the
concatenated PET+CT features). Only nn.Modules here; the variants of the paper's experiments are configs.

Config keys (all checked): `modalities` (one encoder each, in input-channel order), `dims` (3, or 2 for the
2-D baselines), `channels` (five encoder widths), `in_kernel`, `res_kernel`, `res_convs` (residual convs per up
block), `head` ("hmfl": max-pool of all five fused levels; "last": the deepest only), `decoder` ("cfl" with the
horizontal skips, "bottleneck" without them, "none"), `fc` (hidden widths), `dropout`, `norm` ("batch" or
"group:N"), `decoder_levels` (4: the decoder ends at full resolution, as the paper; 3: it ends at half resolution
and its tumour logits are upsampled trilinearly, the compact configuration's saving on the CPU).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import register_model

PAPER_CONFIG: dict[str, Any] = {
    "modalities": ["PET", "CT"], "dims": 3, "channels": [16, 32, 64, 128, 256], "in_kernel": 5, "res_kernel": 5,
    "res_convs": [2, 2, 1, 1], "head": "hmfl", "decoder": "cfl", "fc": [512, 128], "dropout": 0.5, "norm": "batch",
    "decoder_levels": 4,
}
COMPACT_CONFIG: dict[str, Any] = {
    **PAPER_CONFIG, "channels": [4, 8, 16, 32, 64], "in_kernel": 3, "res_kernel": 3, "res_convs": [1, 1, 1, 1],
    "fc": [64, 32], "dropout": 0.2, "decoder_levels": 3,
}
HEADS, DECODERS = ("hmfl", "last"), ("cfl", "bottleneck", "none")
LEVELS = 5


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in; ValueError naming the key and the values that work."""
    c = {**PAPER_CONFIG, **config}
    if c["dims"] not in (2, 3):
        raise ValueError(f"chmfl: dims must be 2 or 3, got {c['dims']!r}.")
    if len(c["channels"]) != LEVELS or any(int(ch) < 1 for ch in c["channels"]):
        raise ValueError(f"chmfl: channels must be {LEVELS} positive widths, got {c['channels']!r}.")
    if len(c["res_convs"]) != LEVELS - 1 or any(int(n) < 1 for n in c["res_convs"]):
        raise ValueError(f"chmfl: res_convs must be {LEVELS - 1} counts >= 1, got {c['res_convs']!r}.")
    if c["head"] not in HEADS or c["decoder"] not in DECODERS:
        raise ValueError(f"chmfl: head must be one of {HEADS} and decoder one of {DECODERS}, got "
                         f"{c['head']!r} and {c['decoder']!r}.")
    if c["decoder_levels"] not in (3, 4):
        raise ValueError(f"chmfl: decoder_levels must be 3 or 4, got {c['decoder_levels']!r}.")
    if not c["modalities"] or len(set(c["modalities"])) != len(c["modalities"]):
        raise ValueError(f"chmfl: modalities must name one or more distinct inputs, got {c['modalities']!r}.")
    return c


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(channels)
    if kind.startswith("group:"):
        groups = min(int(kind.split(":", 1)[1]), channels)
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"chmfl: norm must be 'batch' or 'group:N', got {kind!r}.")


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv3d if dims == 3 else nn.Conv2d


class ConvBlock(nn.Sequential):
    """Conv, norm, ELU (the encoder's blocks: the 5^3 input transition and the 2^3 stride-2 down convs)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dims: int, norm: str) -> None:
        pad = kernel // 2 if stride == 1 else 0
        super().__init__(_conv(dims)(c_in, c_out, kernel, stride, pad), _norm(norm, c_out, dims), nn.ELU(inplace=True))


class Encoder(nn.Module):
    """One modality's five levels (Table SI): input transition, then four stride-2 down convs."""

    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        ch, dims, norm = [int(v) for v in c["channels"]], c["dims"], c["norm"]
        self.blocks = nn.ModuleList([ConvBlock(1, ch[0], c["in_kernel"], 1, dims, norm)]
                                    + [ConvBlock(ch[i], ch[i + 1], 2, 2, dims, norm) for i in range(LEVELS - 1)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for block in self.blocks:
            x = block(x)
            levels.append(x)
        return levels


class Fuse(nn.Module):
    """F_l = concat(PET_l, CT_l): a module of its own so Grad-CAM can name a fused level ('fusions.3')."""

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return torch.cat(features, dim=1) if len(features) > 1 else features[0]


class UpBlock(nn.Module):
    """V-Net up transition: transposed conv, norm, ELU; concat the forwarded fused level (if any); a residual
    stack of n convs added to its input, then ELU."""

    def __init__(self, c_in: int, c_up: int, c_skip: int, n_convs: int, kernel: int, dims: int, norm: str) -> None:
        super().__init__()
        up = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.up = nn.Sequential(up(c_in, c_up, 2, 2), _norm(norm, c_up, dims), nn.ELU(inplace=True))
        width = c_up + c_skip
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [_conv(dims)(width, width, kernel, 1, kernel // 2), _norm(norm, width, dims)]
            if i < n_convs - 1:
                layers.append(nn.ELU(inplace=True))
        self.stack = nn.Sequential(*layers)
        self.act = nn.ELU(inplace=True)
        self.out_channels = width

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.act(self.stack(x) + x)


class CHMFLNet(nn.Module):
    """Input (B, M, [D,] H, W), one channel per modality in `modalities` order; output: DM logits (B, 2).
    With a decoder, `last_segmentation` holds the tumour logits (B, 2, [D,] H, W) of the last forward."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        c = check_config(config)
        self.config = c
        self.modalities = tuple(c["modalities"])
        self.dims = int(c["dims"])
        ch = [int(v) for v in c["channels"]]
        m = len(self.modalities)
        fused = [m * w for w in ch]
        self.encoders = nn.ModuleDict({mod: Encoder(c) for mod in self.modalities})
        self.fusions = nn.ModuleList([Fuse() for _ in range(LEVELS)])
        pooled = sum(fused) if c["head"] == "hmfl" else fused[-1]
        widths = [pooled, *[int(w) for w in c["fc"]]]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(float(c["dropout"]))]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], 2))
        self.decoder: nn.ModuleList | None = None
        if c["decoder"] != "none":
            skips = c["decoder"] == "cfl"
            blocks, width = [], fused[-1]
            for i, n in enumerate(c["res_convs"][:c["decoder_levels"]]):
                level = LEVELS - 2 - i  # 3, 2, 1, 0
                block = UpBlock(width, ch[level], fused[level] if skips else 0, int(n), c["res_kernel"], self.dims,
                                c["norm"])
                blocks.append(block)
                width = block.out_channels
            self.decoder = nn.ModuleList(blocks)
            self.seg_out = nn.Sequential(_conv(self.dims)(width, 2, c["in_kernel"], 1, c["in_kernel"] // 2),
                                         _norm(c["norm"], 2, self.dims), nn.ELU(inplace=True),
                                         _conv(self.dims)(2, 2, 1))
        self.last_segmentation: torch.Tensor | None = None
        for module in self.modules():
            if isinstance(module, nn.Conv3d | nn.Conv2d | nn.ConvTranspose3d | nn.ConvTranspose2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")  # He initialisation, as the paper
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    def fused_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] != len(self.modalities):
            raise ValueError(f"CHMFL reads {len(self.modalities)} channel(s) ({' + '.join(self.modalities)}), "
                             f"got an input of shape {tuple(x.shape)}.")
        side = 2 ** (LEVELS - 1)
        if any(s % side for s in x.shape[2:]):
            raise ValueError(f"CHMFL needs spatial sizes divisible by {side}; got {tuple(x.shape[2:])}. Crop or pad "
                             f"the box to e.g. {tuple(side * max(1, round(s / side)) for s in x.shape[2:])}.")
        per_modality = [self.encoders[m](x[:, i:i + 1]) for i, m in enumerate(self.modalities)]
        return [self.fusions[level](*(f[level] for f in per_modality)) for level in range(LEVELS)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fused_levels(x)
        used = fused if self.config["head"] == "hmfl" else fused[-1:]
        vector = torch.cat([torch.amax(f, dim=tuple(range(2, f.ndim))) for f in used], dim=1)
        logits = self.classifier(vector)
        if self.decoder is not None:
            y = fused[-1]
            skips = self.config["decoder"] == "cfl"
            for i, block in enumerate(self.decoder):
                y = block(y, fused[LEVELS - 2 - i] if skips else None)
            seg = self.seg_out(y)
            if seg.shape[2:] != x.shape[2:]:
                seg = F.interpolate(seg, size=x.shape[2:], mode="trilinear" if self.dims == 3 else "bilinear",
                                    align_corners=False)
            self.last_segmentation = seg
        return logits


class CHMFLWithSegmentation(nn.Module):
    """(logits, tumour logits) in one call: the graph exported for the ONNX fast path."""

    def __init__(self, net: CHMFLNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, self.net.last_segmentation


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@register_model("chmfl")
def build_chmfl(config: dict) -> CHMFLNet:
    return CHMFLNet(config)
