"""`python -m meshctl` runs meshctl."""

from meshctl.entry import meshctl

meshctl()
