"""What a device knows of a pool it belongs to (read and written by ``pools.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "member"]


@dataclass(frozen=True)
class PoolInfo:
    """What a device knows of a pool it belongs to."""

    name: str
    pool_id: str
    root_fingerprint: str
    role: Role
