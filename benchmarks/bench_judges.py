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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MODELS = ("efficientnet_lite0", "efficientnet_lite1")

#: Run by --torch-python: argv[1] is an .npz with x (N, H, W, 3 uint8) and checkpoint; prints
#: the reference logits as JSON.
_TORCH_REFERENCE = """
import json, sys
import numpy as np, torch
from efficientnet_lite_pytorch import EfficientNet
data = np.load(sys.argv[1])
model = EfficientNet.from_pretrained(str(data["name"]), weights_path=str(data["checkpoint"]))
x = (data["x"].astype(np.float32) - 127.0) / 128.0
with torch.no_grad():
    logits = model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
print(json.dumps(logits.tolist()))
"""


def torch_logits(python: str, name: str, images: np.ndarray) -> np.ndarray:
    """Logits of the PyTorch reference model, run by another interpreter."""
    from maco_tf.models.zoo.efficientnet_lite import efficientnet_lite_checkpoint_path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "photos.npz"
        checkpoint = efficientnet_lite_checkpoint_path(name)
        np.savez(path, x=images, name=name.replace("_", "-"), checkpoint=str(checkpoint))
        output = subprocess.run(
            [python, "-c", _TORCH_REFERENCE, str(path)], capture_output=True, text=True, check=True
        ).stdout
    return np.asarray(json.loads(output.strip().splitlines()[-1]), dtype=np.float64)


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
