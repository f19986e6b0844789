"""MFI-FFP (Zhu et al., IEEE TMI 2024): tri-modal lymph-node metastasis net.

Three feature branches turn the aligned white-light (WLI), NIR-I fluorescence (FI) and pseudo-color
(PCI) images of one node into (B, C, g, g) maps (C = 512, g = 7 in the paper), the MFF module fuses
them, and a small head gives two logits (benign, metastatic).

- `irb`: MobileNetV2 inverted-residual features (32-channel stem, 17 blocks, BN + ReLU6), then a
  1x1 conv to C: a per-position projection, so the map stays spatial.
- `rb`: ResNet18 (layer names as torchvision's, so ImageNet weights load from a local file).
- `vit`: patch embedding, class token, `depth` pre-norm transformer blocks, final LayerNorm; the patch
  tokens are laid out on their grid, average-pooled to g x g when the grid is finer, and a 1x1 conv
  projects them to C.

Which modality gets which branch, which modalities exist (uni-, bi-, tri-modal) and the fusion
(`mff`, `concat`, `sum`) are configuration, so every ablation of the paper is one config.

The input of `forward` is one tensor (B, 3 * M, H, W): the M modalities' RGB images stacked along
channels in `config["modalities"]` order. One tensor keeps Grad-CAM and ONNX export simple.
"""

from __future__ import annotations

import copy
import math

# isort: off
from engine import compat  # noqa: F401  (must precede torchvision)
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.resnet import BasicBlock
# isort: on

import torch
from torch import nn

from engine.registry import ModelError, register_model

MODALITIES = ("WLI", "FI", "PCI")
BRANCH_KINDS = ("irb", "rb", "vit")
FUSIONS = ("mff", "concat", "sum")

# The paper's architecture: 224 px inputs, 512 x 7 x 7 maps, ViT-B/16-sized PCI branch, gamma 8.
PAPER_CONFIG: dict = {
    "modalities": list(MODALITIES),
    "branches": {"WLI": "irb", "FI": "rb", "PCI": "vit"},
    "fusion": "mff",
    "input_size": 224,
    "channels": 512,
    "grid": 7,
    "gamma": 8,
    "hidden": 256,
    "dropout": 0.3,
    "irb": {"width_mult": 1.0, "output_stride": 32},
    "rb": {"base_width": 64, "output_stride": 32},
    "vit": {"patch": 16, "dim": 768, "depth": 12, "heads": 12, "mlp_ratio": 4.0},
}

# The CPU-trainable demo configuration: 80 px node-centred crops, 128-channel maps on a 5 x 5 grid (the
# convolutional branches stop at stride 16), a 4-block ViT of width 96.
COMPACT_CONFIG: dict = {
    **PAPER_CONFIG,
    "input_size": 80,
    "grid": 5,
    "channels": 128,
    "irb": {"width_mult": 0.5, "output_stride": 16},
    "rb": {"base_width": 16, "output_stride": 16},
    "vit": {"patch": 16, "dim": 96, "depth": 4, "heads": 4, "mlp_ratio": 2.0},
}

# Mobilenet-V2's block table (expansion t, channels c, repeats n, stride s): 1+2+3+4+3+3+1 = 17 blocks.
_IRB_TABLE = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
              [6, 320, 1, 1]]


