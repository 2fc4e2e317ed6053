"""A tiny deterministic binary codec: big-endian integers and u16-length-prefixed fields.

Shared by revocation lists and beacon messages. Decoding never raises anything but
``DecodeError`` (reason ``truncated`` or ``garbage``).
"""

from __future__ import annotations

import struct

MAX_FIELD = 0xFFFF


class DecodeError(ValueError):
    """The bytes do not decode; ``reason`` is ``truncated`` or ``garbage``."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class Writer:
    """Appends fields to a bytearray."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, value: int) -> Writer:
        self._buf += struct.pack("!B", value)
        return self

    def u16(self, value: int) -> Writer:
        self._buf += struct.pack("!H", value)
        return self

    def u64(self, value: int) -> Writer:
        self._buf += struct.pack("!Q", value)
        return self

    def blob(self, value: bytes) -> Writer:
        if len(value) > MAX_FIELD:
            raise ValueError(f"field of {len(value)} bytes is too long")
        self._buf += struct.pack("!H", len(value)) + value
        return self

    def text(self, value: str) -> Writer:
        return self.blob(value.encode())

    def raw(self, value: bytes) -> Writer:
        self._buf += value
        return self

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class Reader:
    """Reads fields written by ``Writer``; raises DecodeError on short or bad input."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise DecodeError("truncated", "input ends inside a field")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self) -> int:
        return int(self._take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack("!H", self._take(2))[0])

    def u64(self) -> int:
        return int(struct.unpack("!Q", self._take(8))[0])

    def blob(self) -> bytes:
        return self._take(self.u16())

    def fixed(self, n: int) -> bytes:
        """A u16-prefixed field that must be exactly ``n`` bytes (or empty if n == 0)."""
        value = self.blob()
        if len(value) != n:
            raise DecodeError("garbage", f"field must be {n} bytes, got {len(value)}")
        return value

    def text(self) -> str:
        try:
            return self.blob().decode()
        except UnicodeDecodeError as exc:
            raise DecodeError("garbage", "text field is not UTF-8") from exc

    def raw(self, n: int) -> bytes:
        return self._take(n)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError("garbage", "trailing bytes after the last field")
