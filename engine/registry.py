"""One registry of model families; models are described by data (cards) and built only through here.

A card lives in `models/<name>/config.json`; `models/<name>/README.md` is generated from it.
Weights are safetensors only and must match the sha256 in the card: no silent random init, ever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import models_dir

CARD_FILE = "config.json"
CARD_README = "README.md"
INTENDED_USE = "Research use only. Not for diagnostic use."

_FAMILIES: dict[str, Callable[[dict], Any]] = {}


class ModelError(RuntimeError):
    """A model cannot be created: unknown name, missing or tampered weights, bad card."""


@dataclass
class ModelCard:
    name: str
    family: str
    task: str
    config: dict[str, Any]
    input: dict[str, Any]  # e.g. {"modality": "FL", "channels": 3, "size": [128, 128]}
    preprocessing: dict[str, Any]
    labels: list[str]  # labels[1] is the positive class of a one-logit head
    thresholds: dict[str, float]  # operating thresholds, with how they were chosen in `threshold_rule`
    gradcam_layers: list[str]
    training: dict[str, Any]
    evaluation: dict[str, Any]
    weights: dict[str, Any]  # {"file": ..., "sha256": ..., "dtype": ..., "bytes": ...}
    intended_use: str = INTENDED_USE
    description: str = ""
    source: str = ""  # paper the method follows
    card_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return models_dir() / self.name

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights["file"]

    @property
    def positive_label(self) -> str:
        return self.labels[-1]


def register_model(family: str) -> Callable:
    """Decorator: `@register_model("fl_cnn")` on a builder `fn(config: dict) -> nn.Module`."""

    def wrap(builder: Callable[[dict], Any]) -> Callable[[dict], Any]:
        if family in _FAMILIES and _FAMILIES[family] is not builder:
            raise ModelError(f"Model family '{family}' is registered twice.")
        _FAMILIES[family] = builder
        return builder

    return wrap


def _load_families() -> None:
    # Importing the nets registers their families.
    import engine.nets  # noqa: F401


def families() -> list[str]:
    _load_families()
    return sorted(_FAMILIES)


def build_net(family: str, config: dict):
    """Build an untrained net of a registered family (training uses this; inference uses create_model)."""
    _load_families()
    if family not in _FAMILIES:
        raise ModelError(f"Unknown model family '{family}'. Known families: {', '.join(sorted(_FAMILIES))}.")
    return _FAMILIES[family](config)


def list_models(root: Path | None = None) -> list[ModelCard]:
    root = root or models_dir()
    if not root.is_dir():
        return []
    return [load_card(p.parent.name, root) for p in sorted(root.glob(f"*/{CARD_FILE}"))]


def load_card(name: str, root: Path | None = None) -> ModelCard:
    root = root or models_dir()
    path = root / name / CARD_FILE
    if not path.is_file():
        known = [p.parent.name for p in sorted(root.glob(f"*/{CARD_FILE}"))] if root.is_dir() else []
        raise ModelError(
            f"Unknown model '{name}': no card at {path}. Known models: {', '.join(known) or 'none'}."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ModelCard(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"Model card {path} is malformed ({exc}). Regenerate it with `oncolens train`.") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(card: ModelCard) -> Path:
    """Return the weights path after checking it exists, is safetensors and matches the card's sha256."""
    path = card.weights_path
    if path.suffix != ".safetensors":
        raise ModelError(f"{card.name}: weights must be a .safetensors file (no pickle), card names {path.name}.")
    if not path.is_file():
        raise ModelError(
            f"{card.name}: weights file {path} is missing. Reinstall OncoLens or retrain with the command in "
            f"{card.folder / CARD_README}."
        )
    actual = file_sha256(path)
    if actual != card.weights["sha256"]:
        raise ModelError(
            f"{card.name}: weights file {path} does not match its model card (sha256 {actual[:12]}... != "
            f"{card.weights['sha256'][:12]}...). The file was changed or corrupted; restore it from the "
            "installation or retrain."
        )
    return path


