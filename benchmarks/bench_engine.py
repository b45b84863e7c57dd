"""Engine speed and memory: maco_tf.maco vs Xplique's maco vs the bare model (the floor).

It also times ``maco_tf.optimize`` against Xplique's ``optimize`` (the Fourier visualizer) at
Xplique's defaults (standard transformations, no regulariser), side by side in the same rounds.

All timings come from one process, interleaved in rounds (median per variant), on the same
model, crops and image size, so the printed *ratios* hold on a noisy machine. Peak memory is
measured per variant in a fresh subprocess (peak RSS on CPU, TensorFlow's peak on GPU).

    python benchmarks/bench_engine.py                      # EfficientNet-Lite0, 16 crops, 512²
    python benchmarks/bench_engine.py --steps 6 --rounds 2  # quicker
    python benchmarks/bench_engine.py --objectives 1,4,8     # per-image cost vs batch size
    python benchmarks/bench_engine.py --optimize-only --size 256 --steps 4 --rounds 2
    python benchmarks/bench_engine.py --callbacks-only      # an empty callback's cost alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build(args):
    from xplique.features_visualizations import Objective

    from maco_tf.models.zoo import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    return model, Objective


def trivial_model():
    """A model of the same input and logits shapes whose cost is negligible: with it, a
    ``maco_tf`` step costs what the loop itself adds (synthesis, crops, noise, optimizer)."""
    import keras

    inputs = keras.Input((224, 224, 3))
    x = keras.layers.AveragePooling2D(56)(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(1000, name="logits")(x), name="trivial")


def objective_for(model, objective_cls, count):
    return objective_cls.neuron(
        model, "logits", list(range(100, 100 + count)) if count > 1 else 967
    )


def time_xplique(model, objective_cls, args, steps):
    from xplique.features_visualizations import maco as xplique_maco

    objective = objective_for(model, objective_cls, 1)
    start = time.perf_counter()
    xplique_maco(
        objective,
        nb_steps=steps,
        nb_crops=args.crops,
        custom_shape=(args.size, args.size),
        values_range=(0, 255),
    )
    return time.perf_counter() - start


def time_ours(
    model, objective_cls, args, steps, count=1, jit=False, pooled=True, lanes=None, cache=None
):
    import maco_tf

    objective = objective_for(model, objective_cls, count)
    start = time.perf_counter()
    maco_tf.maco(
        objective,
        nb_steps=steps,
        nb_crops=args.crops,
        custom_shape=(args.size, args.size),
        values_range=(0, 255),
        seed=0,
        batch_size=count,
        jit_compile=jit,
        pooled_noise=pooled,
        lanes=lanes,
        cache=cache,
    )
    return time.perf_counter() - start


def time_optimize(model, objective_cls, args, steps, ours):
    """One run of ``optimize`` (maco_tf's or Xplique's) at Xplique's defaults, image ``--size``."""
    if ours:
        from maco_tf import optimize

        extra = {"seed": 0}
    else:
        from xplique.features_visualizations import optimize

        extra = {}
    objective = objective_for(model, objective_cls, 1)
    start = time.perf_counter()
    optimize(
        objective,
        nb_steps=steps,
        custom_shape=(args.size, args.size),
        values_range=(0, 255),
        **extra,
    )
    return time.perf_counter() - start


def optimize_row(model, objective_cls, args):
    """Per-step time of both ``optimize``, interleaved in rounds, and their paired ratio."""
    samples = {"xplique.optimize": [], "maco_tf.optimize": []}
    for _ in range(args.rounds):
        for name in samples:
            ours = name.startswith("maco_tf")
            samples[name].append(
                per_step(
                    lambda s, o=ours: time_optimize(model, objective_cls, args, s, o), args.steps
                )
            )
    ratio = statistics.median(
        a / b for a, b in zip(samples["maco_tf.optimize"], samples["xplique.optimize"], strict=True)
    )
    print(f"\n{'optimize (Xplique defaults)':28s} {'s/step':>8s} {'min':>8s}")
    for name, values in samples.items():
        print(f"{name:28s} {statistics.median(values):8.3f} {min(values):8.3f}")
    print(
        f"maco_tf.optimize / xplique.optimize step time: {ratio:.3f} (median of per-round ratios)"
    )


