"""The lab's benchmark suite: ``python -m bench`` runs every section and writes BENCHMARKS.md.

Sections (modules of this package, each with ``section(quick: bool) -> str`` returning
markdown that starts with its "## " heading) are listed in ``bench.__main__.SECTIONS``.
Shared helpers live in ``bench.common``.
"""
