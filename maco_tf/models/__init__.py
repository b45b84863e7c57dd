"""Models: the networks whose features are visualised.

``layers`` reaches layers inside nested Keras models, ``loading`` loads a model from a name or a
file, ``zoo`` holds the offline ImageNet networks.
"""
