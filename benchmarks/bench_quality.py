"""Image quality: MACO vs Fourier vs pixel on the offline EfficientNet-Lite0, at equal compute.

For each ImageNet class, one image per method is optimised on the class logit with the same
steps, crops, image size, noise, crop schedule and seed (one batched ``maco_tf.visualize``
call per method; each method keeps its library-default optimizer: Nadam(1.0) for MACO,
Adam(0.05) for the baselines). The images are then scored with :mod:`maco_tf.outputs.metrics`:

* self-recognition: top-1 rate, mean 1-based rank and probability of the target class on
  EfficientNet-Lite0 (whole image resized to 224);
* plausibility: mean cosine similarity of the penultimate (``avg_pool``) features to those of
  bundled real photographs of the same class (several views of each photo), for the classes
  that have one; "other" is the same against the photos of the *other* classes (a control:
  own minus other is the class-specific part);
* FID between the method's images and the photos, for the classes with photos. It is a
  *small-sample* FID (a handful of images in a 1280-d feature space, rank-deficient
  covariances): only compare rows of one run;
* transferability: top-1 rate and mean rank on a second classifier. No other pretrained
  ImageNet model is available offline, so the default second "model" is the same network on
  a different view of the image (horizontally flipped, centre 80 % crop, resized): it tests
  robustness of the class evidence to the view, not transfer across architectures. Name a
  ``keras.applications`` model with ``--transfer-model`` when its weights are available.

Bundled photographs (scikit-image, scikit-learn, matplotlib) and the class they depict:
coffee -> espresso, chelsea -> Egyptian Mau, rocket -> missile, stereo_motorcycle -> moped,
sklearn china -> palace, sklearn flower -> daisy, matplotlib grace_hopper -> military uniform
(astronaut depicts no ImageNet class and is not used).

    python benchmarks/bench_quality.py                 # 20 classes, 128 steps, 16 crops, 256 px
    python benchmarks/bench_quality.py --quick         # 4 classes, 8 steps, 4 crops, 224 px
    python benchmarks/bench_quality.py --classes espresso,daisy --transfer-model view,MobileNetV2
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

METHODS = ("maco", "fourier", "pixel")

#: ImageNet class -> (photo name, loader) of bundled real photographs.
PHOTO_CLASSES: dict[int, str] = {
    967: "skimage coffee",
    285: "skimage chelsea",
    657: "skimage rocket",
    665: "skimage stereo_motorcycle",
    698: "sklearn china",
    985: "sklearn flower",
    652: "matplotlib grace_hopper",
}

#: Default classes: the 7 with photos first, then 13 varied ones (animals, objects, food,
#: scenes).
DEFAULT_CLASSES = (
    967,  # espresso
    285,  # Egyptian Mau
    657,  # missile
    665,  # moped
    698,  # palace
    985,  # daisy
    652,  # military uniform
    1,  # goldfish
    88,  # macaw
    130,  # flamingo
    145,  # king penguin
    207,  # golden retriever
    291,  # lion
    323,  # monarch butterfly
    402,  # acoustic guitar
    417,  # balloon
    817,  # sports car
    954,  # banana
    963,  # pizza
    980,  # volcano
)

QUICK = {"steps": 8, "crops": 4, "size": 224, "classes": 4}
FULL = {"steps": 128, "crops": 16, "size": 256}
VIEW = "view"


# ---------------------------------------------------------------------------- photos


def _load_photo(name: str) -> np.ndarray:
    """A bundled photograph as uint8 RGB ``(H, W, 3)``."""
    source, key = name.split(" ", 1)
    if source == "skimage":
        from skimage import data

        image = data.stereo_motorcycle()[0] if key == "stereo_motorcycle" else getattr(data, key)()
    elif source == "sklearn":
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{key}.jpg")
    else:
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data(f"{key}.jpg") as handle:
            image = np.asarray(Image.open(handle).convert("RGB"))
    return np.asarray(image, dtype=np.uint8)[..., :3]


def photo_views(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Six square views of a photo, ``(6, size, size, 3)`` float in [0, 255].

    The centre square, its mirror, and four 80 % corner squares: a few samples per class so
    that plausibility averages over views and the FID has more than one photo per class.
    """
    from PIL import Image

    height, width = image.shape[:2]
    side = min(height, width)
    small = int(round(0.8 * side))
    boxes = [((height - side) // 2, (width - side) // 2, side)]
    boxes += [(top, left, small) for top in (0, height - small) for left in (0, width - small)]
    views = []
    for top, left, extent in boxes:
        crop = np.ascontiguousarray(image[top : top + extent, left : left + extent])
        views.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR)))
    views.insert(1, views[0][:, ::-1])
    return np.stack(views).astype(np.float32)