def create_model(name: str, device: Any = None, root: Path | None = None):
    """Build the net named by card `name`, load its verified weights, move to `device`, eval mode.

    Returns (module, card)."""
    import torch
    from safetensors.torch import load_file

    card = load_card(name, root)
    path = verify_weights(card)
    net = build_net(card.family, card.config)
    state = load_file(str(path))
    reference = net.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    mismatched = [k for k, v in state.items() if k in reference and reference[k].shape != v.shape]
    missing, unexpected = [k for k in reference if k not in state], [k for k in state if k not in reference]
    if mismatched:
        raise ModelError(
            f"{card.name}: weights do not fit the '{card.family}' net described by the card "
            f"({len(mismatched)} tensors have other shapes, e.g. {mismatched[:3]}). Card and weights disagree."
        )
    if missing or unexpected:
        raise ModelError(
            f"{card.name}: weights do not fit the '{card.family}' net described by the card "
            f"(missing {len(missing)} tensors e.g. {missing[:3]}, unexpected {len(unexpected)} e.g. {unexpected[:3]})."
        )
    net.load_state_dict(state)
    net.eval()
    if device is not None:
        net.to(torch.device(device))
    return net, card


def save_weights(net, card: ModelCard, dtype: str = "float16") -> None:
    """Write net weights (fp16 by default, BN statistics kept fp32) and fill the card's weights entry."""
    import torch
    from safetensors.torch import save_file

    card.folder.mkdir(parents=True, exist_ok=True)
    target = getattr(torch, dtype)
    state = {}
    for key, tensor in net.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        keep_full = "running_" in key or not tensor.is_floating_point()
        state[key] = tensor if keep_full else tensor.to(target)
    file_name = card.weights.get("file") or f"{card.name}.safetensors"
    path = card.folder / file_name
    save_file(state, str(path), metadata={"model": card.name, "family": card.family})
    card.weights = {
        "file": file_name,
        "sha256": file_sha256(path),
        "dtype": dtype,
        "bytes": path.stat().st_size,
    }


def round_trip_fp16(net) -> None:
    """Round float parameters (not BN statistics) through fp16 in place, exactly as save_weights stores them,
    so an evaluation before saving measures the weights that ship."""
    import torch

    with torch.no_grad():
        for key, tensor in net.state_dict().items():
            if tensor.is_floating_point() and "running_" not in key:
                tensor.copy_(tensor.half().float())


def write_card(card: ModelCard) -> None:
    """Write config.json and the human-readable README.md generated from it."""
    card.folder.mkdir(parents=True, exist_ok=True)
    (card.folder / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n", encoding="utf-8")
    (card.folder / CARD_README).write_text(render_card(card), encoding="utf-8")


def _table(rows: dict[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in rows.items()]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    """Metric for the card; None is an undefined metric (e.g. PPV with no positive calls)."""
    return "n/a" if value is None else f"{value:.3f}"


def render_card(card: ModelCard) -> str:
    ev = card.evaluation
    metric_lines = []
    for metric, entry in (ev.get("metrics") or {}).items():
        if isinstance(entry, dict) and "value" in entry:
            metric_lines.append(f"| {metric} | {_num(entry['value'])} | {_num(entry['ci_low'])} – {_num(entry['ci_high'])} |")
    metrics = "\n".join(["| metric | value | 95% CI |", "|---|---|---|", *metric_lines]) if metric_lines else "_not evaluated_"
    return f"""# Model card: {card.name}

> **{card.intended_use}**

{card.description}

- Family: `{card.family}` · task: {card.task} · labels: {' / '.join(card.labels)} (positive: {card.positive_label})
- Method source: {card.source}
- Weights: `{card.weights.get('file')}` ({card.weights.get('dtype')}, {card.weights.get('bytes', 0) / 1e6:.2f} MB),
  sha256 `{card.weights.get('sha256')}`

## Input
{_table(card.input)}

## Preprocessing
{_table(card.preprocessing)}

## Architecture configuration
{_table(card.config)}

## Operating thresholds
{_table(card.thresholds)}

Grad-CAM target layers: {', '.join(f'`{x}`' for x in card.gradcam_layers) or 'none (segmentation: the probability map is shown)'}

## Training data and procedure
{_table(card.training)}

## Evaluation
{ev.get('description', '')}

{metrics}

{_table({k: v for k, v in ev.items() if k not in ('metrics', 'description', 'ablation', 'tables')})}
{_ablation_section(ev.get('ablation'))}{_ablation_section(ev.get('tables'), 'Evaluation tables')}"""


def _ablation_section(ablation: dict | None, heading: str = "Ablation") -> str:
    """A titled Markdown table block with the files it came from (MFI-FFP ablation, segmentation protocol)."""
    if not ablation:
        return ""
    folder = ablation.get("folder", "ablation")
    files = ", ".join(f"`{folder}/{f}`" for f in ablation.get("files", []))
    return f"""
## {heading}
{ablation.get('title', '')}

{ablation.get('markdown', '')}

Files: {files}
"""
