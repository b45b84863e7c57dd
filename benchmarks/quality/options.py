"""Command-line helpers shared by the quality benchmarks."""

from __future__ import annotations

import argparse
from collections.abc import Iterable


def fill_defaults(args: argparse.Namespace, preset: dict) -> None:
    """Set every ``preset`` option that was not given on the command line (still None)."""
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def choice_list(
    parser: argparse.ArgumentParser, text: str, known: Iterable[str], flag: str
) -> list[str]:
    """``text`` split at commas, each a member of ``known`` (else ``parser.error``)."""
    known = list(known)
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return chosen
