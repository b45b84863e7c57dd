"""MkDocs hook: render the Sphinx roles of the docstrings (``:func:`x```) as plain code."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):(?=<code>)")


def on_page_content(html: str, **kwargs: object) -> str:
    """Drop the role prefix that precedes the rendered ``<code>`` element."""
    return _ROLE.sub("", html)