def callback_overhead(model, objective_cls, args):
    """Step time of ``maco_tf.maco`` with an empty callback against none, side by side.

    Interleaved in rounds; the row printed is the median of the per-round ratios, of wall
    time and of the process's CPU time (all its threads: less disturbed by other processes
    on a shared host).
    """
    import maco_tf

    objective = objective_for(model, objective_cls, 1)

    def timer(steps, callbacks):
        start = time.perf_counter(), time.process_time()
        maco_tf.maco(
            objective,
            nb_steps=steps,
            nb_crops=args.crops,
            custom_shape=(args.size, args.size),
            values_range=(0, 255),
            seed=0,
            callbacks=callbacks,
        )
        return np.array([time.perf_counter() - start[0], time.process_time() - start[1]])

    variants = {"none": None, "empty callback": [lambda progress: None]}
    samples = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, callbacks in variants.items():
            samples[name].append(per_step(lambda s, c=callbacks: timer(s, c), args.steps))
    with_hook, without = np.array(samples["empty callback"]), np.array(samples["none"])
    ratios = np.median(with_hook / without, axis=0) - 1
    print(
        f"\nmaco_tf.maco with an empty callback vs none: wall "
        f"{np.median(with_hook[:, 0]):.3f} vs {np.median(without[:, 0]):.3f} s/step "
        f"({100 * ratios[0]:+.1f}%), CPU {np.median(with_hook[:, 1]):.3f} vs "
        f"{np.median(without[:, 1]):.3f} s/step ({100 * ratios[1]:+.1f}%); medians of "
        f"per-round ratios"
    )
    hook = hook_seconds()
    print(
        f"the hook itself (an empty callback, once per call of 8 steps): {1e6 * hook:.1f} us "
        f"per call, {100 * hook / 8 / np.median(without[:, 0]):.4f}% of a step"
    )


def hook_seconds(calls=20000):
    """What the run does between two compiled calls with an empty callback, timed alone."""
    from maco_tf.core.callbacks import BatchWatcher

    values, images = np.zeros((8, 1), np.float32), np.zeros((1, 8, 8, 3), np.float32)
    watcher = BatchWatcher(count=1, steps=10**9, names=("a",), callbacks=(lambda p: None,))
    start = time.perf_counter()
    for call in range(calls):
        watcher(8 * (call + 1), values, lambda: images)
    return (time.perf_counter() - start) / calls


def make_floor(model, args, sequential=False):
    """The model's forward + backward on fixed crops, ``n`` steps inside one compiled call.

    Like ``maco_tf``'s loop (8 steps per call), so that per-call costs (dispatch, waking the
    thread pools, the host sync) weigh the same on both; the input gradient is reduced into
    the result so that it cannot be pruned. The steps are independent of each other, so the
    runtime may overlap two of them (as with two lanes in one step): the strictest floor.
    With ``sequential`` each step starts when the previous one is done, as in any
    optimisation, where a step needs the previous step's update.
    """
    crops = tf.random.uniform((args.crops, 224, 224, 3), 0, 255)
    mask = tf.one_hot([967] * args.crops, 1000)

    @tf.function
    def steps(x, count):
        total = tf.constant(0.0)
        for _ in tf.range(count):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1 if sequential else 10)
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_mean(model(x, training=False) * mask)
            total += tf.reduce_sum(tape.gradient(loss, x))
        return total

    def run(nb_steps):
        steps(crops, tf.constant(1))  # traced once
        start = time.perf_counter()
        for first in range(0, nb_steps, 8):
            steps(crops, tf.constant(min(8, nb_steps - first))).numpy()
        return time.perf_counter() - start

    return run


def per_step(timer, steps):
    """Per-step time with the first call (tracing, set-up) removed: (T(2+n) - T(2)) / n."""
    return (timer(2 + steps) - timer(2)) / steps


