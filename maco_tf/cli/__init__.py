"""The ``maco-tf`` command line.

It parses arguments, calls the run machinery and turns errors into one line; it knows nothing of
gradients.
"""
