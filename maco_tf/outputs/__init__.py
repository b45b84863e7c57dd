"""Outputs: what is made of a visualization.

``render`` makes images and maps, ``metrics`` measures quality, ``combine`` joins visualizations
with attribution methods.
"""
