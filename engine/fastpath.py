"""Faster CPU inference through ONNX Runtime: each model is exported once and cached by weights hash.

torch.compile needs a C++ compiler at run time, which the shipped bundle does not have; an ONNX graph
run by ONNX Runtime needs nothing extra. The cache lives in the user data folder under
`onnx-cache/`, named by model, weights sha256 and input shape, so new weights never reuse an old graph.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from engine.paths import user_data_dir


def latency_percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of per-call timings in seconds (the bench tables)."""
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def onnx_cache_dir() -> Path:
    path = user_data_dir() / "onnx-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_onnx(net: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: Path,
                dynamic_hw: bool = False) -> Path:
    """Trace `net` on `example` (one tensor, or a tuple for a net with several inputs) to an ONNX file (batch
    axis dynamic; H and W too when dynamic_hw, one input only). Inputs are named input, input1, ..."""
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    examples = example if isinstance(example, tuple) else (example,)
    names = ["input"] + [f"input{i}" for i in range(1, len(examples))]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    net = net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(net, tuple(e.cpu() for e in examples), tmp, dynamo=False, input_names=names,
                          output_names=["output"],
                          dynamic_axes={**{n: axes for n in names}, "output": {0: "batch"} if not dynamic_hw else axes},
                          opset_version=17)
    os.replace(tmp, path)  # atomic: a half-written graph is never picked up
    return path


class OnnxRunner:
    """Callable: (B, C, H, W) float32 numpy (one per input of the graph) -> first output as numpy
    (`run_all` returns every output)."""

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
    def for_model(cls, net: torch.nn.Module, card, example: torch.Tensor | tuple[torch.Tensor, ...],
                  dynamic_hw: bool = False) -> OnnxRunner:
        """The cached graph for this card's weights and input shape(s), exported on first use."""
        examples = example if isinstance(example, tuple) else (example,)
        shape = "dyn" if dynamic_hw else "_".join("x".join(str(s) for s in e.shape[1:]) for e in examples)
        path = onnx_cache_dir() / f"{card.name}-{card.weights['sha256'][:16]}-{shape}.onnx"
        if not path.is_file():
            import copy

            export_onnx(copy.deepcopy(net).cpu(), example, path, dynamic_hw)
        return cls(path)
