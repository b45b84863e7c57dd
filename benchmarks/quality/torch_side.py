"""The PyTorch side of the benchmarks, run by another interpreter (``--torch-python``).

This file is a script for an interpreter that has ``torch`` (and, per command,
``efficientnet-lite-pytorch`` and ``horama``), e.g. a separate virtual environment: neither
is a dependency of maco_tf, and this script imports nothing of maco_tf, TensorFlow or the
``quality`` package. :mod:`quality.torchref` runs it; it is not imported.

    python torch_side.py check                 # prints the versions found, as JSON
    python torch_side.py COMMAND IN.npz OUT.npz

Commands:

* ``logits``: ``x`` (N, H, W, 3 uint8), ``name``, ``checkpoint`` -> ``logits`` (N, 1000) of the
  PyTorch EfficientNet-Lite built from that checkpoint;
* ``horama``: ``name``, ``checkpoint``, ``spectrum``, ``classes``, ``steps``, ``image_size``,
  ``crops``, ``model_input_size``, ``seed``, ``threads`` -> ``images`` (N, H, W, 3 float32 in
  ``values_range``), ``values_range``, ``seconds`` (N: wall time of each ``horama.maco``
  call, the process start, imports and model build excluded).

The working directory is where Horama looks for its magnitude spectrum file; ``horama`` links
``spectrum`` there under Horama's file name, so that Horama downloads nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

import numpy as np

#: EfficientNet-Lite's input: ``(pixel - 127) / 128`` for RGB pixels in [0, 255].
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0
#: The model's input range, used as Horama's ``values_range``.
MODEL_RANGE = ((0.0 - PIXEL_MEAN) / PIXEL_STD, (255.0 - PIXEL_MEAN) / PIXEL_STD)

CHECKED = ("torch", "torchvision", "efficientnet_lite_pytorch", "horama")


def check() -> dict:
    """The version of each of :data:`CHECKED` (None when missing) and the import errors."""
    found, errors = {}, {}
    for module in CHECKED:
        try:
            found[module] = getattr(importlib.import_module(module), "__version__", "unknown")
        except Exception as error:  # noqa: BLE001 - any import failure means "not usable"
            found[module], errors[module] = None, f"{type(error).__name__}: {error}"
    return {"versions": found, "errors": errors}


def reference_model(name: str, checkpoint: str) -> object:
    """The PyTorch EfficientNet-Lite ``name`` with the weights of ``checkpoint``, frozen."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(name, weights_path=checkpoint).eval()
    return model.requires_grad_(False)


def logits(data: dict) -> dict:
    """Logits of the reference model on uint8 images."""
    import torch

    model = reference_model(str(data["name"]), str(data["checkpoint"]))
    x = (data["x"].astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
    with torch.no_grad():
        out = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    return {"logits": out}


def link_spectrum(spectrum: str) -> None:
    """Make Horama's magnitude spectrum file in the working directory point at ``spectrum``."""
    from horama import maco_fv

    if not os.path.exists(maco_fv.MACO_SPECTRUM_FILENAME):
        os.symlink(spectrum, maco_fv.MACO_SPECTRUM_FILENAME)


def horama_images(data: dict) -> dict:
    """One ``horama.maco`` image per class, objective the mean class logit over the crops."""
    import torch
    from horama import maco

    torch.set_num_threads(int(data["threads"]))
    link_spectrum(str(data["spectrum"]))
    model = reference_model(str(data["name"]), str(data["checkpoint"]))
    images, seconds = [], []
    for target in data["classes"].tolist():
        torch.manual_seed(int(data["seed"]) * 1000 + target)
        start = time.perf_counter()
        image, _ = maco(
            lambda crops, target=target: torch.mean(model(crops)[:, target]),
            total_steps=int(data["steps"]),
            image_size=int(data["image_size"]),
            model_input_size=int(data["model_input_size"]),
            crops_per_iteration=int(data["crops"]),
            values_range=MODEL_RANGE,
            device="cpu",
        )
        seconds.append(time.perf_counter() - start)
        images.append(image.detach().permute(1, 2, 0).numpy().astype(np.float32))
    return {
        "images": np.stack(images),
        "values_range": np.asarray(MODEL_RANGE),
        "seconds": np.asarray(seconds),
    }


COMMANDS = {"logits": logits, "horama": horama_images}


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` (``check`` or one of :data:`COMMANDS`); see the module docstring."""
    if argv[:1] == ["check"]:
        print(json.dumps(check()))
        return 0
    if len(argv) != 3 or argv[0] not in COMMANDS:
        print(f"usage: torch_side.py check | {{{','.join(COMMANDS)}}} IN.npz OUT.npz")
        return 2
    command, source, target = argv
    with np.load(source) as stored:
        data = dict(stored)
    np.savez(target, **COMMANDS[command](data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
