"""Every random stream of a run, derived from the run seed with named salts.

A run seed is an integer in ``[0, SEED_LIMIT)`` (``2**63``: it travels as an int64 tensor).
Each image has an *image id* in ``[0, IMAGE_ID_LIMIT)`` (``2**32``); its streams depend on
``(seed, image id)`` only, never on the other images of its batch:

* its starting parameters: :func:`start_generator`, a NumPy generator;
* its per-step crops and noise: :func:`image_seeds` (one int64 per image) combined with the
  step and the :data:`CROP_SALT` / :data:`NOISE_SALT` in :func:`step_seeds`;
* its per-step transformations (``RunConfig.transforms``): :data:`TRANSFORM_SALT` plus the
  transformation's position in the list, also through :func:`step_seeds`;
* the noise pool a compiled call reads windows from: :func:`pool_seed` (run seed, first step
  of the call and :data:`POOL_SALT`).

The seed enters every derivation whole (never reduced modulo a word size), so two different
seeds give different streams.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from maco_tf.errors import InvalidSettingError

__all__ = [
    "CROP_SALT",
    "IMAGE_ID_LIMIT",
    "IMAGE_SALT",
    "MAX_TRANSFORMS",
    "NOISE_SALT",
    "POOL_SALT",
    "SEED_LIMIT",
    "TRANSFORM_SALT",
    "check_seed",
    "image_seeds",
    "pool_seed",
    "random_seed",
    "start_generator",
    "step_seeds",
]

#: Run seeds lie in ``[0, SEED_LIMIT)``.
SEED_LIMIT = 2**63
#: Image ids lie in ``[0, IMAGE_ID_LIMIT)``.
IMAGE_ID_LIMIT = 2**32
#: Salt of the per-image stream seeds ("maco").
IMAGE_SALT = 0x6D61636F
#: Salt of a step's crop geometry draws.
CROP_SALT = 0
#: Salt of a step's noise draws.
NOISE_SALT = 1
#: Salt of the first transformation's draws (``transforms[k]`` uses ``TRANSFORM_SALT + k``).
TRANSFORM_SALT = 2
#: Salt of the noise pool of a compiled call ("pool").
POOL_SALT = 0x706F6F6C
#: Steps are spread this far apart in the second seed word, leaving room for the salts 0-15.
_STEP_STRIDE = 16
#: Transformations a run may list: one salt each, below the step stride.
MAX_TRANSFORMS = _STEP_STRIDE - TRANSFORM_SALT
#: Image stream seeds are reduced into ``[0, 2**62)``.
_IMAGE_SEED_MODULUS = 2**62
_IMAGE_STRIDE = 1_000_003


def check_seed(seed: object) -> int:
    """``seed`` as an int in ``[0, SEED_LIMIT)``, or :class:`InvalidSettingError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidSettingError(f"seed must be an integer in [0, 2**63); got {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise InvalidSettingError(
            f"seed {int(seed)} is outside [0, 2**63); give a seed from 0 to {SEED_LIMIT - 1}"
        )
    return int(seed)


def random_seed() -> int:
    """A fresh run seed (31 random bits), for runs that were not given one."""
    return secrets.randbits(31)


def start_generator(seed: int, image_id: int) -> np.random.Generator:
    """NumPy generator of the starting parameters of image ``image_id`` in run ``seed``."""
    return np.random.default_rng([int(seed), int(image_id)])


def image_seeds(seed: int, image_ids: Sequence[int]) -> np.ndarray:
    """``(len(image_ids),)`` int64 seeds of the images' per-step streams (crops and noise)."""
    mixed = np.random.SeedSequence([int(seed), IMAGE_SALT])
    base = int(mixed.generate_state(1, dtype=np.uint32)[0])
    values = [(base * _IMAGE_STRIDE + int(i)) % _IMAGE_SEED_MODULUS for i in image_ids]
    return np.asarray(values, dtype=np.int64)


def step_seeds(image_seeds: tf.Tensor, step: tf.Tensor, salt: int) -> tf.Tensor:
    """Stateless seeds ``(N, 2)`` of one draw (``salt``) at one step, per image."""
    salted = tf.cast(step, tf.int64) * _STEP_STRIDE + salt
    return tf.stack([image_seeds, tf.broadcast_to(salted, tf.shape(image_seeds))], axis=1)


def pool_seed(run_seed: tf.Tensor, first_step: tf.Tensor) -> tf.Tensor:
    """Stateless seed ``(2,)`` of the noise pool of the compiled call starting at ``first_step``."""
    return tf.stack([run_seed, tf.cast(first_step, tf.int64) * _STEP_STRIDE + POOL_SALT])
