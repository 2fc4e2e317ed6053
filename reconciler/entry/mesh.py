"""`python -m reconciler.entry.mesh` runs mesh (the quick-start verbs)."""

from reconciler.entry import mesh
from reconciler.hugepages import restart_with_huge_pages

if __name__ == "__main__":
    restart_with_huge_pages()  # `... start|demo|inference|chat`: with huge pages
    mesh()
