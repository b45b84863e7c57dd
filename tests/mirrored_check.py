"""Run in a fresh process by test_distribute.py: one device vs two logical CPU devices.

TensorFlow fixes its logical devices when it first starts, so this cannot run inside the
pytest process. Prints one JSON line with the measured differences and facts about the runs.

Usage: ``python -m tests.mirrored_check``.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main() -> dict:
    """Both runs of each method, compared; the errors of the unsupported combinations."""
    # Bit-exact comparisons need deterministic kernels: without this, oneDNN's multi-threaded
    # reductions differ in the last bits between runs, and Nadam(1.0) on the phases amplifies
    # such differences on near-zero gradient components (see README, reproducibility).
    tf.config.experimental.enable_op_determinism()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from xplique.features_visualizations import Objective

    import maco_tf
    from maco_tf.core.engine import LoopCache
    from maco_tf.errors import InvalidSettingError

    from .conftest import build_tiny_cnn

    model = build_tiny_cnn()
    # 5 combinations (5 neurons x 1 channel) in chunks of 4: the second chunk is padded;
    # each replica takes 2 images of a chunk.
    objective = Objective.neuron(model, "logits", [0, 1, 2, 3, 4]) + Objective.channel(
        model, "conv2", 3
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    settings = dict(
        steps=6, crops=3, size=48, seed=3, batch_size=4, whole_views=0, noise=0.08, box_size=None
    )
    report: dict = {"replicas": strategy.num_replicas_in_sync}
    for method in ("maco", "fourier"):
        single = maco_tf.visualize(objective, method=method, **settings)
        repeated = maco_tf.visualize(objective, method=method, **settings)
        cache = LoopCache()
        split = maco_tf.visualize(
            objective, method=method, strategy=strategy, cache=cache, **settings
        )
        with strategy.scope():  # the strategy of the open scope is the default one
            scoped = maco_tf.visualize(objective, method=method, **settings)
        (loop,) = [entry[1] for entry in cache._entries.values()]
        report[method] = {
            "repeat_images": float(np.abs(single.images - repeated.images).max()),
            "images": float(np.abs(single.images - split.images).max()),
            "scoped_images": float(np.abs(single.images - scoped.images).max()),
            "transparency": float(
                np.abs(single.transparency - split.transparency).max() / single.transparency.max()
            ),
            "losses": float(np.abs(single.loss_history - split.loss_history).max()),
            "loss_scale": float(np.abs(single.loss_history).max()),
            "nonfinite": split.nonfinite_steps.tolist(),
            "images_per_replica": loop.images_per_replica,
            "trace_count": loop.trace_count,
            "settings_replicas": split.settings["replicas"],
            "spread": float(single.images.std(axis=0).mean()),
        }
    errors = {}
    variants = {
        "jit": (objective, dict(jit_compile=True)),
        "diversity": (objective - 0.5 * maco_tf.diversity("conv2"), {}),
    }
    for name, (variant, extra) in variants.items():
        try:
            maco_tf.visualize(variant, strategy=strategy, **settings, **extra)
        except InvalidSettingError as exc:
            errors[name] = str(exc)
    report["errors"] = errors
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
