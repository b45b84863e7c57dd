"""MACO feature visualization for Keras models."""
