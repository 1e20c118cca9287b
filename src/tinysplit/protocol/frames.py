"""Frame layout of tinysplit's wire protocol (version 1) and the sizes the link models use.

Two modes share the transports:

* ``paper`` frames reproduce the paper's layout exactly: an 8 B timer id followed by raw int16
  tensor values (252 values = 504 B in a 512 B BLE write), no header, no checksum.
* ``reliable`` frames start with a 16 B header (below) that carries the sequence numbers,
  chunking and a CRC-16 of header and payload; the last chunk of a tensor appends a CRC-32 of the
  whole tensor. ACK frames carry a 4 B bitmap of the chunks received (selective repeat).

Header, little-endian, 16 bytes::

    u8  version        (1)
    u8  type           FrameType
    u8  stage          sending stage, 1-based
    u8  flags          bit 0 LAST chunk, bit 1 RETRANSMISSION
    u16 inference      inference sequence number (wraps)
    u16 chunk          chunk index within the tensor
    u16 chunks         chunk count of the tensor
    u16 length         payload bytes after the header
    i8  exponent       int16 tensor exponent (real = int * 2**exponent)
    u8  reserved       0
    u16 crc            CRC-16/CCITT-FALSE over the header (crc field zero) and the payload

The firmware issue adopts this layout in its C codec; ``docs/protocol.md`` will hold the full spec.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from tinysplit.errors import ConfigError

VERSION = 1
HEADER_BYTES = 16
PAPER_TIMER_ID_BYTES = 8
TENSOR_CRC_BYTES = 4
ACK_BITMAP_BYTES = 4
_HEADER = struct.Struct("<BBBBHHHHbBH")
FLAG_LAST = 0x01
FLAG_RETRANSMISSION = 0x02


class FrameType(IntEnum):
    """Frame types."""

    DATA = 1
    ACK = 2
    NACK = 3
    CTRL = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameHeader:
    """A decoded frame header (see the module docstring for the layout)."""

    type: FrameType
    stage: int
    inference: int
    chunk: int
    chunks: int
    length: int
    exponent: int = 0
    flags: int = 0

    def __post_init__(self) -> None:
        limits = {
            "stage": (self.stage, 0, 0xFF),
            "flags": (self.flags, 0, 0xFF),
            "inference": (self.inference, 0, 0xFFFF),
            "chunk": (self.chunk, 0, 0xFFFF),
            "chunks": (self.chunks, 0, 0xFFFF),
            "length": (self.length, 0, 0xFFFF),
            "exponent": (self.exponent, -128, 127),
        }
        for name, (value, low, high) in limits.items():
            if not low <= value <= high:
                raise ConfigError(f"frame field {name}={value} is outside {low}..{high}")

    def encode(self, payload: bytes = b"") -> bytes:
        """Header and payload with the CRC-16 filled in."""
        if len(payload) != self.length:
            raise ConfigError(f"payload has {len(payload)} B, header says {self.length}")
        fields = (VERSION, int(self.type), self.stage, self.flags, self.inference, self.chunk)
        head = _HEADER.pack(*fields, self.chunks, self.length, self.exponent, 0, 0)
        crc = crc16_ccitt(head + payload)
        return head[:-2] + struct.pack("<H", crc) + payload

    @classmethod
    def decode(cls, frame: bytes) -> tuple[FrameHeader, bytes]:
        """Split a frame into its header and payload, checking version, length and CRC.

        Raises:
            ConfigError: a short frame, another version, a length mismatch or a bad CRC.
        """
        if len(frame) < HEADER_BYTES:
            raise ConfigError(
                f"frame of {len(frame)} B is shorter than the {HEADER_BYTES} B header"
            )
        version, kind, stage, flags, inference, chunk, chunks, length, exponent, _, crc = (
            _HEADER.unpack_from(frame)
        )
        if version != VERSION:
            raise ConfigError(f"frame version {version} is not {VERSION}")
        payload = frame[HEADER_BYTES:]
        if len(payload) != length:
            raise ConfigError(f"frame payload has {len(payload)} B, header says {length}")
        if crc16_ccitt(frame[: HEADER_BYTES - 2] + b"\0\0" + payload) != crc:
            raise ConfigError("frame CRC mismatch")
        try:
            frame_type = FrameType(kind)
        except ValueError:
            raise ConfigError(f"unknown frame type {kind}") from None
        header = cls(
            type=frame_type,
            stage=stage,
            inference=inference,
            chunk=chunk,
            chunks=chunks,
            length=length,
            exponent=exponent,
            flags=flags,
        )
        return header, payload


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the per-frame check."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib), the per-tensor checksum."""
    return zlib.crc32(data) & 0xFFFFFFFF


def data_payload_bytes(frame_bytes: int, mode: str) -> int:
    """Tensor bytes one DATA frame of ``frame_bytes`` carries in ``mode`` (even: int16 values).

    Raises:
        ConfigError: an unknown mode or a frame too small to carry one value.
    """
    if mode == "paper":
        overhead = PAPER_TIMER_ID_BYTES
    elif mode == "reliable":
        overhead = HEADER_BYTES
    else:
        raise ConfigError(f"unknown protocol mode {mode!r} (paper or reliable)")
    payload = (frame_bytes - overhead) // 2 * 2
    if payload < 2:
        raise ConfigError(f"a {frame_bytes} B frame cannot carry data in {mode} mode")
    return payload


def frames_for_tensor(tensor_bytes: int, frame_bytes: int, mode: str) -> int:
    """DATA frames needed for one tensor (reliable mode adds the 4 B tensor CRC to the data)."""
    if tensor_bytes < 0:
        raise ConfigError(f"tensor size must be >= 0 bytes, got {tensor_bytes}")
    extra = TENSOR_CRC_BYTES if mode == "reliable" else 0
    per_frame = data_payload_bytes(frame_bytes, mode)
    return max(1, -(-(tensor_bytes + extra) // per_frame))
