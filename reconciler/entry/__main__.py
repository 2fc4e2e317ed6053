"""`python -m reconciler.entry` runs meshctl (every command, the agent's included)."""

from reconciler.entry import meshctl

meshctl()
