"""DGFNet (Li et al., thyroid-carcinoma LNM from US + CT): per-modality ResNet encoders with two decoders each,
and the diverse granularity fusion (DGF) of the two pooled feature vectors. The nn.Modules only.

Encoders keep torchvision's layer names (conv1, bn1, layer1..layer4), so a local ImageNet ResNet18/34 file loads
into the paper configuration; the compact configuration narrows the widths and depths for CPU training.

DGF (specs/dgfnet.md 3.4, reading B): three attention branches on f_US, f_CT (each d wide)
- dimensional: per nodule a d/2 x d/2 attention between the feature dimensions of US queries and CT keys;
- modal: per nodule a 2 x 2 attention between the two modality tokens;
- nodal: a B x B attention between the nodules of the batch.
f = f^D * f^M * f^N (element-wise), then Linear -> ReLU -> Dropout -> Linear to one logit.

The nodal branch couples a nodule's prediction to the other nodules of its batch. `nodule_context` says what
it sees: "batch" (the paper: every nodule of the batch) or "single" (each nodule alone, A^N = [1], which is
what a batch of one gives, computed row by row so that a batch of single cases stays independent).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from engine.registry import register_model

MODALITIES = ("US", "CT")
FUSIONS = ("dgf", "concat", "sum", "product", "none")
PAPER_ENCODER = {"central": {"widths": [64, 128, 256, 512], "blocks": [3, 4, 6, 3], "name": "resnet34"},
                 "lateral": {"widths": [64, 128, 256, 512], "blocks": [2, 2, 2, 2], "name": "resnet18"}}
COMPACT_ENCODER = {"central": {"widths": [8, 16, 32, 64], "blocks": [1, 1, 1, 1], "name": "resnet-compact"},
                   "lateral": {"widths": [8, 16, 32, 64], "blocks": [1, 1, 1, 1], "name": "resnet-compact"}}
PAPER_CONFIG = {"decoder_channels": [256, 128, 64, 32, 16], "decoder_dropout": 0.1, "hidden": 256,
                "dropout": 0.5, "sizes": {"US": 288, "CT": 96}}
COMPACT_CONFIG = {"decoder_channels": [24, 16, 8, 8, 8], "decoder_dropout": 0.1, "hidden": 64,
                  "dropout": 0.5, "sizes": {"US": 64, "CT": 32}}
SEG_HEADS = {"US": ("mask", "boundary"), "CT": ("mask", "edges")}


class Encoder(nn.Module):
    """ResNet with BasicBlocks and torchvision's names; returns the stem (1/2) and the four stage outputs."""

    def __init__(self, widths: list[int], blocks: list[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or inplanes != width):
                    down = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride, bias=False), nn.BatchNorm2d(width))
                layers.append(BasicBlock(inplanes, width, stride if j == 0 else 1, down))
                inplanes = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.out_channels = widths[-1]
        self.skip_channels = [widths[2], widths[1], widths[0], widths[0]]  # layer3, layer2, layer1, stem

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(stem))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [stem, f1, f2, f3, self.layer4(f3)]


