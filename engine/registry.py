"""One registry of model families; models are described by data (cards) and built only through here.

A card lives in `<root>/<name>/config.json` (root: the shipped `models/` folder unless the caller names
another); `<root>/<name>/README.md` is generated from it. Weights are safetensors only, inside the card's own
folder, and must match the sha256 in the card: no silent random init, ever.

The registry is a leaf: a net module registers its family with `@register_model` when it is imported (the
predictors and the training code import the nets they use); nothing here imports a net.

Cards are typed (format 2): `input` (modalities, channels, size), one `thresholds` entry per task with the
rule that chose it, `gradcam_layers` naming the layer behind each heatmap, `preprocessing` (the constants the
preprocessing of its `kind` reads). Format-1 cards are migrated on load (`migrate_card`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import models_dir

CARD_FILE = "config.json"
CARD_README = "README.md"
CARD_VERSION = 2
INTENDED_USE = "Research use only. Not for diagnostic use."
MAX_INPUT_SIDE = 4096  # a card asking for a larger net input is refused as implausible

_FAMILIES: dict[str, Callable[[dict], Any]] = {}


class ModelError(RuntimeError):
    """A model cannot be created: unknown name, missing or tampered weights, bad card."""


@dataclass(frozen=True)
class CardInput:
    """What the net reads: the modalities (in channel order), channels and spatial size of its input."""

    modalities: tuple[str, ...]
    channels: int
    size: tuple[int, ...]
    accepts: str = ""  # in words, for the card and for error messages

    @property
    def modality(self) -> str:
        """The single modality of a one-modality model."""
        if len(self.modalities) != 1:
            raise ModelError(f"This model reads {' + '.join(self.modalities)}, not one modality.")
        return self.modalities[0]


@dataclass(frozen=True)
class Threshold:
    """A task's operating threshold on P(positive), and how it was chosen."""

    value: float
    rule: str = ""


