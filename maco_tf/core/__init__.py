"""The optimisation core, in data-path order.

``color`` and ``spectrum`` (the fixed magnitude) → ``parameterization`` (phase → image) →
``augment`` (crops and noise) → ``objectives`` (losses on activations) → ``engine`` (the compiled
loop) → ``visualization`` (``visualize``). ``config`` holds a run's settings (``RunConfig``),
``seeds`` every random stream of a run, ``dropin`` Xplique's ``maco`` and the ``fourier`` /
``pixel`` baselines. ``distribute`` runs the engine on a ``tf.distribute`` strategy. Nothing here
reads or writes files.
"""
