"""The atlas: many targets in one results folder and a static site.

Runs are resumable and shardable; the site's templates live in ``site/``.
"""
