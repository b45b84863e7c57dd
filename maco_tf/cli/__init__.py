"""The ``maco-tf`` command line.

It parses arguments into one :class:`~maco_tf.runs.request.Request` per command
(:func:`maco_tf.cli.flags.to_request`), hands it to the run machinery in one call (each command
module: ``visualize``, ``layers``, ``atlas``, ``accentuate``) and turns errors into one line; it
knows nothing of gradients. Before anything else touches TensorFlow,
:func:`maco_tf.cli.main.main` lists the devices without TensorFlow's CUDA probe error on
machines that have no NVIDIA driver (:mod:`maco_tf.cli.cuda_probe`).
"""
