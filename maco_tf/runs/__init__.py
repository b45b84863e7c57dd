"""The run machinery shared by the commands (``visualize``, ``accentuate``, ``atlas``).

``request`` (what a command asks for: the one frozen request the command line builds),
``settings`` (defaults, the batch size, the recorded settings), ``plans`` (what to make: targets
and their objective), ``results`` (results files: open, resume, record), ``running`` (pending
targets in chunks, the one run loop), ``visualizing`` and ``accentuating`` (the commands of
those names), ``scoring`` (top-5 classes), ``trust`` (trust scores against ``--examples``
photos), ``startup`` (devices, model, workers).
Layered below :mod:`maco_tf.atlas` and :mod:`maco_tf.cli`; it parses no arguments.
"""
