"""The one binary codec of the wire formats: big-endian integers and length-prefixed
fields, every read bounds-checked. Pure: no I/O.

The width of every length prefix is in the method's name, because formats differ:
beacon bodies, revocation lists and relay frames use ``blob16``/``text16``; gossip uses
``text16`` for strings and ``blob32`` for opaque bytes::

    Writer().u8(1).text16("node-a").blob32(entry).getvalue()
    r = Reader(data); version, name, entry = r.u8(), r.text16(), r.blob32(); r.end()

A ``Reader`` raises nothing but ``DecodeError`` (a ``ValueError``) whose ``reason`` is
``truncated`` (the input ends inside a field) or ``garbage`` (anything else malformed:
invalid UTF-8, a wrong fixed size, a count above its limit, trailing bytes). Callers
may raise it with reasons of their own (``bad_version``, ``too_many``, ...); the beacon
and gossip drop counters are keyed on those reasons. A ``Writer`` raises ``ValueError``
for a field too long for its prefix (local misuse) and ``struct.error`` for an integer
out of range.
"""

from __future__ import annotations

import struct

TRUNCATED = "truncated"
GARBAGE = "garbage"

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
MAX16 = 0xFFFF
MAX32 = 0xFFFF_FFFF


class DecodeError(ValueError):
    """The bytes do not decode (the sender's fault); ``reason`` names why."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class Writer:
    """Appends fields; every method returns the writer, so calls chain."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def raw(self, value: bytes) -> Writer:
        """Bytes with no prefix (the reader must know their size: ``fixed``)."""
        self._parts.append(value)
        return self

    def blob16(self, value: bytes) -> Writer:
        """u16 length, then the bytes; ValueError above 65,535 bytes."""
        if len(value) > MAX16:
            raise _too_long(value)
        self._parts += (_U16.pack(len(value)), value)
        return self

    def blob32(self, value: bytes) -> Writer:
        """u32 length, then the bytes; ValueError above 4 GiB."""
        if len(value) > MAX32:
            raise _too_long(value)
        self._parts += (_U32.pack(len(value)), value)
        return self

    def text16(self, value: str) -> Writer:
        """u16 length, then the UTF-8 bytes; ValueError above 65,535 bytes."""
        raw = value.encode("utf-8")
        if len(raw) > MAX16:
            raise _too_long(raw)
        self._parts += (_U16.pack(len(raw)), raw)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _too_long(value: bytes) -> ValueError:
    return ValueError(f"field of {len(value)} bytes is too long for its length prefix")


class Reader:
    """Reads fields written by ``Writer``; every failure is a ``DecodeError``."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def _advance(self, size: int) -> int:
        """Where the next ``size`` bytes start; moves past them."""
        start = self._pos
        if start + size > len(self._data):
            raise DecodeError(TRUNCATED, f"truncated at byte {start} (need {size})")
        self._pos = start + size
        return start

    def _take(self, size: int) -> bytes:
        start = self._advance(size)
        return self._data[start : self._pos]

    def u8(self) -> int:
        return int(_U8.unpack_from(self._data, self._advance(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack_from(self._data, self._advance(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self._data, self._advance(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self._data, self._advance(8))[0])

    def fixed(self, size: int) -> bytes:
        """Exactly ``size`` bytes with no prefix."""
        return self._take(size)

    def blob16(self, size: int | None = None) -> bytes:
        """A u16-prefixed field; when ``size`` is given it must be exactly that long."""
        return _sized(self._take(self.u16()), size)

    def blob32(self) -> bytes:
        """A u32-prefixed field (bounded by the input: a long prefix is ``truncated``)."""
        return self._take(self.u32())

    def text16(self, *, empty: bool = True) -> str:
        """A u16-prefixed UTF-8 string; ``empty=False`` refuses the empty string."""
        raw = self._take(self.u16())
        if not raw and not empty:
            raise DecodeError(GARBAGE, "empty string where a name is required")
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(GARBAGE, "text field is not UTF-8") from exc

    def count8(self, limit: int, what: str = "items") -> int:
        """A u8 item count, refused above ``limit``."""
        return _bounded(self.u8(), limit, what)

    def count16(self, limit: int, what: str = "items") -> int:
        """A u16 item count, refused above ``limit``."""
        return _bounded(self.u16(), limit, what)

    def end(self) -> None:
        """The input must be used up: trailing bytes are ``garbage``."""
        if self._pos != len(self._data):
            raise DecodeError(GARBAGE, f"{len(self._data) - self._pos} trailing bytes")


def _sized(value: bytes, size: int | None) -> bytes:
    if size is not None and len(value) != size:
        raise DecodeError(GARBAGE, f"field must be {size} bytes, got {len(value)}")
    return value


def _bounded(value: int, limit: int, what: str) -> int:
    if value > limit:
        raise DecodeError(GARBAGE, f"{value} {what}, at most {limit}")
    return value
