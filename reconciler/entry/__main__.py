"""`python -m reconciler.entry` runs meshctl (every command, the agent's included)."""

from reconciler.entry import meshctl
from reconciler.hugepages import restart_with_huge_pages

restart_with_huge_pages()  # `... agent`: with huge pages (reconciler/hugepages.py)
meshctl()
