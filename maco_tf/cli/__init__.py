"""The ``maco-tf`` command line.

It parses arguments, calls the run machinery and turns errors into one line; it knows nothing of
gradients. Before anything else touches TensorFlow, :func:`maco_tf.cli.main.main` lists the
devices without TensorFlow's CUDA probe error on machines that have no NVIDIA driver
(:mod:`maco_tf.cli.cuda_probe`).
"""
