"""`python -m reconciler.entry.mesh` runs mesh (the quick-start verbs)."""

from reconciler.entry import mesh

if __name__ == "__main__":
    mesh()
