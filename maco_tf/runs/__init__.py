"""The run machinery shared by the front ends (``maco-tf visualize`` and ``maco-tf atlas``).

``settings`` (defaults, the recorded settings, the call to ``visualize``), ``plans`` (what to
make: targets and their objective), ``results`` (results files: open, resume, record), ``running``
(pending targets in chunks), ``scoring`` (top-5 classes), ``trust`` (trust scores against
``--examples`` photos), ``startup`` (devices, model, workers).
Layered below :mod:`maco_tf.atlas` and :mod:`maco_tf.cli`; it parses no arguments.
"""
