"""The inference path every shipped model runs through: the fastest one that agrees with eager PyTorch.

Backends (setting `backend`, env ONCOLENS_BACKEND, `--backend`):
  auto        ONNX Runtime on the CPU, a CUDA graph with fp16 autocast on CUDA; eager when neither can be
              built, with the reason in `FastPath.label` and the log.
  eager       plain PyTorch on the selected device (fp32), the reference every other path is checked against.
  onnx        ONNX Runtime (CPU only); an error when it cannot be built.
  cuda-graph  captured CUDA graphs with fp16 autocast (CUDA only); an error when it cannot be built.

torch.compile needs a C++ compiler at run time, which the shipped bundle does not have; an ONNX graph or a
CUDA graph needs nothing extra. ONNX graphs are exported once per weights and input shape into the cache
folder (engine.paths.cache_dir), named by card, weights sha256 and shape, so new weights never reuse an old graph.

Agreement: the first call on a fast path also runs eager fp32 on the same input and compares the outputs
(class outputs: probabilities within 0.02; dense outputs: foreground masks with Dice >= 0.99). A path that
disagrees is dropped for the rest of the process and the model runs eager; the label says why. Explanations
(Grad-CAM, integrated gradients) always run eager on the module itself, and only when they are shown.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.paths import cache_dir
from engine.settings import BACKENDS, load_settings

log = logging.getLogger(__name__)

ALIASES = {"torch": "eager", "ort": "onnx", "onnxruntime": "onnx", "cuda_graph": "cuda-graph", "cudagraph": "cuda-graph"}
CLASS_TOLERANCE = 0.02  # largest |p_fast - p_eager| for class outputs
MIN_MASK_DICE = 0.99  # smallest Dice between fast and eager foreground masks for dense outputs
MAX_GRAPH_SHAPES = 4  # captured CUDA graphs kept per model (one per input shape, least recently used dropped)


def latency_percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of per-call timings in seconds (the bench tables)."""
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def backend_choice(explicit: str | None = None) -> str:
    """The backend asked for: `explicit` (a --backend flag), else the setting (ONCOLENS_BACKEND wins over the
    file), else auto. 'torch' is accepted for eager."""
    if explicit is None:
        explicit = load_settings().backend or "auto"
    choice = ALIASES.get(explicit.strip().lower(), explicit.strip().lower())
    if choice not in BACKENDS:
        raise ValueError(f"Unknown inference backend '{explicit}': use {', '.join(BACKENDS)} "
                         "(setting 'backend', ONCOLENS_BACKEND or --backend).")
    return choice


def onnx_cache_dir() -> Path:
    path = cache_dir() / "onnx"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _as_tuple(example: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (example,) if isinstance(example, torch.Tensor) else tuple(example)


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def export_onnx(net: torch.nn.Module, example: torch.Tensor | Sequence[torch.Tensor], path: Path,
                dynamic_hw: bool = False) -> Path:
    """Trace `net` on `example` (one tensor, or several for a net with several inputs) to an ONNX file. The
    batch axis is dynamic; H and W too when dynamic_hw. Inputs are named input, input1, ...; outputs output,
    output1, ..."""
    examples = tuple(e.cpu() for e in _as_tuple(example))
    net = net.eval()
    with torch.inference_mode():
        n_out = len(_outputs(net(*examples)))
    spatial = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    inputs = ["input"] + [f"input{i}" for i in range(1, len(examples))]
    outputs = ["output"] + [f"output{i}" for i in range(1, n_out)]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            torch.onnx.export(net, examples, tmp, dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes={name: spatial for name in inputs + outputs}, opset_version=17)
        os.replace(tmp, path)  # atomic: a half-written graph is never picked up
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def weights_key(net: torch.nn.Module, card) -> str:
    """16 hex naming the weights: the card's sha256, or a hash of the module's tensors when the card has none
    (a net in training)."""
    sha = (getattr(card, "weights", None) or {}).get("sha256", "")
    if sha:
        return sha[:16]
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class OnnxRunner:
    """ONNX Runtime on the CPU. Called with one float32 array per graph input: the first output (`run_all`
    returns every output)."""

    label = "ONNX Runtime"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, torch.get_num_threads())
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_name = self.input_names[0]

    def run_all(self, *xs: np.ndarray) -> list[np.ndarray]:
        feeds = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self.input_names, xs, strict=True)}
        return self.session.run(None, feeds)

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.run_all(*xs)[0]

    @classmethod
    def for_model(cls, net: torch.nn.Module, card, example: torch.Tensor | Sequence[torch.Tensor],
                  dynamic_hw: bool = False) -> OnnxRunner:
        """The cached graph for this card's weights and input shape(s), exported on first use."""
        examples = _as_tuple(example)
        shape = "dyn" if dynamic_hw else "_".join("x".join(str(s) for s in e.shape[1:]) for e in examples)
        path = onnx_cache_dir() / f"{card.name}-{weights_key(net, card)}-{shape}.onnx"
        if not path.is_file():
            export_onnx(copy.deepcopy(net).cpu(), examples, path, dynamic_hw)
        return cls(path)


