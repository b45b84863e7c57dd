"""Judging images: an independent network, the optimised one, and real photographs.

* judge: EfficientNet-Lite1 (:func:`maco_tf.outputs.judges.default_judge`), never optimised:
  top-1, top-5 and softmax probability of the target on the whole image;
* robust judge: the same judge after each of
  :data:`maco_tf.outputs.recognition.DEFAULT_DEGRADATIONS` (low-pass round trips to 64 and 112
  px, a 10-degree rotation, JPEG at quality 50): top-1 per degradation, and their mean
  (``robust_top1``, ``robust_p``), see :func:`maco_tf.outputs.recognition.robust_recognition`;
* self: EfficientNet-Lite0, the optimised network, the same way;
* plausibility: mean cosine similarity of the judge's penultimate features to those of the
  natural photos (the foolbox ImageNet photos and the bundled photos), class-agnostic: how
  natural an image looks to the judge;
* FID against the same photos (small sample: compare rows of one run only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Judges:
    """The models and reference features every image set is scored with."""

    judge: object
    optimised: object
    extract: object
    photo_features: np.ndarray
    photo_labels: np.ndarray
    imagenet_photos: np.ndarray


def load_judges(optimised: object) -> Judges:
    """EfficientNet-Lite1, its feature extractor and the photos' features."""
    from maco_tf.models.zoo.photos import imagenet_photos, natural_photos
    from maco_tf.outputs.features import feature_extractor
    from maco_tf.outputs.judges import default_judge

    judge = default_judge()
    extract = feature_extractor(judge)
    side = max(judge.input_size)
    photos = natural_photos(side)
    labelled, labels = imagenet_photos(side)
    return Judges(
        judge=judge,
        optimised=optimised,
        extract=extract,
        photo_features=extract(photos, (0, 255)),
        photo_labels=labels,
        imagenet_photos=labelled,
    )


def score(images: np.ndarray, classes: list[int], judges: Judges, values_range) -> dict:
    """Per-image and summary scores of one image per class.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` in ``values_range``.
    classes
        ``N`` target classes.
    judges
        From :func:`load_judges`.
    values_range
        Range of ``images``.

    Returns
    -------
    dict
        ``per_image`` (lists of judge rank and probability, self rank and probability,
        plausibility, judge rank per degradation) and the summaries ``judge_top1``,
        ``judge_top5``, ``judge_p``, ``<degradation>_top1`` and ``_p`` for each degradation,
        ``robust_top1``, ``robust_top5``, ``robust_p``, ``self_top1``, ``self_p``,
        ``plausibility``, ``fid``.
    """
    from maco_tf.outputs import metrics
    from maco_tf.outputs.fid import fid_from_features

    robust = robust_judge(images, classes, judges, values_range)
    judged = robust.plain
    own = metrics.self_recognition(images, classes, judges.optimised, values_range=values_range)
    features = judges.extract(images, tuple(values_range))
    plausible = metrics.plausibility_from_features(features, judges.photo_features)
    fid = fid_from_features(features, judges.photo_features) if len(images) > 1 else None
    return {
        **_summary(judged, own, plausible, fid),
        **_robust_summary(robust),
        "per_image": {
            "class": [int(c) for c in classes],
            "judge_rank": judged.rank.tolist(),
            "judge_p": judged.probability.tolist(),
            "judge_predicted": judged.predicted.tolist(),
            "self_rank": own.rank.tolist(),
            "self_p": own.probability.tolist(),
            "plausibility": [float(v) for v in plausible],
            **_robust_ranks(robust),
        },
    }


def robust_judge(images: np.ndarray, classes: list[int], judges: Judges, values_range) -> object:
    """The judge's :func:`~maco_tf.outputs.recognition.robust_recognition` (its degradations)."""
    from maco_tf.outputs.recognition import robust_recognition

    return robust_recognition(images, classes, judges.judge, values_range=tuple(values_range))


def _robust_summary(robust) -> dict:
    """Top-1 and mean target probability per degradation, and their means."""
    flat = robust.summary()
    keys = [f"{name}_{part}" for name in robust.degraded for part in ("top1", "p")]
    return {key: flat[key] for key in [*keys, "robust_top1", "robust_top5", "robust_p"]}


def _robust_ranks(robust) -> dict:
    return {f"{name}_rank": scores.rank.tolist() for name, scores in robust.degraded.items()}


def score_photos(judges: Judges) -> dict:
    """The labelled ImageNet photos as a reference row (plausibility leaves each one out)."""
    from maco_tf.outputs import metrics

    classes = [int(c) for c in judges.photo_labels]
    robust = robust_judge(judges.imagenet_photos, classes, judges, (0, 255))
    judged = robust.plain
    own = metrics.self_recognition(judges.imagenet_photos, classes, judges.optimised, (0, 255))
    features = judges.extract(judges.imagenet_photos, (0, 255))
    count = len(features)
    similarity = _cosine(features, judges.photo_features)
    # the first `count` natural photos are these photos themselves: leave each one out
    similarity[np.arange(count), np.arange(count)] = np.nan
    plausible = np.nanmean(similarity, axis=1)
    return {
        **_summary(judged, own, plausible, None),
        **_robust_summary(robust),
        "per_image": {
            "class": classes,
            "judge_rank": judged.rank.tolist(),
            **_robust_ranks(robust),
        },
    }


def _summary(judged, own, plausible: np.ndarray, fid: float | None) -> dict:
    """The summary scores of one image set (see :func:`score`)."""
    return {
        "judge_top1": judged.top1_rate,
        "judge_top5": judged.topk_rate(5),
        "judge_p": judged.mean_probability,
        "self_top1": own.top1_rate,
        "self_p": own.mean_probability,
        "plausibility": float(np.mean(plausible)),
        "fid": fid,
    }


def start_session(script: str, argv: list[str]) -> tuple[str, object, Judges]:
    """Print the command and machine, load EfficientNet-Lite0 and the judges.

    Returns
    -------
    command, loaded, judges
        The command line as it can be re-run, the optimised model, :func:`load_judges`.
    """
    import shlex

    from maco_tf.models.loading import load_model
    from quality.report import machine_description

    command = "python " + " ".join(shlex.quote(a) for a in [script, *argv])
    print(f"command: {command}\nmachine: {machine_description()}", flush=True)
    loaded = load_model("efficientnet_lite0")
    return command, loaded, load_judges(loaded)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T
