"""The zoo's ImageNet judges on real labelled photos: top-1, top-5, load time, PyTorch agreement.

Each zoo model (EfficientNet-Lite0, -Lite1) classifies the 20 labelled ImageNet photos of the
foolbox wheel (centre square, resized to the model's input). Load time is measured twice: into
an empty cache (the checkpoint is read and converted) and from that cache.

With ``--torch-python PATH`` (an interpreter that has ``torch`` and
``efficientnet-lite-pytorch``, e.g. a separate venv: neither is a dependency of maco_tf), the
same photos go through the PyTorch reference model built from the same checkpoint, and the
largest logit difference is reported.

    python benchmarks/bench_judges.py
    python benchmarks/bench_judges.py --torch-python /tmp/torchref/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# this checkout's maco_tf and the benchmarks' shared `quality` package come first
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]

import numpy as np  # noqa: E402

MODELS = ("efficientnet_lite0", "efficientnet_lite1")


def torch_logits(python: str, name: str, images: np.ndarray) -> np.ndarray:
    """Logits of the PyTorch reference model, run by another interpreter."""
    from quality.torchref import call_torch_side

    from maco_tf.models.zoo.efficientnet_lite import efficientnet_lite_checkpoint_path

    checkpoint = str(efficientnet_lite_checkpoint_path(name))
    inputs = {"x": images, "name": name.replace("_", "-"), "checkpoint": checkpoint}
    out, _ = call_torch_side(python, "logits", inputs)
    return out["logits"].astype(np.float64)


def measure(name: str, torch_python: str | None) -> dict:
    from maco_tf.models.zoo import load_efficientnet_lite
    from maco_tf.models.zoo.photos import imagenet_photos
    from maco_tf.outputs.metrics import self_recognition

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        load_efficientnet_lite(name, cache)
        converted = time.perf_counter() - start
        start = time.perf_counter()
        model = load_efficientnet_lite(name, cache)
        cached = time.perf_counter() - start
    images, labels = imagenet_photos(model.maco_spec.input_size[0])
    scores = self_recognition(images, labels, model, values_range=(0, 255))
    row = {
        "model": name,
        "input": model.maco_spec.input_size[0],
        "top1": scores.top1_rate,
        "top5": scores.topk_rate(5),
        "p_true": scores.mean_probability,
        "load_converting_s": converted,
        "load_cached_s": cached,
        "ranks": scores.rank.tolist(),
    }
    if torch_python:
        logits = model.predict(images.astype(np.float32), verbose=0).astype(np.float64)
        reference = torch_logits(torch_python, name, images)
        row["torch_max_abs_diff"] = float(np.abs(reference - logits).max())
        row["torch_same_top1"] = int(np.sum(reference.argmax(1) == logits.argmax(1)))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-python", default=None, help="interpreter with torch (optional)")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = [measure(name, args.torch_python) for name in MODELS]
    print("model               px  top-1  top-5  p(true)  load (convert)  load (cached)  torch")
    for row in rows:
        torch_cell = (
            f"max |diff| {row['torch_max_abs_diff']:.1e}, same top-1 {row['torch_same_top1']}/20"
            if "torch_max_abs_diff" in row
            else "n/a"
        )
        print(
            f"{row['model']:<18} {row['input']:>4}  {row['top1']:.2f}   {row['top5']:.2f}   "
            f"{row['p_true']:.3f}    {row['load_converting_s']:6.2f} s       "
            f"{row['load_cached_s']:6.2f} s    {torch_cell}"
        )
    print("on the 20 labelled ImageNet photos of the foolbox 3.3.4 wheel")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
