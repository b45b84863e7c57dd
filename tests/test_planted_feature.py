"""Planted-feature test: MACO must find a hand-wired orientation detector's pattern.

The model (see :mod:`tests.planted`) is a 32x32x3 input, an 11x11 Gabor convolution with two
filters set by hand (gratings of period 8 px whose intensity gradient points at 45 or 135
degrees), ReLU and global average pooling; the layer ``"unit"`` has one neuron per
orientation. Both neurons are visualised together with a fixed seed, on 96x96 images.

MACO fixes the magnitude of the image spectrum, so a power-spectrum or global gradient-energy
measure of orientation says (almost) nothing: the pattern has to live in the phase. Every
measure below is therefore compared with *phase-randomised copies* of the same image:

* ``phase_randomized``: same per-channel |FFT| as the final image, random phases. The final
  image went through a sigmoid, whose harmonics already leak some of the orientation into
  the magnitude, so this control is conservative.
* ``maco_phase_randomized``: random phases applied in MACO's own synthesis basis (before the
  colour mixing and the sigmoid), i.e. random images with exactly MACO's magnitude constraint.

Crops use ``box_size=0.9`` (crops of about the whole image, 86 px -> 32 px) so that the scale
the optimisation sees matches the whole-image evaluation (96 px -> 32 px). With the default
schedule (crops of 50% down to 5% of the side) the unit is optimised at a zoom the whole image
never shows, and whole-image measures become noise.

Run with ``-s`` to see the numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import maco_tf
from maco_tf.core.engine import LoopCache

from .planted import (
    ANGLES,
    MODEL_SIZE,
    PERIOD,
    band_power_fraction,
    grating,
    maco_phase_randomized,
    oriented_coherence,
    phase_randomized,
    planted_model,
    responses,
)

# Seeds 0-7 were checked by hand: seeds 0-3 and 6-7 pass every assertion; with seed 4 or 5 one
# unit stalls in a low-response state (whole image and its copies near 0.08) on this ReLU toy.
SEEDS = (0, 1)
IMAGE_SIZE = 96
SETTINGS = {
    "steps": 48,
    "crops": 6,
    "size": (IMAGE_SIZE, IMAGE_SIZE),
    "box_size": 0.9,
    "values_range": (-1, 1),
    "whole_views": 0,
    "noise": 0.08,
}
NB_COPIES = 20


def _zscore(value: float, sample: np.ndarray) -> float:
    return float((value - sample.mean()) / sample.std())


@pytest.fixture(scope="module")
def planted():
    objective_cls = pytest.importorskip("xplique.features_visualizations").Objective
    model = planted_model()
    objective = objective_cls.neuron(model, "unit", [0, 1])
    cache = LoopCache()
    records = []
    for seed in SEEDS:
        runs = {
            method: maco_tf.visualize(objective, method=method, seed=seed, cache=cache, **SETTINGS)
            for method in ("maco", "pixel")
        }
        maco_resp = responses(model, runs["maco"].images)
        pixel_resp = responses(model, runs["pixel"].images)
        for unit in range(len(ANGLES)):
            other = 1 - unit
            image = runs["maco"].images[unit]
            rng = np.random.default_rng([seed, unit])
            copies = np.stack([phase_randomized(image, rng) for _ in range(NB_COPIES)])
            maco_copies = np.stack([maco_phase_randomized(image, rng) for _ in range(NB_COPIES)])
            records.append(
                {
                    "seed": seed,
                    "unit": unit,
                    "other": other,
                    "maco_run": runs["maco"],
                    "pixel_run": runs["pixel"],
                    "image": image,
                    "response": float(maco_resp[unit, unit]),
                    "other_response": float(maco_resp[unit, other]),
                    "pixel_response": float(pixel_resp[unit, unit]),
                    "copies_response": responses(model, copies),
                    "orient": oriented_coherence(image, ANGLES[unit]),
                    "orient_other": oriented_coherence(image, ANGLES[other]),
                    "copies_orient": np.array(
                        [oriented_coherence(c, ANGLES[unit]) for c in maco_copies]
                    ),
                    "copies_orient_other": np.array(
                        [oriented_coherence(c, ANGLES[other]) for c in maco_copies]
                    ),
                    "maco_band": band_power_fraction(model, image, unit),
                    "pixel_band": band_power_fraction(model, runs["pixel"].images[unit], unit),
                }
            )
    return model, records


def _label(rec: dict) -> str:
    return f"seed {rec['seed']} unit {rec['unit']} ({ANGLES[rec['unit']]:.0f} deg)"


def test_planted_units_are_orientation_selective(planted):
    model, records = planted
    gratings = np.stack([grating(MODEL_SIZE, angle, PERIOD) for angle in ANGLES])
    table = responses(model, gratings)
    print(f"\nunit responses to gratings (rows: grating angle {ANGLES}):\n{np.round(table, 3)}")
    for unit in range(len(ANGLES)):
        assert table[unit, unit] > 5 * table[1 - unit, unit]
    for rec in records:  # the runs themselves went fine
        for run in (rec["maco_run"], rec["pixel_run"]):
            assert not run.dead.any()
            assert not run.nonfinite_steps.any()
            assert run.images.min() >= -1 and run.images.max() <= 1


def test_maco_image_drives_its_unit_beyond_phase_randomised_copies(planted):
    """(1a) The unit's response needs MACO's phases: random phases, same |FFT|, do worse."""
    _, records = planted
    print()
    for rec in records:
        own = rec["copies_response"][:, rec["unit"]]
        z = _zscore(rec["response"], own)
        print(
            f"{_label(rec)}: MACO image {rec['response']:.3f} | {NB_COPIES} phase-randomised "
            f"copies {own.mean():.3f} +- {own.std():.3f} (max {own.max():.3f}) | "
            f"x{rec['response'] / own.max():.2f} of the max, z = {z:.1f}"
        )
        assert rec["response"] > 1.1 * own.max()
        assert z > 3.0


def test_maco_image_is_locally_oriented_like_its_unit(planted):
    """(1b) Structure-tensor coherence at the planted orientation, against MACO's own random
    phases (same magnitude constraint): a local statistic the magnitude alone cannot fix.

    Measured at the image's own resolution (derivative std 1 px, windows std 4 px), where the
    edges of the stripes are. Against the final-|FFT| copies this statistic is weaker (they
    inherit the sigmoid's oriented harmonics), and at the model-input scale it is not
    reliable from seed to seed, so neither is asserted.
    """
    _, records = planted
    print()
    for rec in records:
        copies = rec["copies_orient"]
        z = _zscore(rec["orient"], copies)
        print(
            f"{_label(rec)}: oriented coherence {rec['orient']:+.3f} | random-phase MACO copies "
            f"{copies.mean():+.3f} +- {copies.std():.3f} (max {copies.max():+.3f}), z = {z:.1f}"
        )
        assert rec["orient"] > copies.max()
        assert z > 5.0


def test_maco_image_of_the_other_orientation_does_not_show_this_one(planted):
    """(3) Control: the image made for one orientation does not carry the other one."""
    _, records = planted
    print()
    for rec in records:
        other = rec["other"]
        copies = rec["copies_response"][:, other]
        z_resp = _zscore(rec["other_response"], copies)
        orient_copies = rec["copies_orient_other"]
        z_orient = _zscore(rec["orient_other"], orient_copies)
        print(
            f"{_label(rec)}: unit {other} on this image {rec['other_response']:.3f} vs copies "
            f"{copies.mean():.3f} +- {copies.std():.3f} (z = {z_resp:.1f}); coherence at "
            f"{ANGLES[other]:.0f} deg {rec['orient_other']:+.3f} vs copies "
            f"{orient_copies.mean():+.3f} (z = {z_orient:.1f})"
        )
        assert rec["other_response"] < rec["response"]
        assert z_resp < 1.0
        assert z_orient < 0.0


def test_pixel_ascent_outdrives_maco_because_maco_keeps_a_natural_spectrum(planted):
    """(2) MACO vs pixel ascent, same steps, crops, noise and seed, on the whole images.

    On this shallow unit pixel ascent drives the unit *harder* than MACO (about 5x): the
    unit's optimum, a full-contrast grating, is a pixel image, while MACO keeps the natural
    magnitude spectrum, of which only a small share falls in the Gabor's band. So the
    checks are: pixel ascent does work, and MACO's magnitude constraint holds (its band
    power stays small while pixel ascent concentrates its power in the band).
    """
    _, records = planted
    print()
    for rec in records:
        ratio = rec["response"] / rec["pixel_response"]
        print(
            f"{_label(rec)}: response MACO {rec['response']:.3f} vs pixel "
            f"{rec['pixel_response']:.3f} (MACO/pixel {ratio:.2f}) | power in the unit's band: "
            f"MACO {rec['maco_band']:.3f}, pixel {rec['pixel_band']:.3f}"
        )
        assert rec["pixel_response"] > 2 * rec["response"]
        assert rec["maco_band"] < 0.2
        assert rec["pixel_band"] > 3 * rec["maco_band"]
