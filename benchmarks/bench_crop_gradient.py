"""The crop gradient: maco_tf's race-free one against TensorFlow's own, side by side.

TensorFlow's CPU kernel for the image gradient of ``tf.image.crop_and_resize`` shards the
boxes over threads and adds into the shared image gradient without synchronisation, so where
two threads' boxes overlap, updates are lost or reordered. ``maco_tf.core.augment.crop_views``
keeps TensorFlow's forward op and gives every box its own gradient slab. This script prints,
in one process:

1. correctness: for ``--runs`` repetitions of the same gradient (``--crops`` crops of one
   ``--size``² image, a MACO-like box schedule), the relative L2 error of each against
   ``crop_views`` (which matches a float64 reference in the tests), and how many runs differ;
2. cost of the crop alone, forward + backward, median time and ratio;
3. cost in a whole ``maco_tf.maco`` step on EfficientNet-Lite0, interleaved rounds (skip with
   ``--no-step``).

    python benchmarks/bench_crop_gradient.py
    python benchmarks/bench_crop_gradient.py --images 4 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from maco_tf.core import augment  # noqa: E402


def tensorflow_crops(images, boxes, output_size, scratch_bytes=0):
    """``crop_views``' signature on TensorFlow's op and its own gradient."""
    nb_images, nb_boxes = boxes.shape[0], boxes.shape[1]
    box_indices = tf.repeat(tf.range(nb_images, dtype=tf.int32), nb_boxes)
    return tf.image.crop_and_resize(images, tf.reshape(boxes, (-1, 4)), box_indices, output_size)


CROPPERS = {"maco_tf crop_views": augment.crop_views, "TensorFlow": tensorflow_crops}


def make_case(args):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(args.images, args.size, args.size, 3)), tf.float32)
    centres = 0.5 + augment.CENTER_STD * rng.normal(size=(args.images, args.crops, 2))
    sides = np.clip(
        0.5 + augment.BOX_SIZE_STD * rng.normal(size=(args.images, args.crops, 1)), 0.05, 1.0
    )
    boxes = tf.constant(np.concatenate([centres - sides / 2, centres + sides / 2], -1), tf.float32)
    upstream = tf.constant(rng.normal(size=(args.images * args.crops, 224, 224, 3)), tf.float32)
    return images, boxes, upstream


def gradient_fn(cropper, boxes, upstream):
    @tf.function
    def gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(cropper(images, boxes, (224, 224)) * upstream)
        return tape.gradient(loss, images)

    return gradient


def correctness(args, images, boxes, upstream):
    ours = gradient_fn(augment.crop_views, boxes, upstream)
    theirs = gradient_fn(tensorflow_crops, boxes, upstream)
    reference = ours(images).numpy()
    norm = np.linalg.norm(reference)
    print(f"1. {args.runs} runs of the same gradient ({args.crops} crops of {args.size}²):")
    for name, gradient in (("maco_tf crop_views", ours), ("TensorFlow", theirs)):
        results = [gradient(images).numpy() for _ in range(args.runs)]
        errors = [np.linalg.norm(r - reference) / norm for r in results]
        worst = max(np.abs(r - reference).max() for r in results)
        distinct = len({r.tobytes() for r in results})
        print(
            f"   {name:20s} distinct results {distinct}/{args.runs}; relative L2 error vs "
            f"crop_views: median {statistics.median(errors):.1e}, max {max(errors):.1e}; "
            f"worst pixel {worst:.3f}; runs off by > 1e-3 relative: "
            f"{sum(e > 1e-3 for e in errors)}"
        )


def crop_cost(args, images, boxes, upstream):
    gradients = {name: gradient_fn(c, boxes, upstream) for name, c in CROPPERS.items()}
    times = {name: [] for name in gradients}
    for gradient in gradients.values():
        gradient(images).numpy()
    for _ in range(args.rounds * 10):
        for name, gradient in gradients.items():
            start = time.perf_counter()
            gradient(images).numpy()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print("2. crop forward + backward alone, median of interleaved runs:")
    for name, value in median.items():
        ratio = value / median["TensorFlow"]
        print(f"   {name:20s} {value * 1e3:7.1f} ms   {ratio:.2f}x TensorFlow")


def step_cost(args):
    from bench_engine import build, per_step, time_ours

    from maco_tf.core.engine import LoopCache

    model, objective_cls = build(args)
    caches = {name: LoopCache() for name in CROPPERS}

    def run(name, steps):
        augment.crop_views = CROPPERS[name]  # read when the loop is traced (once per cache)
        return time_ours(model, objective_cls, args, steps, count=args.images, cache=caches[name])

    try:
        for name in CROPPERS:  # trace both loops first
            run(name, 2)
        steps = {name: [] for name in CROPPERS}
        for _ in range(args.rounds):
            for name in CROPPERS:
                steps[name].append(per_step(lambda s, n=name: run(n, s), 8))
    finally:
        augment.crop_views = CROPPERS["maco_tf crop_views"]
    median = {name: statistics.median(t) for name, t in steps.items()}
    print(
        f"3. maco_tf.maco step, EfficientNet-Lite0, {args.images} image(s), "
        f"median of {args.rounds} interleaved rounds:"
    )
    for name, value in median.items():
        ratio = value / median["TensorFlow"]
        print(f"   {name:20s} {value:.3f} s/step   {ratio:.3f}x TensorFlow's gradient")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-step", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU threads")
    case = make_case(args)
    correctness(args, *case)
    crop_cost(args, *case)
    if not args.no_step:
        step_cost(args)


if __name__ == "__main__":
    main()
