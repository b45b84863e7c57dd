"""Shared parts of the quality benchmarks: class draw, method runners, judging, reports.

Used by ``benchmarks/bench_quality.py`` (methods side by side at equal wall time) and
``benchmarks/bench_dropin.py`` (the drop-in's deviations from Xplique, one at a time).
"""
