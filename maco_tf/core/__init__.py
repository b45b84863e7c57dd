"""The optimisation core, in data-path order.

``color`` and ``spectrum`` (the fixed magnitude) → ``parameterization`` (phase → image) →
``augment`` (crops and noise) → ``objectives`` (losses on activations) → ``engine`` (the compiled
loop) → ``visualization`` (``visualize`` and Xplique's drop-in ``maco``/``fourier``/``pixel``).
``distribute`` runs the engine on a ``tf.distribute`` strategy. Nothing here reads or writes files.
"""