# ---------------------------------------------------------------------------- models


def flipped_view_model(loaded: object, crop: float = 0.8) -> object:
    """The same classifier on another view: horizontal flip, centre ``crop`` crop, resize."""
    import dataclasses

    import keras

    height, width = loaded.input_size
    inputs = keras.Input((height, width, 3), name="image")
    x = keras.layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name="flip")(inputs)
    x = keras.layers.CenterCrop(int(round(crop * height)), int(round(crop * width)))(x)
    x = keras.layers.Resizing(height, width, interpolation="bilinear", name="resize")(x)
    outputs = loaded.model(x)
    model = keras.Model(inputs, outputs, name=f"{loaded.name}_flip_crop{int(crop * 100)}")
    return dataclasses.replace(loaded, model=model, name=f"{loaded.name} [flip + crop 80%]")


def transfer_models(spec: str, loaded: object) -> list[object]:
    from maco_tf.models.loading import load_model

    models = []
    for name in (part.strip() for part in spec.split(",") if part.strip()):
        models.append(flipped_view_model(loaded) if name == VIEW else load_model(name))
    return models


# ---------------------------------------------------------------------------- run


def machine_description() -> str:
    import keras
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()} | {platform.platform()} | {cpu}, {os.cpu_count()} CPU cores | "
        f"GPU: {', '.join(gpus) if gpus else 'none'} | Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--classes",
        default=None,
        help="ImageNet classes, names or indices, comma-separated (default: 20 fixed classes, "
        "the 7 with bundled photos first)",
    )
    parser.add_argument("--steps", type=int, default=None, help=f"default {FULL['steps']}")
    parser.add_argument("--crops", type=int, default=None, help=f"default {FULL['crops']}")
    parser.add_argument("--size", type=int, default=None, help=f"default {FULL['size']}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--box-size",
        default="1.0,0.3",
        metavar="START,END",
        help="crop side schedule, linear (default 1.0,0.3 as maco-tf; Xplique's is 0.5,0.05)",
    )
    parser.add_argument(
        "--whole-views",
        type=int,
        default=4,
        help="crops per step that show the whole image (default 4 as maco-tf; Xplique 0)",
    )
    parser.add_argument(
        "--xplique-schedule",
        action="store_true",
        help="add a MACO row with Xplique's crops (0.5 -> 0.05, no whole view) and noise "
        "(0.08), equal steps",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"methods to run, comma-separated (default {','.join(METHODS)})",
    )
    parser.add_argument(
        "--maco-lr",
        type=float,
        default=None,
        help="learning rate of MACO's Nadam (default: the library's, 1.0 as Xplique)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.04,
        help="noise, for a value range of width 2 (default 0.04 as maco-tf; the "
        "library's and Xplique's is 0.08)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="images per compiled loop")
    parser.add_argument("--jit", action="store_true", help="compile the loops with XLA")
    parser.add_argument(
        "--transfer-model",
        default=VIEW,
        help="second classifier(s), comma-separated: 'view' (this network on a flipped, "
        "cropped view; default) or keras.applications names (need their ImageNet weights)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK['classes']} classes, {QUICK['steps']} steps, "
        f"{QUICK['crops']} crops, {QUICK['size']} px (explicit flags still win)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print per-class ranks")
    parser.add_argument("--save", default=None, help="folder to write the images as PNG")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        start, end = (float(v) for v in args.box_size.split(","))
    except ValueError:
        parser.error(f"--box-size: expected START,END such as 1.0,0.3; got {args.box_size!r}")
    args.box_size = (start, end)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or not args.methods:
        parser.error(f"--methods: expected some of {', '.join(METHODS)}; got {unknown or 'none'}")
    preset = QUICK if args.quick else FULL
    for key in ("steps", "crops", "size"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    return args


def resolve(args: argparse.Namespace) -> list[int]:
    from maco_tf.models.zoo import resolve_classes

    if args.classes:
        return resolve_classes(args.classes)
    classes = list(DEFAULT_CLASSES)
    return classes[: QUICK["classes"]] if args.quick else classes


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def score(
    name: str,
    images: np.ndarray,
    classes: list[int],
    loaded: object,
    transfers: list[object],
    extract: Callable,
    photo_features: dict[int, np.ndarray],
    elapsed: float | None,
) -> dict:
    """All metrics of one set of images (one per class) in [0, 255]."""
    from maco_tf.outputs import metrics

    row: dict = {"method": name, "n": len(images), "elapsed_s": elapsed}
    own = metrics.self_recognition(images, classes, loaded, values_range=(0, 255))
    row.update(
        self_top1=own.top1_rate,
        self_rank=own.mean_rank,
        self_prob=own.mean_probability,
        ranks=own.rank.tolist(),
    )
    transfer = metrics.transferability(images, classes, transfers, values_range=(0, 255))
    row["transfer"] = {key: value.summary() for key, value in transfer.items()}
    with_photos = [i for i, c in enumerate(classes) if c in photo_features]
    row["n_photo_classes"] = len(with_photos)
    if with_photos and photo_features:
        features = extract(images[with_photos], (0, 255))
        own_scores, other_scores = [], []
        for feature, index in zip(features, with_photos, strict=True):
            target = classes[index]
            own_scores.append(
                metrics.plausibility_from_features(feature[None], photo_features[target])[0]
            )
            others = [f for c, f in photo_features.items() if c != target]
            if others:
                other_scores.append(
                    metrics.plausibility_from_features(feature[None], np.concatenate(others))[0]
                )
        row["plausibility"] = float(np.mean(own_scores))
        row["plausibility_other"] = float(np.mean(other_scores)) if other_scores else None
        references = np.concatenate([photo_features[classes[i]] for i in with_photos])
        row["fid"] = metrics.fid_from_features(features, references) if len(features) > 1 else None
        row["fid_sizes"] = [len(features), len(references)]
    return row


def print_table(rows: list[dict], transfer_names: list[str]) -> None:
    short = {name: f"T{i + 1}" for i, name in enumerate(transfer_names)}
    header = [
        "method",
        "time s",
        "self top1",
        "self rank",
        "self p",
        "plaus own",
        "plaus other",
        "FID photos",
    ]
    for name in transfer_names:
        header += [f"{short[name]} top1", f"{short[name]} rank"]
    table = [header]
    for row in rows:
        line = [
            row["method"],
            fmt(row["elapsed_s"], 1),
            fmt(row["self_top1"], 2),
            fmt(row["self_rank"], 1),
            fmt(row["self_prob"], 3),
            fmt(row.get("plausibility")),
            fmt(row.get("plausibility_other")),
            fmt(row.get("fid"), 1),
        ]
        for name in transfer_names:
            summary = row["transfer"][name]
            line += [fmt(summary["top1"], 2), fmt(summary["mean_rank"], 1)]
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for index, line in enumerate(table):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for name in transfer_names:
        print(f"{short[name]} = {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import maco_tf
    from maco_tf.models.loading import load_model
    from maco_tf.outputs import metrics
    from maco_tf.targets.units import class_logits

    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    print(f"command: {command}")
    print(f"machine: {machine_description()}")

    loaded = load_model()
    names = loaded.class_names
    classes = resolve(args)
    transfers = transfer_models(args.transfer_model, loaded)
    transfer_names = [t.name for t in transfers]
    print(
        f"model: {loaded.name} (offline), {len(classes)} classes, {args.steps} steps, "
        f"{args.crops} crops ({args.whole_views} whole), crop side {args.box_size[0]:g} -> "
        f"{args.box_size[1]:g}, {args.size}x{args.size} px, seed {args.seed}, "
        f"batch {args.batch_size or 'auto'}, jit {args.jit}, "
        f"noise {args.noise if args.noise is not None else 'default'}"
    )

    extract = metrics.feature_extractor(loaded)
    photo_features, photos = {}, {}
    for target in classes:
        if target in PHOTO_CLASSES and target not in photo_features:
            try:
                photos[target] = _load_photo(PHOTO_CLASSES[target])
            except (ImportError, OSError) as exc:  # sklearn / matplotlib are optional here
                print(f"photo {PHOTO_CLASSES[target]} unavailable ({exc}); skipped")
                continue
            photo_features[target] = extract(photo_views(photos[target]), (0, 255))
    print(
        f"photos: {len(photo_features)} of the classes have one "
        f"({', '.join(f'{names[c]}: {PHOTO_CLASSES[c]}' for c in photo_features) or 'none'}); "
        f"6 views each; features: {extract.layer} "
        f"({next(iter(photo_features.values())).shape[1] if photo_features else '?'}-d)"
    )

    objective = class_logits(loaded.model, classes, loaded.logits_layer, class_names=names)
    rows, images_by_method = [], {}
    variants = [
        (method, method, args.box_size, args.whole_views, args.noise) for method in args.methods
    ]
    if args.xplique_schedule:
        # Xplique's settings but for the steps and crops: its crops, no whole view, its noise
        variants.append(("maco, Xplique crops", "maco", (0.5, 0.05), 0, None))
    library_noise = inspect.signature(maco_tf.maco).parameters["noise_intensity"].default
    for label, method, (box_start, box_end), whole_views, noise in variants:
        optimizer = maco_tf.default_optimizer(method)
        if method == "maco" and args.maco_lr is not None:
            optimizer = type(optimizer)(learning_rate=args.maco_lr)
        start = time.perf_counter()
        viz = maco_tf.visualize(
            objective,
            method=method,
            optimizer=optimizer,
            noise=library_noise if noise is None else noise,
            steps=args.steps,
            crops=args.crops,
            values_range=loaded.values_range,
            size=args.size,
            box_size=(box_start, box_end),
            whole_views=whole_views,
            seed=args.seed,
            batch_size=args.batch_size,
            jit_compile=args.jit,
            image_ids=classes,  # as maco-tf: an image depends on (seed, class) only
        )
        total = time.perf_counter() - start
        images_by_method[label] = viz.images
        row = score(
            label,
            viz.images,
            classes,
            loaded,
            transfers,
            extract,
            photo_features,
            total,
        )
        row["optimizer"] = f"{type(optimizer).__name__}({float(optimizer.learning_rate):g})"
        rows.append(row)
        row["crops_schedule"] = [box_start, box_end, min(whole_views, args.crops)]
        row["noise"] = noise if noise is not None else library_noise
        print(f"  {label}: {total:.1f} s ({viz.elapsed_s:.1f} s optimising)", flush=True)

    photo_classes = [c for c in classes if c in photo_features]
    if photo_classes:
        centre = np.stack([photo_views(photos[c])[0] for c in photo_classes])
        reference = score("photos", centre, photo_classes, loaded, transfers, extract, {}, None)
        rows.append(reference)

    print()
    print_table(rows, transfer_names)
    print(
        "\nself = EfficientNet-Lite0 on the whole image resized to 224; rank is 1-based "
        "(1 = top-1), mean over classes; p = softmax probability of the target."
    )
    print(
        "plaus own/other = mean cosine similarity of avg_pool features to the photo views of "
        "the same class / of the other photo classes (classes with photos only)."
    )
    fid_sizes = next((r["fid_sizes"] for r in rows if r.get("fid_sizes")), None)
    if fid_sizes:
        print(
            f"FID photos = small-sample FID, {fid_sizes[0]} images vs {fid_sizes[1]} photo "
            f"views in 1280-d (rank-deficient covariances): compare rows, not papers."
        )
    if VIEW in [p.strip() for p in args.transfer_model.split(",")]:
        print(
            "transfer: no second pretrained ImageNet model is available offline, so "
            f"'{transfers[0].name}' is the SAME network on a different view (flipped, centre "
            "80% crop): a view-robustness check, not cross-architecture transfer."
        )
    print(
        "optimizers: "
        + ", ".join(f"{r['method']} {r['optimizer']}" for r in rows if "optimizer" in r)
        + (" (library defaults)" if args.maco_lr is None else " (--maco-lr for MACO)")
        + "; photos row = centre crops of the bundled photos (reference)."
    )
    if args.verbose:
        print("\nrank of the target class per class (self):")
        print("  ".join(["class".ljust(22)] + [v[0][:7].rjust(7) for v in variants]))
        for i, target in enumerate(classes):
            cells = [str(r["ranks"][i]).rjust(7) for r in rows[: len(variants)]]
            print("  ".join([f"{target} {names[target]}"[:22].ljust(22), *cells]))
    if args.save:
        from maco_tf.outputs.render import save_png, to_uint8

        for method, images in images_by_method.items():
            for target, image in zip(classes, images, strict=True):
                stem = method.replace(", ", "_").replace(" ", "_")
                path = os.path.join(args.save, f"{stem}_{target:04d}.png")
                save_png(path, to_uint8(image, loaded.values_range))
        print(f"images written to {args.save}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "command": command,
                    "machine": machine_description(),
                    "args": vars(args),
                    "classes": classes,
                    "rows": rows,
                },
                handle,
                indent=2,
            )
    return 0


def run(argv: list[str] | None = None) -> int:
    """:func:`main`, with user mistakes (unknown class or model) printed as one line."""
    from maco_tf.errors import MacoError
    from maco_tf.models.zoo import ImageNetClassError

    try:
        return main(argv)
    except (MacoError, ImageNetClassError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())