class EagerRunner:
    """Plain PyTorch on the net's device, fp32: the reference."""

    label = "eager PyTorch"

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        self.net, self.device = net, device

    def run_all(self, *xs: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = self.net(*(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
                             for x in xs))
            return [o.float().cpu().numpy() for o in _outputs(out)]

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.run_all(*xs)[0]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]


class CudaGraphRunner:
    """Captured CUDA graphs with fp16 autocast: one graph per input shape (a live stream has one), replayed
    with the new input copied into its static buffers. The launch overhead that dominates the small
    segmentation nets is paid once at capture."""

    label = "CUDA graph fp16"

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        if device.type != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device.")
        self.net, self.device = net, device
        self._graphs: dict[tuple, _Graph] = {}
        self._lock = threading.Lock()  # one replay at a time: the static buffers are shared

    def _autocast(self):
        # cache_enabled=False: cached fp16 weight copies made during capture must not outlive it
        return torch.autocast("cuda", dtype=torch.float16, cache_enabled=False)

    def _capture(self, xs: Sequence[np.ndarray]) -> _Graph:
        inputs = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device) for x in xs]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode(), self._autocast():
            for _ in range(3):  # warm-up outside the graph (cuDNN picks its kernels here)
                self.net(*inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), self._autocast(), torch.cuda.graph(graph):
            outputs = _outputs(self.net(*inputs))
        return _Graph(graph, inputs, outputs)

    def run_all(self, *xs: np.ndarray) -> list[np.ndarray]:
        key = tuple(x.shape for x in xs)
        with self._lock:
            g = self._graphs.pop(key, None)
            if g is None:
                g = self._capture(xs)
                while len(self._graphs) >= MAX_GRAPH_SHAPES:
                    self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = g  # most recently used last
            for buf, x in zip(g.inputs, xs, strict=True):
                buf.copy_(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            g.graph.replay()
            return [o.float().cpu().numpy() for o in g.outputs]

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.run_all(*xs)[0]


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis when there are several, else the sigmoid."""
    logits = logits.astype(np.float64)
    if logits.ndim >= 2 and logits.shape[1] > 1:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


def _foreground(logits: np.ndarray) -> np.ndarray:
    if logits.shape[1] > 1:
        return logits.argmax(axis=1) > 0
    return logits[:, 0] >= 0


def outputs_agree(fast: Sequence[np.ndarray], eager: Sequence[np.ndarray]) -> tuple[bool, str]:
    """Whether a fast path's outputs stand in for eager's, and the figures that decided it. Class outputs
    (B, C): probabilities within CLASS_TOLERANCE. Dense outputs (B, C, ...): foreground Dice >= MIN_MASK_DICE
    (two empty masks agree)."""
    details = []
    ok = True
    for i, (f, e) in enumerate(zip(fast, eager, strict=True)):
        if f.shape != e.shape:
            return False, f"output {i} has shape {f.shape}, eager {e.shape}"
        if f.ndim <= 2:
            diff = float(np.abs(_probabilities(f) - _probabilities(e)).max()) if f.size else 0.0
            ok &= diff <= CLASS_TOLERANCE
            details.append(f"max |dp| {diff:.1e}")
        else:
            a, b = _foreground(f), _foreground(e)
            total = int(a.sum()) + int(b.sum())
            dice = 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
            ok &= dice >= MIN_MASK_DICE
            details.append(f"mask Dice {dice:.4f}")
    return ok, ", ".join(details)


class FastPath:
    """One model's inference through the chosen backend, checked against eager on its first call.

    `net` is the module whose outputs are wanted (a wrapper when only part of a net, or several outputs,
    are needed); `example` gives the input shapes for the ONNX export (`dynamic_hw`: any H x W).
    Call with numpy float32 arrays (one per input): the first output; `run_all` gives every output."""

    def __init__(self, net: torch.nn.Module, card, example: torch.Tensor | Sequence[torch.Tensor], *,
                 device: torch.device, backend: str | None = None, dynamic_hw: bool = False,
                 agree: Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], tuple[bool, str]] = outputs_agree,
                 ) -> None:
        self.net, self.card, self.device = net.eval(), card, device
        self.requested = backend_choice(backend)
        self.agree = agree
        self.eager = EagerRunner(self.net, device)
        self.fallback = ""  # why the model runs eager although a fast path was asked for
        self.agreement = ""  # the figures of the first-call check
        self._checked = False
        self._lock = threading.Lock()
        self.runner: OnnxRunner | CudaGraphRunner | EagerRunner = self._build(example, dynamic_hw)

    def _build(self, example, dynamic_hw: bool):
        wanted = self.requested
        if wanted == "eager":
            return self.eager
        if wanted == "auto":
            wanted = "cuda-graph" if self.device.type == "cuda" else "onnx"
        explicit = self.requested != "auto"
        if wanted == "onnx" and self.device.type != "cpu":
            return self._give_up(f"ONNX Runtime runs on the CPU here, the model is on {self.device}", explicit)
        if wanted == "cuda-graph" and self.device.type != "cuda":
            return self._give_up("CUDA graphs need a CUDA device (set the device to cuda)", explicit)
        try:
            if wanted == "onnx":
                return OnnxRunner.for_model(self.net, self.card, example, dynamic_hw)
            return CudaGraphRunner(self.net, self.device)
        except Exception as exc:  # noqa: BLE001  (any export/session failure means: run eager, say why)
            return self._give_up(f"{wanted} could not be built ({type(exc).__name__}: {exc})", explicit)

    def _give_up(self, reason: str, explicit: bool) -> EagerRunner:
        name = getattr(self.card, "name", "model")
        if explicit:
            raise RuntimeError(f"{name}: {reason}. Use --backend auto or eager (setting 'backend').")
        self.fallback = reason
        log.warning("%s runs eager: %s", name, reason)
        return self.eager

    @property
    def backend(self) -> str:
        """What actually runs: 'onnx', 'cuda-graph' or 'eager'."""
        return {OnnxRunner: "onnx", CudaGraphRunner: "cuda-graph"}.get(type(self.runner), "eager")

    @property
    def label(self) -> str:
        """For the prediction's device line: the path, and why it is eager when a fast path was wanted."""
        return self.runner.label + (f" (fallback: {self.fallback})" if self.fallback else "")

    def run_all(self, *xs: np.ndarray) -> list[np.ndarray]:
        if self._checked or self.runner is self.eager:
            try:
                return self.runner.run_all(*xs)
            except Exception as exc:  # noqa: BLE001
                if self.runner is self.eager:
                    raise
                self._drop(f"{self.runner.label} failed on an input of shape "
                           f"{[x.shape for x in xs]} ({type(exc).__name__}: {exc})")
                return self.eager.run_all(*xs)
        with self._lock:
            reference = self.eager.run_all(*xs)
            try:
                fast = self.runner.run_all(*xs)
            except Exception as exc:  # noqa: BLE001
                self._drop(f"{self.runner.label} failed ({type(exc).__name__}: {exc})")
                return reference
            ok, self.agreement = self.agree(fast, reference)
            self._checked = True
            if not ok:
                self._drop(f"{self.runner.label} disagreed with eager fp32 ({self.agreement})")
                return reference
            return fast

    def _drop(self, reason: str) -> None:
        if self.requested != "auto":
            raise RuntimeError(f"{getattr(self.card, 'name', 'model')}: {reason}. Use --backend auto or eager.")
        self.fallback = reason
        log.warning("%s runs eager from now on: %s", getattr(self.card, "name", "model"), reason)
        self.runner = self.eager

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        return self.run_all(*xs)[0]