@dataclass
class ModelCard:
    name: str
    family: str
    task: str  # in words, e.g. "tumor: non-tumor vs tumor"
    config: dict[str, Any]
    input: CardInput
    preprocessing: dict[str, Any]  # "kind" names the preprocessing; the rest are its constants
    labels: list[str]  # labels[1] is the positive class of a one-logit head
    thresholds: dict[str, Threshold]  # one per task the model answers
    gradcam_layers: dict[str, str]  # heatmap target (modality or "fusion") -> layer name; {} = none
    training: dict[str, Any]
    evaluation: dict[str, Any]
    weights: dict[str, Any]  # {"file": ..., "sha256": ..., "dtype": ..., "bytes": ...}
    intended_use: str = INTENDED_USE
    description: str = ""
    source: str = ""  # paper the method follows
    card_version: int = CARD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False)  # the models folder it lives in (not saved)

    @property
    def models_root(self) -> Path:
        return self.root if self.root is not None else models_dir()

    @property
    def folder(self) -> Path:
        return self.models_root / self.name

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights["file"]

    @property
    def positive_label(self) -> str:
        return self.labels[-1]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.thresholds)

    def threshold(self, task: str | None = None) -> float:
        """The operating threshold of `task` (of the only task when None)."""
        if task is None:
            if len(self.thresholds) != 1:
                raise ModelError(f"{self.name}: name the task, the card has thresholds for {', '.join(self.thresholds)}.")
            task = next(iter(self.thresholds))
        try:
            return self.thresholds[task].value
        except KeyError:
            raise ModelError(f"{self.name}: no threshold for task {task!r} (it has {', '.join(self.thresholds)}).") from None

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.pop("root")
        raw["input"]["modalities"] = list(self.input.modalities)
        raw["input"]["size"] = list(self.input.size)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any], root: Path | None = None, where: str = "model card") -> ModelCard:
        """A checked card from its JSON (format 1 is migrated first); ModelError naming `where` and the field."""
        try:
            raw = migrate_card(dict(raw))
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise ModelError(f"{where}: malformed card ({type(exc).__name__}: {exc}).") from None
        known = {f for f in cls.__dataclass_fields__ if f != "root"}
        unknown = sorted(map(str, set(raw) - known))
        missing = sorted(f for f in ("name", "family", "task", "config", "input", "preprocessing", "labels",
                                     "thresholds", "training", "evaluation", "weights") if f not in raw)
        if unknown or missing:
            raise ModelError(f"{where}: " + "; ".join(
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing field(s) {', '.join(missing)}"] if missing else [])) + ".")
        try:
            inp = raw["input"]
            raw["input"] = CardInput(modalities=tuple(str(m) for m in inp["modalities"]), channels=int(inp["channels"]),
                                     size=tuple(int(s) for s in inp["size"]), accepts=str(inp.get("accepts", "")))
            raw["thresholds"] = {str(t): Threshold(float(v["value"]), str(v.get("rule", "")))
                                 for t, v in raw["thresholds"].items()}
            raw["gradcam_layers"] = {str(k): str(v) for k, v in (raw.get("gradcam_layers") or {}).items()}
            for name in ("config", "preprocessing", "training", "evaluation", "weights", "extra"):
                if name in raw and not isinstance(raw[name], dict):
                    raise TypeError(f"{name} must be an object, got {type(raw[name]).__name__}")
            if not isinstance(raw["labels"], list):
                raise TypeError(f"labels must be a list, got {type(raw['labels']).__name__}")
            card = cls(**raw, root=root)
            card.validate(where)
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ModelError(f"{where}: malformed card ({type(exc).__name__}: {exc}). Regenerate it with "
                             "`oncolens train`.") from exc
        return card

    def validate(self, where: str = "model card") -> None:
        """ModelError listing every problem: thresholds, labels, input size, weights path, names."""
        problems = []
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", self.name):
            problems.append(f"name {self.name!r} must be 1-100 letters, digits, '_', '.' or '-'")
        if not self.thresholds:
            problems.append("thresholds: at least one task needs an operating threshold")
        for task, threshold in self.thresholds.items():
            if not math.isfinite(threshold.value) or not 0.0 <= threshold.value <= 1.0:
                problems.append(f"thresholds.{task}: {threshold.value!r} is not a probability in [0, 1]")
        if len(self.labels) < 2 or not all(isinstance(x, str) and x.strip() for x in self.labels):
            problems.append(f"labels: need the negative and positive label names, got {self.labels!r}")
        if not self.input.modalities:
            problems.append("input.modalities: name at least one modality")
        if not 1 <= self.input.channels <= 64:
            problems.append(f"input.channels: {self.input.channels} is outside 1-64")
        if not self.input.size or any(not 8 <= s <= MAX_INPUT_SIDE for s in self.input.size):
            problems.append(f"input.size: {list(self.input.size)} must be sides of 8-{MAX_INPUT_SIDE} pixels")
        file_name = str(self.weights.get("file") or "")
        if file_name and (Path(file_name).name != file_name or file_name in (".", "..")):
            problems.append(f"weights.file: {file_name!r} must be a file name inside the card's own folder")
        if not isinstance(self.preprocessing, dict) or not self.preprocessing.get("kind", "x"):
            problems.append("preprocessing: must be an object with a 'kind'")
        if problems:
            raise ModelError(f"{where}: the card is refused: " + "; ".join(problems) + ".")


def _task_key(raw: dict[str, Any]) -> str:
    """Format 1 cards said their task in words ('tumor: non-tumor vs tumor'); its key is before the colon."""
    text = str(raw.get("task") or "")
    return text.split(":", 1)[0].strip() if ":" in text else "positive"


def migrate_card(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a card's JSON up to CARD_VERSION, one step at a time (the shipped cards are stored migrated)."""
    version = raw.get("card_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelError(f"card_version must be a whole number, got {version!r}")
    if version > CARD_VERSION:
        raise ModelError(f"Model card {raw.get('name')!r} has format {version}, newer than this OncoLens "
                         f"understands ({CARD_VERSION}). Update OncoLens.")
    if version < 2:
        inp = dict(raw.get("input") or {})
        if "modalities" not in inp:
            inp["modalities"] = [inp.pop("modality")] if "modality" in inp else []
        inp.pop("modality", None)
        inp.setdefault("channels", 1)
        inp.setdefault("size", [])
        raw["input"] = inp
        rule = str((raw.get("evaluation") or {}).get("threshold_rule") or "")
        thresholds = {}
        for key, value in (raw.get("thresholds") or {}).items():
            task = _task_key(raw) if key == "operating" else key
            thresholds[task] = {"value": value, "rule": rule or "fixed"}
        raw["thresholds"] = thresholds
        layers = raw.get("gradcam_layers") or []
        if isinstance(layers, list):
            targets = {}
            for layer in layers:
                branch = re.fullmatch(r"branches\.(\w+)\.out", layer)
                if branch:
                    targets[branch.group(1)] = layer
                elif len(layers) == 1 and len(inp["modalities"]) == 1:
                    targets[inp["modalities"][0]] = layer
                else:
                    targets[layer] = layer
            raw["gradcam_layers"] = targets
        raw["card_version"] = 2
    return raw


def register_model(family: str) -> Callable:
    """Decorator: `@register_model("fl_cnn")` on a builder `fn(config: dict) -> nn.Module`."""

    def wrap(builder: Callable[[dict], Any]) -> Callable[[dict], Any]:
        if family in _FAMILIES and _FAMILIES[family] is not builder:
            raise ModelError(f"Model family '{family}' is registered twice.")
        _FAMILIES[family] = builder
        return builder

    return wrap


def families() -> list[str]:
    """The families whose net modules have been imported (and so registered)."""
    return sorted(_FAMILIES)


def build_net(family: str, config: dict):
    """Build an untrained net of a registered family (training uses this; inference uses create_model)."""
    if family not in _FAMILIES:
        raise ModelError(f"Model family '{family}' is not registered (registered: {', '.join(sorted(_FAMILIES)) or 'none'}). "
                         f"Import its net module (engine.nets.{family}) before building it.")
    return _FAMILIES[family](config)


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else models_dir()


def list_models(root: Path | str | None = None) -> list[ModelCard]:
    """Every card in the models folder `root` (default: the shipped one)."""
    root = _root(root)
    if not root.is_dir():
        return []
    return [load_card(p.parent.name, root) for p in sorted(root.glob(f"*/{CARD_FILE}"))]


def load_card(name: str, root: Path | str | None = None) -> ModelCard:
    """The checked card `name` from the models folder `root` (default: the shipped one)."""
    root = _root(root)
    path = root / name / CARD_FILE
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or not path.is_file():
        known = [p.parent.name for p in sorted(root.glob(f"*/{CARD_FILE}"))] if root.is_dir() else []
        raise ModelError(
            f"Unknown model '{name}': no card at {path}. Known models: {', '.join(known) or 'none'}."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"Model card {path} is malformed ({exc}). Regenerate it with `oncolens train`.") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"Model card {path} is malformed (not a JSON object). Regenerate it with `oncolens train`.")
    card = ModelCard.from_dict(raw, root=root, where=f"Model card {path}")
    if card.name != name:
        raise ModelError(f"Model card {path} names itself {card.name!r}; its folder is {name!r}. Rename one.")
    return card


def is_installed(name: str, root: Path | str | None = None) -> bool:
    """True when the card `name` exists and loads (a quiet check; `load_card` says what is wrong)."""
    try:
        load_card(name, root)
    except ModelError:
        return False
    return True


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
    expected = str(card.weights.get("sha256") or "")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{card.name}: weights file {path} does not match its model card (sha256 {actual[:12]}... != "
            f"{expected[:12] or 'none'}...). The file was changed or corrupted; restore it from the "
            "installation or retrain."
        )
    return path


def create_model(name: str, device: Any = None, root: Path | str | None = None):
    """Build the net named by card `name`, load its verified weights, move to `device`, eval mode.

    Returns (module, card)."""
    import torch
    from safetensors.torch import load_file

    card = load_card(name, root)
    path = verify_weights(card)
    net = build_net(card.family, card.config)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a damaged header or body
        raise ModelError(f"{card.name}: weights file {path} cannot be read as safetensors ({exc}). "
                         "Restore it from the installation or retrain.") from exc
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
    """Write config.json and the human-readable README.md generated from it, in the card's models folder."""
    card.validate(f"Model card {card.name}")
    card.folder.mkdir(parents=True, exist_ok=True)
    (card.folder / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    (card.folder / CARD_README).write_text(render_card(card), encoding="utf-8")


def _table(rows: dict[str, Any]) -> str:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in rows.items()]
    return "\n".join(lines)


def _thresholds_table(card: ModelCard) -> str:
    lines = ["| task | threshold | chosen by |", "|---|---|---|"]
    lines += [f"| {task} | {t.value:.6g} | {t.rule} |" for task, t in card.thresholds.items()]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    """Metric for the card; None is an undefined metric (e.g. PPV with no positive calls)."""
    return "n/a" if value is None else f"{value:.3f}"


def _metrics_table(metrics_by_name: dict) -> str:
    lines = [f"| {metric} | {_num(entry['value'])} | {_num(entry['ci_low'])} – {_num(entry['ci_high'])} |"
             for metric, entry in (metrics_by_name or {}).items() if isinstance(entry, dict) and "value" in entry]
    return "\n".join(["| metric | value | 95% CI |", "|---|---|---|", *lines]) if lines else "_not evaluated_"


def _other_operating_points(ev: dict) -> str:
    """The same test set at other thresholds (`also_at`: {label: evaluation}), e.g. at argmax."""
    out = []
    for label, entry in (ev.get("also_at") or {}).items():
        how = "; ".join(filter(None, [f"threshold {entry.get('threshold')}",
                                      str((entry.get("ci") or {}).get("description", "")).rstrip(".")]))
        out.append(f"\n\nAt {label} ({how}):\n\n{_metrics_table(entry.get('metrics'))}")
    return "".join(out)


def render_card(card: ModelCard) -> str:
    ev = card.evaluation
    metrics = _metrics_table(ev.get("metrics")) + _other_operating_points(ev)
    return f"""# Model card: {card.name}

> **{card.intended_use}**

{card.description}

- Family: `{card.family}` · task: {card.task} · labels: {' / '.join(card.labels)} (positive: {card.positive_label})
- Card format {card.card_version}
- Method source: {card.source}
- Weights: `{card.weights.get('file')}` ({card.weights.get('dtype')}, {card.weights.get('bytes', 0) / 1e6:.2f} MB),
  sha256 `{card.weights.get('sha256')}`

## Input
{_table({"modalities": " + ".join(card.input.modalities), "channels": card.input.channels,
         "size": " x ".join(str(v) for v in card.input.size), "accepts": card.input.accepts})}

## Preprocessing
{_table(card.preprocessing)}

## Architecture configuration
{_table(card.config)}

## Operating thresholds
{_thresholds_table(card)}

Grad-CAM target layers: {', '.join(f'{k}: `{v}`' for k, v in card.gradcam_layers.items()) or 'none (segmentation: the probability map is shown)'}

## Training data and procedure
{_table(card.training)}

## Evaluation
{ev.get('description', '')}

{metrics}

{_table({k: v for k, v in ev.items() if k not in ('metrics', 'description', 'ablation', 'tables', 'cascade', 'also_at')})}
{_ablation_section(ev.get('cascade'), 'Cascade, end to end')}{_ablation_section(ev.get('ablation'))}{_ablation_section(ev.get('tables'), 'Evaluation tables')}{_extra_section(card.extra)}"""


def _extra_section(extra: dict) -> str:
    """The card's free notes (e.g. choices the paper leaves open), one titled table or list per key."""
    if not extra:
        return ""
    parts = []
    for key, value in extra.items():
        title = key.replace("_", " ").capitalize()
        if isinstance(value, dict):
            parts.append(f"## {title}\n{_table(value)}\n")
        elif isinstance(value, list):
            parts.append(f"## {title}\n" + "\n".join(f"- {v}" for v in value) + "\n")
        else:
            parts.append(f"## {title}\n{value}\n")
    return "\n" + "\n".join(parts)


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
{f"{chr(10)}Files: {files}{chr(10)}" if files else ""}"""