class Decoder(nn.Module):
    """Five blocks of x2 bilinear up-sampling + (3x3 conv, BN, ReLU, dropout), skips concatenated after the
    first four up-samplings (layer3, layer2, layer1, stem), then a 1x1 conv to one logit map."""

    def __init__(self, in_channels: int, skip_channels: list[int], channels: list[int], dropout: float) -> None:
        super().__init__()
        blocks, c = [], in_channels
        for i, out in enumerate(channels):
            skip = skip_channels[i] if i < len(skip_channels) else 0
            blocks.append(nn.Sequential(nn.Conv2d(c + skip, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                                        nn.ReLU(inplace=True), nn.Dropout2d(dropout)))
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = [features[3], features[2], features[1], features[0]]
        for i, block in enumerate(self.blocks):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            if i < len(skips):
                x = torch.cat([x, skips[i]], dim=1)
            x = block(x)
        return self.head(x)


class Branch(nn.Module):
    """One modality: encoder, its two decoders, global average pooling to the feature vector."""

    def __init__(self, modality: str, encoder: dict, decoder_channels: list[int], dropout: float) -> None:
        super().__init__()
        self.encoder = Encoder(encoder["widths"], encoder["blocks"])
        self.decoders = nn.ModuleDict({head: Decoder(self.encoder.out_channels, self.encoder.skip_channels,
                                                     decoder_channels, dropout) for head in SEG_HEADS[modality]})

    def forward(self, x: torch.Tensor, segment: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.encoder(x)
        pooled = features[-1].mean(dim=(2, 3))
        masks = {head: dec(features) for head, dec in self.decoders.items()} if segment else {}
        return pooled, masks


class DGF(nn.Module):
    """Diverse granularity fusion of f_US, f_CT (B, d) -> (B, d) (reading B of the spec: halves per modality)."""

    def __init__(self, d: int, nodule_context: str = "batch") -> None:
        super().__init__()
        half = d // 2
        self.q_us, self.v_us = nn.Linear(d, half), nn.Linear(d, half)
        self.k_ct, self.v_ct = nn.Linear(d, half), nn.Linear(d, half)
        self.q_m, self.k_m, self.v_m = nn.Linear(d, half), nn.Linear(d, half), nn.Linear(d, half)
        self.q_n, self.k_n, self.v_n = nn.Linear(2 * d, d), nn.Linear(2 * d, d), nn.Linear(2 * d, d)
        self.nodule_context = nodule_context
        self.last_attention: dict[str, torch.Tensor] = {}

    def forward(self, f_us: torch.Tensor, f_ct: torch.Tensor) -> torch.Tensor:
        # (a) dimensional correlation: every feature dimension is a token with a scalar embedding
        q, k = self.q_us(f_us), self.k_ct(f_ct)
        v_us, v_ct = self.v_us(f_us), self.v_ct(f_ct)
        a_d = torch.softmax(q[:, :, None] * k[:, None, :] / math.sqrt(k.shape[1]), dim=-1)
        f_d = torch.cat([v_us + (a_d @ v_us[:, :, None])[..., 0],
                         v_ct + (a_d.transpose(1, 2) @ v_ct[:, :, None])[..., 0]], dim=1)
        # (b) modal weights: two modality tokens per nodule
        tokens = torch.stack([f_us, f_ct], dim=1)
        qm, km, vm = self.q_m(tokens), self.k_m(tokens), self.v_m(tokens)
        a_m = torch.softmax(qm @ km.transpose(1, 2) / math.sqrt(km.shape[-1]), dim=-1)
        f_m = (vm + a_m @ vm).flatten(1)
        # (c) nodal correlation: attention between the nodules of the batch
        u = torch.cat([f_us, f_ct], dim=1)
        vn = self.v_n(u)
        if self.nodule_context == "single" or u.shape[0] == 1:
            f_n = vn + vn  # A^N = [1] for a nodule seen alone
            a_n = torch.ones(u.shape[0], 1, device=u.device)
        else:
            qn, kn = self.q_n(u), self.k_n(u)
            a_n = torch.softmax(qn @ kn.T / math.sqrt(kn.shape[1]), dim=-1)
            f_n = vn + a_n @ vn
        self.last_attention = {"modal": a_m.detach(), "nodal": a_n.detach()}
        return f_d * f_m * f_n


class DGFNet(nn.Module):
    """US and/or CT branches, a fusion ('dgf', 'concat', 'sum', 'product'; 'none' for one modality) and the
    two-layer classifier. `forward(us, ct)` returns the LNM logit (B,); `forward_all` also the four maps."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.modalities = tuple(config["modalities"])
        self.fusion_kind = config["fusion"]
        if self.fusion_kind not in FUSIONS or not set(self.modalities) <= set(MODALITIES) or not self.modalities:
            raise ValueError(f"DGFNet: fusion must be one of {FUSIONS} and modalities from {MODALITIES}, got "
                             f"{self.fusion_kind!r} / {self.modalities}.")
        if (len(self.modalities) == 1) != (self.fusion_kind == "none"):
            raise ValueError("DGFNet: one modality takes fusion 'none'; two take 'dgf', 'concat', 'sum' or 'product'.")
        self.branches = nn.ModuleDict({m: Branch(m, config["encoder"], config["decoder_channels"],
                                                 config["decoder_dropout"]) for m in self.modalities})
        d = config["encoder"]["widths"][-1]
        self.fusion = DGF(d, config.get("nodule_context", "batch")) if self.fusion_kind == "dgf" else nn.Identity()
        width = 2 * d if self.fusion_kind == "concat" else d
        self.classifier = nn.Sequential(nn.Linear(width, config["hidden"]), nn.ReLU(inplace=True),
                                        nn.Dropout(config["dropout"]), nn.Linear(config["hidden"], 1))

    @property
    def nodule_context(self) -> str:
        return self.fusion.nodule_context if isinstance(self.fusion, DGF) else "none"

    def set_nodule_context(self, context: str) -> None:
        if context not in ("batch", "single"):
            raise ValueError(f"nodule_context is 'batch' or 'single', got {context!r}.")
        if isinstance(self.fusion, DGF):
            self.fusion.nodule_context = context

    def fuse(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fusion_kind == "none":
            return feats[self.modalities[0]]
        f_us, f_ct = feats["US"], feats["CT"]
        if self.fusion_kind == "dgf":
            return self.fusion(f_us, f_ct)
        if self.fusion_kind == "concat":
            return torch.cat([f_us, f_ct], dim=1)
        return f_us + f_ct if self.fusion_kind == "sum" else f_us * f_ct

    def forward_all(self, us: torch.Tensor | None, ct: torch.Tensor | None, segment: bool = True
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = {"US": us, "CT": ct}
        feats, maps = {}, {}
        for m in self.modalities:
            feats[m], masks = self.branches[m](inputs[m], segment)
            maps.update({f"{m}/{head}": v for head, v in masks.items()})
        return self.classifier(self.fuse(feats))[:, 0], maps

    def forward(self, us: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
        return self.forward_all(us, ct, segment=False)[0]


class ExportWrapper(nn.Module):
    """What the ONNX fast path runs: (us, ct) -> (logit, US mask, US boundary, CT mask, CT edges) logits."""

    def __init__(self, net: DGFNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, us: torch.Tensor, ct: torch.Tensor):
        logit, maps = self.net.forward_all(us, ct)
        return (logit, *(maps[k] for k in sorted(maps)))


def gradcam_layers(config: dict) -> dict[str, str]:
    """Grad-CAM targets: the last encoder stage of each modality's branch."""
    return {m: f"branches.{m}.encoder.layer4" for m in config["modalities"]}


def net_config(site: str, preset: str, modalities=MODALITIES, fusion: str = "dgf") -> dict:
    """The architecture section of a card: encoder of the site (ResNet34 central, ResNet18 lateral, or their
    compact stand-ins), decoders, classifier, input sizes, modalities and fusion."""
    base = PAPER_CONFIG if preset == "paper" else COMPACT_CONFIG
    encoder = (PAPER_ENCODER if preset == "paper" else COMPACT_ENCODER)[site]
    return {**base, "encoder": dict(encoder), "site": site, "preset": preset, "modalities": list(modalities),
            "fusion": fusion if len(modalities) == 2 else "none", "nodule_context": "batch"}


def load_imagenet_encoders(net: DGFNet, path: str) -> list[str]:
    """Load a local torchvision ResNet18/34 ImageNet state dict into every encoder (fc dropped); returns notes."""
    from safetensors.torch import load_file

    state = load_file(path) if str(path).endswith(".safetensors") else torch.load(path, map_location="cpu",
                                                                                     weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    notes = []
    for m, branch in net.branches.items():
        try:
            missing, unexpected = branch.encoder.load_state_dict(state, strict=False)
        except RuntimeError:  # tensors of other shapes: another depth or width
            missing, unexpected = ["(shapes differ)"], []
        if missing or unexpected:
            raise ValueError(f"{path}: does not fit the {m} encoder ({len(missing)} missing, {len(unexpected)} "
                             "unexpected tensors); give torchvision's resnet18 (lateral) or resnet34 (central).")
        notes.append(f"{m} encoder from {path}")
    return notes


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@register_model("dgfnet")
def build_dgfnet(config: dict) -> DGFNet:
    return DGFNet(config)
