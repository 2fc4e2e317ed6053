"""Bounds-checked primitives of the gossip binary format (big-endian, length-prefixed).

``Writer`` appends fixed-size integers, byte strings and UTF-8 strings; ``Reader``
reads them back and raises ``GossipDecodeError`` on any truncation, overlong length or
invalid UTF-8. Nothing else is ever raised by a ``Reader``.
"""

from __future__ import annotations

import struct


class GossipDecodeError(ValueError):
    """The peer sent bytes that are not a valid gossip message (remote fault)."""


_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Writer:
    """Accumulates an encoded message."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> None:
        self._parts.append(_U8.pack(value))

    def u16(self, value: int) -> None:
        self._parts.append(_U16.pack(value))

    def u32(self, value: int) -> None:
        self._parts.append(_U32.pack(value))

    def u64(self, value: int) -> None:
        self._parts.append(_U64.pack(value))

    def blob(self, value: bytes) -> None:
        """Length-prefixed (u32) bytes."""
        self.u32(len(value))
        self._parts.append(value)

    def text(self, value: str) -> None:
        """Length-prefixed (u16) UTF-8 string."""
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise ValueError("string too long for the gossip format")
        self.u16(len(raw))
        self._parts.append(raw)

    def raw(self, value: bytes) -> None:
        self._parts.append(value)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads primitives from a buffer; every failure is a ``GossipDecodeError``."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def _take(self, size: int) -> memoryview:
        end = self._pos + size
        if end > len(self._data):
            raise GossipDecodeError(f"truncated at byte {self._pos} (need {size})")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def raw(self, size: int) -> memoryview:
        """Exactly ``size`` raw bytes."""
        return self._take(size)

    def u8(self) -> int:
        return int(_U8.unpack(self._take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def blob(self) -> bytes:
        return bytes(self._take(self.u32()))

    def text(self) -> str:
        raw = self._take(self.u16())
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise GossipDecodeError("invalid UTF-8 in string") from exc

    def node_id(self) -> str:
        value = self.text()
        if not value:
            raise GossipDecodeError("empty node id")
        return value

    def count(self, limit: int) -> int:
        """A u16 item count, refused when above ``limit``."""
        value = self.u16()
        if value > limit:
            raise GossipDecodeError(f"count {value} above limit {limit}")
        return value

    def end(self) -> None:
        if self._pos != len(self._data):
            raise GossipDecodeError(f"{len(self._data) - self._pos} trailing bytes")
