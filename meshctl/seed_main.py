"""`python -m meshctl.seed_main` runs mesh (the quick-start verbs)."""

from meshctl.seed import app

app(prog_name="mesh")