def _conv_bn(cin: int, cout: int, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidualBranch(nn.Module):
    """MobileNetV2 stem + 17 inverted residual blocks, then a 1x1 conv (BN, ReLU6) to `channels`."""

    def __init__(self, channels: int, width_mult: float = 1.0, output_stride: int = 32) -> None:
        super().__init__()
        table = copy.deepcopy(_IRB_TABLE)
        if output_stride == 16:
            table[5][3] = 1  # the stride-2 stage before the last becomes stride 1
        elif output_stride != 32:
            raise ModelError(f"irb output_stride must be 16 or 32, got {output_stride}.")
        mobilenet = MobileNetV2(width_mult=width_mult, inverted_residual_setting=table)
        self.features = mobilenet.features[:-1]  # drop MobileNetV2's 1280-channel head conv
        # Zero-gamma init (Goyal et al. 2017): each residual block starts as the identity. Trained from scratch
        # on a few hundred nodes, the 17-block stack otherwise barely moved off its start in the demo runs
        # (train-set AUC 0.42-0.65 on WLI where the ResNet18 branch reached 0.82-0.89). ImageNet weights,
        # when loaded, overwrite it.
        for block in self.features:
            if getattr(block, "use_res_connect", False):
                nn.init.zeros_(block.conv[-1].weight)
        last = self.features[-1].out_channels
        self.out = _conv_bn(last, channels, nn.ReLU6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class ResidualBranch(nn.Module):
    """ResNet18 (BasicBlock x [2, 2, 2, 2]) without pooling/FC; 1x1 projection when widths differ."""

    def __init__(self, channels: int, base_width: int = 64, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ModelError(f"rb output_stride must be 16 or 32, got {output_stride}.")
        w = base_width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._inplanes = w
        self.layer1 = self._stage(w, 1)
        self.layer2 = self._stage(2 * w, 2)
        self.layer3 = self._stage(4 * w, 2)
        self.layer4 = self._stage(8 * w, 2 if output_stride == 32 else 1)
        self.out = nn.Identity() if 8 * w == channels else _conv_bn(8 * w, channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, planes: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self._inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self._inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self._inplanes, planes, stride, down), BasicBlock(planes, planes)]
        self._inplanes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.out(x)


class ViTBranch(nn.Module):
    """ViT encoder (eq. 4-7 of the paper) whose patch tokens are returned as a (B, C, g, g) map."""

    def __init__(self, channels: int, input_size: int, grid: int, patch: int = 16, dim: int = 768,
                 depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if input_size % patch:
            raise ModelError(f"vit patch {patch} must divide the input size {input_size}.")
        self.tokens_per_side = input_size // patch
        if self.tokens_per_side % grid:
            raise ModelError(f"vit token grid {self.tokens_per_side} is not a multiple of the map grid {grid}.")
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.tokens_per_side ** 2, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Identity() if self.tokens_per_side == grid else nn.AvgPool2d(self.tokens_per_side // grid)
        self.out = _conv_bn(dim, channels)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + self.pos_embed
        tokens = self.norm(self.blocks(tokens))[:, 1:]
        side = self.tokens_per_side
        grid = tokens.transpose(1, 2).reshape(len(x), -1, side, side)
        return self.out(self.pool(grid))


class GLFF(nn.Module):
    """Global-local feature fusion weights (eq. 12-14): sigmoid(global + local), shape (B, C, H, W)."""

    def __init__(self, channels: int, gamma: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // gamma)

        def branch() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1), nn.BatchNorm2d(channels))

        self.global_branch = nn.Sequential(nn.AdaptiveAvgPool2d(1), *branch())
        self.local_branch = branch()

    def forward(self, f_add: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.global_branch(f_add) + self.local_branch(f_add))


class MFF(nn.Module):
    """Multi-modal feature fusion (eq. 11, 15): w from GLFF of the sum, FI weighted by 1 - w.

    With two modalities the same rule applies: FI (if present) gets 1 - w and the other gets w; for
    the WLI + PCI pair, WLI gets w and PCI 1 - w (the paper defines only the tri-modal case)."""

    def __init__(self, modalities: list[str], channels: int, gamma: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.glff = GLFF(channels, gamma)
        if "FI" in self.modalities:
            self.complement = {"FI"}
        else:
            self.complement = {self.modalities[-1]} if len(self.modalities) > 1 else set()

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        f_add = sum(feats[m] for m in self.modalities)
        w = self.glff(f_add)
        return sum((1 - w) * feats[m] if m in self.complement else w * feats[m] for m in self.modalities)


class ConcatFusion(nn.Module):
    """The paper's concatenation baseline: stack maps along channels, 1x1 conv back to C for the same head."""

    def __init__(self, modalities: list[str], channels: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.reduce = _conv_bn(channels * len(self.modalities), channels)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.reduce(torch.cat([feats[m] for m in self.modalities], dim=1))


class SumFusion(nn.Module):
    """Element-wise sum only (eq. 11 without GLFF weighting); also the uni-modal identity."""

    def __init__(self, modalities: list[str]) -> None:
        super().__init__()
        self.modalities = list(modalities)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(feats[m] for m in self.modalities)


class MFIFFP(nn.Module):
    """Branches -> fusion -> head. forward(x: (B, 3M, H, W)) -> logits (B, 2) [benign, metastatic]."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        cfg = resolve_config(config)
        self.config = cfg
        self.modalities: list[str] = list(cfg["modalities"])
        c, g = cfg["channels"], cfg["grid"]
        branches = {}
        for m in self.modalities:
            branch = cfg["branches"][m]
            if branch == "irb":
                branches[m] = InvertedResidualBranch(c, **cfg["irb"])
            elif branch == "rb":
                branches[m] = ResidualBranch(c, **cfg["rb"])
            else:
                branches[m] = ViTBranch(c, cfg["input_size"], g, **cfg["vit"])
        self.branches = nn.ModuleDict(branches)
        if len(self.modalities) == 1:
            self.fusion: nn.Module = SumFusion(self.modalities)
        elif cfg["fusion"] == "mff":
            self.fusion = MFF(self.modalities, c, cfg["gamma"])
        elif cfg["fusion"] == "concat":
            self.fusion = ConcatFusion(self.modalities, c)
        else:
            self.fusion = SumFusion(self.modalities)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(c, cfg["hidden"]), nn.ReLU(inplace=True), nn.Dropout(cfg["dropout"]),
                                  nn.Linear(cfg["hidden"], 2))
        self.last_features: torch.Tensor | None = None  # pooled fused features of the last forward (L_Intra)

    def split(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        expected = 3 * len(self.modalities)
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(f"MFI-FFP expects (B, {expected}, H, W) for modalities {self.modalities}, "
                             f"got {tuple(x.shape)}.")
        return {m: x[:, 3 * i:3 * i + 3] for i, m in enumerate(self.modalities)}

    def branch_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = {m: self.branches[m](xm) for m, xm in self.split(x).items()}
        grid = self.config["grid"]
        for m, f in maps.items() if not torch.jit.is_tracing() else ():
            if f.shape[-2:] != (grid, grid):
                raise ValueError(f"Branch {m} gives a {tuple(f.shape[-2:])} map, expected {grid}x{grid}: "
                                 f"input size must be {self.config['input_size']}.")
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.branch_maps(x))
        features = self.pool(fused).flatten(1)
        self.last_features = features
        return self.head(features)


def resolve_config(config: dict) -> dict:
    """Fill a (partial) config from the paper's and check it; raises ModelError on nonsense."""
    preset = COMPACT_CONFIG if config.get("preset") == "compact" else PAPER_CONFIG
    cfg = copy.deepcopy(preset)
    for key, value in config.items():
        if key == "preset":
            continue
        if key not in PAPER_CONFIG:
            raise ModelError(f"mfi_ffp config has unknown key '{key}'; allowed: {sorted(PAPER_CONFIG)}.")
        cfg[key] = {**cfg[key], **value} if isinstance(cfg[key], dict) and key != "branches" else value
    if "branches" in config:
        cfg["branches"] = {**PAPER_CONFIG["branches"], **config["branches"]}
    mods = cfg["modalities"]
    if not mods or len(set(mods)) != len(mods) or any(m not in MODALITIES for m in mods):
        raise ModelError(f"mfi_ffp modalities must be distinct names from {MODALITIES}, got {mods}.")
    cfg["modalities"] = [m for m in MODALITIES if m in mods]  # canonical order WLI, FI, PCI
    for m in cfg["modalities"]:
        if cfg["branches"].get(m) not in BRANCH_KINDS:
            raise ModelError(f"mfi_ffp branch for {m} must be one of {BRANCH_KINDS}, got {cfg['branches'].get(m)}.")
    if cfg["fusion"] not in FUSIONS:
        raise ModelError(f"mfi_ffp fusion must be one of {FUSIONS}, got {cfg['fusion']}.")
    stride = cfg["input_size"] / cfg["grid"]
    if not math.isclose(stride, round(stride)):
        raise ModelError(f"input_size {cfg['input_size']} is not a multiple of grid {cfg['grid']}.")
    return cfg


@register_model("mfi_ffp")
def build_mfi_ffp(config: dict) -> MFIFFP:
    return MFIFFP(config)


def gradcam_layers(config: dict) -> dict[str, str]:
    """Grad-CAM target modules: each branch's last feature layer, and the fusion output when there is more
    than one branch to fuse."""
    cfg = resolve_config(config)
    layers = {m: f"branches.{m}.out" for m in cfg["modalities"]}
    if len(cfg["modalities"]) > 1:
        layers["fusion"] = "fusion"
    return layers


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_flops(net: MFIFFP) -> int:
    """FLOPs of one forward pass at batch 1 (torch's counter: a multiply-add counts as 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    size = net.config["input_size"]
    x = torch.zeros(1, 3 * len(net.modalities), size, size)
    was_training = net.training
    net.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel is invisible to the counter
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    net.train(was_training)
    return int(counter.get_total_flops())


def load_imagenet_branches(net: MFIFFP, files: dict[str, str]) -> list[str]:
    """Load ImageNet weights for branches from local torchvision files: {'rb': resnet18.pth, 'irb': ...}.

    Only exactly matching tensors are copied (the paper-configuration widths); returns the loaded keys."""
    from pathlib import Path

    loaded = []
    for modality, branch in net.branches.items():
        kind = net.config["branches"][modality]
        path = files.get(kind)
        if not path:
            continue
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"Pretrained weight file {path} not found (for the {kind} branch).")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        target = branch.state_dict()
        fitting = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
        if not fitting:
            raise ModelError(f"{path} has no tensor that fits the {kind} branch of this configuration.")
        branch.load_state_dict(fitting, strict=False)
        loaded += [f"branches.{modality}.{k}" for k in fitting]
    return loaded


def fused_map(net: MFIFFP, x: torch.Tensor) -> torch.Tensor:
    """The (B, C, g, g) fusion output (for inspection and tests)."""
    return net.fusion(net.branch_maps(x))


__all__ = ["COMPACT_CONFIG", "GLFF", "MFF", "MFIFFP", "PAPER_CONFIG", "build_mfi_ffp", "count_flops",
           "count_parameters", "gradcam_layers", "load_imagenet_branches", "resolve_config"]
