"""`python -m meshctl` runs meshctl."""

from meshctl.main import app

app(prog_name="meshctl")
