"""ONNX export of the generator, checked against onnxruntime."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from magicmask.model.generator import MagicMaskGenerator, example_inputs
from mmcore.atomic import atomic_output
from mmcore.errors import ModelError, OutputError

log = logging.getLogger(__name__)

INPUT_NAMES = ("x_t", "e_s", "depth", "heatmaps")
OUTPUT_NAME = "swap"


def export_onnx(generator: MagicMaskGenerator, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write the generator as ONNX with a dynamic batch axis (atomically) and return the path.

    Uses the TorchScript exporter: the torch.export-based one needs ``onnxscript``, which this
    project does not depend on.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    generator = generator.eval()
    inputs = example_inputs(generator.cfg, batch=2)
    # the tracer's notes on constant shapes and the exporter's deprecation notice are expected
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*instance_norm.*")
        torch.onnx.export(
            generator,
            inputs,
            str(tmp),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
            opset_version=opset,
        )
    log.info("exported %s to %s", generator.cfg.name, path)
    return path


def check_onnx(
    generator: MagicMaskGenerator,
    path: str | os.PathLike,
    batch: int = 3,
    seed: int = 1,
) -> float:
    """Max absolute difference between torch and onnxruntime outputs on random inputs."""
    import onnxruntime as ort  # deferred: a large import that only the check needs

    inputs = example_inputs(generator.cfg, batch=batch, seed=seed)
    with torch.inference_mode():
        expected = generator.eval()(*inputs).numpy()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})"
        ) from exc
    (got,) = session.run([OUTPUT_NAME], {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs)})
    return float(np.abs(got - expected).max())
