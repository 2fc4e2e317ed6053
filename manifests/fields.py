"""Small field types shared by the kinds: network addresses, fingerprints and sizes."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ByteSize, TypeAdapter, ValidationError

_FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_KUBERNETES_BINARY_RE = re.compile(r"^\s*([0-9.]+)\s*([KMGTPE]i)\s*$")  # 8Gi, 512Mi


def split_host_port(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` into its parts; raises ValueError with the reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif not _HOST_RE.match(host):
        raise ValueError(f"{host!r} is not a valid host name or address")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} must be a number from 1 to 65535")
    return host, int(port_text)


def _check_host_port(value: str) -> str:
    split_host_port(value)
    return value


def _check_fingerprint(value: str) -> str:
    if not _FINGERPRINT_RE.match(value):
        raise ValueError("must look like sha256:<64 lowercase hex digits>")
    return value


def _check_multicast(value: str) -> str:
    address = ipaddress.ip_address(value)
    if not address.is_multicast:
        raise ValueError(f"{value} is not a multicast address")
    return value


def _kubernetes_units(value: object) -> object:
    """Kubernetes' binary suffixes (``8Gi``, ``512Mi``) as ``ByteSize`` spells them."""
    if isinstance(value, str) and (match := _KUBERNETES_BINARY_RE.match(value)):
        return f"{match[1]}{match[2]}B"
    return value


def positive_size(text: str) -> int | None:
    """Bytes in a size as ``spec.capacity.memoryBytes`` takes it (``8GiB`` or ``8Gi``,
    ``512MiB``, ``1.5GB`` or a number of bytes: pydantic's ``ByteSize``); None if it is
    not a positive size."""
    try:
        size = int(TypeAdapter(MemorySize).validate_python(text.strip()))
    except ValidationError:
        return None
    return size if size > 0 else None


HostPort = Annotated[str, AfterValidator(_check_host_port)]
Fingerprint = Annotated[str, AfterValidator(_check_fingerprint)]
MulticastAddress = Annotated[str, AfterValidator(_check_multicast)]
MemorySize = Annotated[ByteSize, BeforeValidator(_kubernetes_units)]
