"""The ``maco-tf`` command line.

It parses arguments, calls the run machinery and turns errors into one line; it knows nothing of
gradients. Importing it lists TensorFlow's devices, without TensorFlow's CUDA probe error on
machines that have no NVIDIA driver (:mod:`maco_tf.cli.cuda_probe`).
"""

from maco_tf.cli.cuda_probe import list_devices_quietly

list_devices_quietly()
