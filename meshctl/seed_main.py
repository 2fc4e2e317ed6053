"""`python -m meshctl.seed_main` runs mesh (the quick-start verbs)."""

from meshctl.entry import mesh

mesh()
