"""ImageNet encoder weights from a local file, for the paper's transfer-learning protocol.

Nothing can be downloaded here, so a user who has the weights passes the file (`--imagenet-encoder
unet=resnet18.pth`): a torchvision/timm state dict (.pth, .pt or .safetensors) of the encoder named
in the net's config. The classifier is dropped and an RGB first convolution is summed over its
colour channels for the one grey input (as smp does for pretrained encoders). Without a file the
pretraining stage is a training on the other fluorescence dataset, and the card says so.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.registry import build_net
from engine.train.fluoro_seg import SegTrainSettings

MIN_MATCHED = 0.9  # share of the encoder's tensors the file must provide


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet encoder file {path} not found.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same user error
            raise ValueError(f"{path}: not a readable PyTorch state dict ({exc}). Pass a .pth/.pt state dict or a "
                             ".safetensors file.") from exc
    for key in ("state_dict", "model", "net"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}.")
    return {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items() if torch.is_tensor(v)}


def init_from_imagenet(settings: SegTrainSettings, path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of the full net: random decoder, encoder from the file. Errors name the file and the gap."""
    net = build_net("fluoro_seg", settings.net_config())
    encoder = net.encoder
    target = encoder.state_dict()
    source = read_state_dict(path)
    loaded = {}
    for key, ref in target.items():
        value = source.get(key)
        if value is None:  # timm encoders sit under `model.` in smp; a timm file has the bare names
            value = source.get(key.removeprefix("model."))
        if value is None:
            continue
        if value.ndim == 4 and ref.ndim == 4 and value.shape[1] == 3 and ref.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)  # RGB stem -> grey stem
        if value.shape == ref.shape:
            loaded[key] = value.to(ref.dtype)
    learned = [k for k, v in target.items() if v.is_floating_point()]  # counters like num_batches_tracked aside
    if sum(k in loaded for k in learned) < MIN_MATCHED * len(learned):
        example = next((k for k in learned if k not in loaded), "")
        raise ValueError(
            f"{path}: only {sum(k in loaded for k in learned)} of {len(learned)} encoder tensors of the {settings.arch} net "
            f"({settings.net_config().get('encoder', 'swinViT')}) were found with matching shapes (e.g. missing "
            f"'{example}'). Pass ImageNet weights of that exact encoder.")
    encoder.load_state_dict({**target, **loaded})
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