def current_rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(variant, args):
    import threading

    model, objective_cls = build(args)
    base = current_rss_mb()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if variant == "xplique":
        time_xplique(model, objective_cls, args, 3)
    elif variant == "floor":
        make_floor(model, args)(3)
    else:
        time_ours(model, objective_cls, args, 3, jit=variant == "maco_tf_xla")
    done.set()
    sampler.join()
    peak = peak[0]
    gpu = None
    if tf.config.list_physical_devices("GPU"):
        gpu = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print(json.dumps({"rss_peak_mb": peak, "rss_growth_mb": peak - base, "gpu_peak_mb": gpu}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--objectives", default="1,4", help="batch sizes for the per-image table")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--no-jit", action="store_true", help="skip the XLA variant (slow on a CPU)"
    )
    parser.add_argument(
        "--optimize-only", action="store_true", help="only the optimize row (quick)"
    )
    parser.add_argument("--callbacks-only", action="store_true", help="only the callback row")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args)
        return
    if args.callbacks_only:
        callback_overhead(*build(args), args)
        return

    model, objective_cls = build(args)
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{device}; TF {tf.__version__}; EfficientNet-Lite0, {args.crops} crops, "
        f"{args.size}x{args.size} image, {args.steps} steps x {args.rounds} rounds"
    )
    optimize_row(model, objective_cls, args)
    if args.optimize_only:
        return
    floor = make_floor(model, args)
    floor_sequential = make_floor(model, args, sequential=True)
    trivial = trivial_model()
    variants = {
        "floor (model fwd+bwd)": lambda n: floor(n),
        "floor, steps in sequence": lambda n: floor_sequential(n),
        "xplique.maco": lambda n: per_step(
            lambda s: time_xplique(model, objective_cls, args, s), n
        ),
        "maco_tf.maco": lambda n: per_step(lambda s: time_ours(model, objective_cls, args, s), n),
        "maco_tf.maco one lane": lambda n: per_step(
            lambda s: time_ours(model, objective_cls, args, s, lanes=1), n
        ),
        "maco_tf.maco fresh noise": lambda n: per_step(
            lambda s: time_ours(model, objective_cls, args, s, pooled=False), n
        ),
        "loop alone (trivial model)": lambda n: per_step(
            lambda s: time_ours(trivial, objective_cls, args, s), n
        ),
        "maco_tf.maco jit": lambda n: per_step(
            lambda s: time_ours(model, objective_cls, args, s, jit=True), n
        ),
    }
    if args.no_jit:
        del variants["maco_tf.maco jit"]
    samples = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            value = run(args.steps)
            samples[name].append(value / args.steps if name.startswith("floor") else value)
    floor_name = "floor (model fwd+bwd)"

    def paired(name: str, reference: str) -> float:
        """Median over rounds of the ratio within a round (neighbours in time)."""
        return statistics.median(
            a / b for a, b in zip(samples[name], samples[reference], strict=True)
        )

    print(
        f"\n{'variant':28s} {'s/step':>8s} {'min':>8s} {'x floor':>8s} {'x xplique':>10s}"
        "   (median; ratios: median of per-round ratios)"
    )
    for name, values in samples.items():
        print(
            f"{name:28s} {statistics.median(values):8.3f} {min(values):8.3f} "
            f"{paired(name, floor_name):8.3f} {paired(name, 'xplique.maco'):10.3f}"
        )
    ours = paired("maco_tf.maco", floor_name) - 1
    fresh = paired("maco_tf.maco fresh noise", floor_name) - 1
    xplique = paired("xplique.maco", floor_name) - 1
    minima = min(samples["maco_tf.maco"]) / min(samples[floor_name]) - 1
    alone = paired("loop alone (trivial model)", floor_name)
    print(
        f"\nmaco_tf overhead over the floor: {100 * ours:+.1f}%, fresh noise {100 * fresh:+.1f}% "
        f"(xplique: {100 * xplique:+.1f}%); ratio of the minima: {100 * minima:+.1f}%; "
        f"the loop alone costs {100 * alone:.1f}% of the floor (an upper bound of the overhead: "
        "nothing of it overlaps with the model)"
    )

    callback_overhead(model, objective_cls, args)

    counts = [int(c) for c in args.objectives.split(",")]
    print(f"\n{'objectives per loop':20s} {'s/step':>8s} {'s/step/image':>13s}")
    for count in counts:
        value = statistics.median(
            per_step(
                lambda s, c=count: time_ours(model, objective_cls, args, s, count=c), args.steps
            )
            for _ in range(max(1, args.rounds - 1))
        )
        print(f"{count:<20d} {value:8.3f} {value / count:13.3f}")

    if not args.no_memory:
        print(
            f"\n{'variant (fresh process)':28s} {'peak RSS MB':>12s} "
            f"{'growth MB':>10s} {'GPU peak MB':>12s}"
        )
        for variant in ["floor", "xplique", "maco_tf", "maco_tf_xla"]:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-child",
                    variant,
                    "--crops",
                    str(args.crops),
                    "--size",
                    str(args.size),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            stats = json.loads(out.stdout.strip().splitlines()[-1])
            gpu = "-" if stats["gpu_peak_mb"] is None else f"{stats['gpu_peak_mb']:.0f}"
            print(
                f"{variant:28s} {stats['rss_peak_mb']:12.0f} "
                f"{stats['rss_growth_mb']:10.0f} {gpu:>12s}"
            )


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
