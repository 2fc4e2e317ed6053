"""Where the console scripts start: huge pages first (``hugepages``), before anything
heavy is imported, then the composition root (``reconciler.entry``)."""

from __future__ import annotations

from reconciler.hugepages import restart_with_huge_pages


def mesh() -> None:
    """The ``mesh`` console script."""
    restart_with_huge_pages()
    from reconciler.entry import mesh as run

    run()


def meshctl() -> None:
    """The ``meshctl`` console script."""
    restart_with_huge_pages()
    from reconciler.entry import meshctl as run

    run()
