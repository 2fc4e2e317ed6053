"""Annotations of a Member that `mesh pool-join` writes and the join runtime reads: the
pool's services as the admin's pool-info printed them (a join fallback and first hints)."""

CONTROL_PLANE_ANNOTATION = "meshnet.dev/control-plane"
RELAYS_ANNOTATION = "meshnet.dev/relays"
WEIGHTING_ANNOTATION = "meshnet.dev/ring-weighting"
SHARD_COLUMNS_ANNOTATION = "meshnet.dev/shard-columns"
