"""The atlas: one image per class in a results folder, and a static website to browse them.

``run`` (the ``maco-tf atlas`` command), ``shards`` (one results file per shard), ``examples``
(example photos), ``craft`` (CRAFT concepts), ``site_data`` and ``site`` (the website; its HTML
templates live in ``site/``). Runs are resumable and shardable. The atlas never imports the
command line: :mod:`maco_tf.cli.atlas` declares its flags.
"""
