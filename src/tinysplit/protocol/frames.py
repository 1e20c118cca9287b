"""Frame codec of tinysplit's wire protocol (version 1) and the sizes the link models use.

The full specification is ``docs/protocol.md``; the firmware's C codec
(``firmware/components/tinysplit_core/src/ts_frame.c``) implements the same rules in the same
order, and ``firmware/host_test/vectors/frames.json`` (built by :mod:`tinysplit.protocol.vectors`)
holds the test vectors both must agree on.

Two modes share the transports:

* ``paper`` frames reproduce the paper's layout exactly: an 8 B timer id (u32 inference, u32 frame
  index, little-endian) followed by raw int16 tensor values (252 values = 504 B in a 512 B BLE
  write), no header, no checksum (:class:`PaperFrame`).
* ``reliable`` frames start with a 16 B header (below) that carries the sequence numbers,
  chunking and a CRC-16 of header and payload (:class:`FrameHeader`). A tensor travels as the
  byte stream ``tensor || CRC-32(tensor)`` cut into DATA chunks; ACK frames carry a 4 B bitmap of
  the chunks received (selective repeat), NACK frames a :class:`NackReason`, CTRL frames a
  :class:`CtrlOp` and its arguments.

Header, little-endian, 16 bytes::

    u8  version        (1)
    u8  type           FrameType
    u8  stage          sending stage, 1-based
    u8  flags          DATA: bit 0 LAST chunk, bit 1 RETRANSMISSION; other types: 0
    u16 inference      inference sequence number (wraps)
    u16 chunk          DATA: chunk index within the tensor; ACK: cumulative base
    u16 chunks         chunk count of the tensor
    u16 length         payload bytes after the header
    i8  exponent       DATA: int16 tensor exponent (real = int * 2**exponent); ACK: 0
    u8  reserved       0
    u16 crc            CRC-16/CCITT-FALSE over the header (crc field zero) and the payload

Decoding checks, in this order: short, version, length, CRC, type, fields; the first failure
raises :class:`~tinysplit.errors.FrameError` whose ``code`` is the C codec's ``ts_err_name()``.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from tinysplit.errors import ConfigError, FrameError

VERSION = 1
HEADER_BYTES = 16
PAPER_TIMER_ID_BYTES = 8
TENSOR_CRC_BYTES = 4
ACK_BITMAP_BYTES = 4
#: Largest reliable-mode window: up to 2 x window frames are unacknowledged, and an ACK's bitmap
#: covers 32 of them (TS_MAX_WINDOW in the firmware).
MAX_RELIABLE_WINDOW = ACK_BITMAP_BYTES * 8 // 2
#: On a byte stream (TCP) a paper frame is preceded by its length (u16 LE): paper frames carry no
#: header, and the transport does not know the tensor size (docs/protocol.md, "Streams").
STREAM_PAPER_PREFIX_BYTES = 2
NACK_BYTES = 1
#: PING / PONG payload: the opcode and a u32 token.
CTRL_TOKEN_BYTES = 5
#: Largest frame of any transport (ESP-NOW v2).
MAX_FRAME_BYTES = 1470
#: Largest payload the 16-bit length field describes, and the largest chunk count.
MAX_PAYLOAD_BYTES = 0xFFFF
MAX_CHUNKS = 0xFFFF
FLAG_LAST = 0x01
FLAG_RETRANSMISSION = 0x02
DATA_FLAGS = FLAG_LAST | FLAG_RETRANSMISSION
#: ``FrameError.code`` values, as the C codec's ``ts_err_name()`` names them.
ERROR_CODES = ("short", "version", "length", "crc", "type", "field")

_HEADER = struct.Struct("<BBBBHHHHbBH")
_CRC_AT = 14
_PAPER_ID = struct.Struct("<II")
_U32 = struct.Struct("<I")


class FrameType(IntEnum):
    """Frame types (header byte 1)."""

    DATA = 1
    ACK = 2
    NACK = 3
    CTRL = 4


class NackReason(IntEnum):
    """The NACK payload byte."""

    #: All chunks arrived but the tensor CRC-32 failed: the sender resends the whole tensor.
    TENSOR_CRC = 1
    #: The receive buffer holds another inference: the sender retries later.
    BUSY = 2
    #: The tensor does not fit the receive buffer: the sender gives up.
    TOO_LARGE = 3


class CtrlOp(IntEnum):
    """CTRL opcodes (first payload byte)."""

    #: + u32 token: the peer answers PONG with the same token (round-trip time).
    PING = 1
    #: + u32 token.
    PONG = 2
    #: No arguments: the receiver drops the partial tensor of the header's inference.
    ABORT = 3


_NACK_REASONS = frozenset(int(r) for r in NackReason)
_CTRL_OPS = frozenset(int(op) for op in CtrlOp)


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameHeader:
    """A reliable-mode frame header (see the module docstring for the layout).

    Construction checks only that each field fits its width (:class:`ConfigError`); the rules
    that tie fields to the frame type are checked by :meth:`encode` and :meth:`decode`.
    """

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
            "length": (self.length, 0, MAX_PAYLOAD_BYTES),
            "exponent": (self.exponent, -128, 127),
        }
        for name, (value, low, high) in limits.items():
            if not low <= value <= high:
                raise ConfigError(f"frame field {name}={value} is outside {low}..{high}")

    def encode(self, payload: bytes = b"") -> bytes:
        """Header and payload with the CRC-16 filled in.

        Raises:
            ConfigError: ``payload`` is not ``length`` bytes long, or the fields break the rules
                of the frame type (a peer would reject the frame with code ``field``).
        """
        if len(payload) != self.length:
            raise ConfigError(f"payload has {len(payload)} B, header says {self.length}")
        problem = field_problem(self, payload)
        if problem is not None:
            raise ConfigError(f"cannot encode this {self.type.name} frame: {problem}")
        return pack_frame(self, payload)

    @classmethod
    def decode(cls, frame: bytes) -> tuple[FrameHeader, bytes]:
        """Split a frame into its header and payload, checking it as ``docs/protocol.md`` says.

        Raises:
            FrameError: the first failed check, in the order short, version, length, CRC, type,
                fields (``code`` names it).
        """
        if len(frame) < HEADER_BYTES:
            raise FrameError(
                "short", f"frame of {len(frame)} B is shorter than the {HEADER_BYTES} B header"
            )
        version, kind, stage, flags, inference, chunk, chunks, length, exponent, reserved, crc = (
            _HEADER.unpack_from(frame)
        )
        if version != VERSION:
            raise FrameError("version", f"frame version {version} is not {VERSION}")
        payload = bytes(frame[HEADER_BYTES:])
        if len(payload) != length:
            raise FrameError("length", f"frame payload has {len(payload)} B, header says {length}")
        if _frame_crc(bytes(frame[:_CRC_AT]), payload) != crc:
            raise FrameError("crc", "frame CRC mismatch")
        try:
            frame_type = FrameType(kind)
        except ValueError:
            raise FrameError("type", f"unknown frame type {kind}") from None
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
        problem = "reserved byte is not 0" if reserved else field_problem(header, payload)
        if problem is not None:
            raise FrameError("field", f"bad {frame_type.name} frame: {problem}")
        return header, payload


def field_problem(header: FrameHeader, payload: bytes) -> str | None:
    """Why ``header`` + ``payload`` break the field rules of their type, or None if they don't.

    The rules (``docs/protocol.md``, "Frame types"); ``payload`` must be ``header.length`` bytes.
    """
    flags, length = header.flags, header.length
    match header.type:
        case FrameType.DATA:
            if header.chunks < 1:
                return "chunks is 0"
            if header.chunk >= header.chunks:
                return f"chunk {header.chunk} is not below chunks {header.chunks}"
            if flags & ~DATA_FLAGS:
                return f"unknown flag bits 0x{flags & ~DATA_FLAGS:02x}"
            if bool(flags & FLAG_LAST) != (header.chunk == header.chunks - 1):
                return "the LAST flag must be set on the last chunk and only there"
            if length < 1:
                return "no payload"
        case FrameType.ACK:
            if length != ACK_BITMAP_BYTES:
                return f"payload of {length} B is not the {ACK_BITMAP_BYTES} B bitmap"
            if header.chunk > header.chunks:
                return f"base {header.chunk} is above chunks {header.chunks}"
            if flags:
                return "flags are not 0"
            if header.exponent:
                return "exponent is not 0"
        case FrameType.NACK:
            if length != NACK_BYTES:
                return f"payload of {length} B is not the {NACK_BYTES} B reason"
            if flags:
                return "flags are not 0"
            if payload[0] not in _NACK_REASONS:
                return f"unknown reason {payload[0]}"
        case FrameType.CTRL:
            if length < 1:
                return "no opcode"
            if flags:
                return "flags are not 0"
            op = payload[0]
            if op not in _CTRL_OPS:
                return f"unknown opcode {op}"
            want = 1 if op == CtrlOp.ABORT else CTRL_TOKEN_BYTES
            if length != want:
                return f"{CtrlOp(op).name} payload of {length} B is not {want} B"
    return None


def pack_frame(
    header: FrameHeader, payload: bytes, *, version: int = VERSION, reserved: int = 0
) -> bytes:
    """Header and payload with a correct CRC-16 and no field checks.

    For building frames a broken peer could send (test vectors, fuzzing); use
    :meth:`FrameHeader.encode` to send.
    """
    fields = (version, int(header.type), header.stage, header.flags, header.inference)
    head = _HEADER.pack(
        *fields, header.chunk, header.chunks, header.length, header.exponent, reserved, 0
    )
    crc = _frame_crc(head[:_CRC_AT], payload)
    return head[:_CRC_AT] + struct.pack("<H", crc) + payload


def _frame_crc(head: bytes, payload: bytes) -> int:
    """CRC-16 over header bytes 0..13, the CRC field as two zero bytes, and the payload."""
    return binascii.crc_hqx(payload, binascii.crc_hqx(head + b"\0\0", 0xFFFF))


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperFrame:
    """A paper-mode frame: 8 B timer id (u32 LE inference, u32 LE frame index) + raw payload.

    No header, no checksum: a receiver cannot tell a corrupted or missing frame, which is the
    failure the paper's protocol shows. An empty payload is a response (an acknowledgment).
    """

    inference: int
    index: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        for name, value in (("inference", self.inference), ("index", self.index)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ConfigError(f"paper frame {name}={value} is outside 0..4294967295")

    def encode(self) -> bytes:
        """The timer id followed by the payload."""
        return _PAPER_ID.pack(self.inference, self.index) + self.payload

    @classmethod
    def decode(cls, frame: bytes) -> PaperFrame:
        """Split a paper frame into timer id and payload.

        Raises:
            FrameError: code ``short``, the frame is shorter than the timer id.
        """
        if len(frame) < PAPER_TIMER_ID_BYTES:
            raise FrameError(
                "short",
                f"paper frame of {len(frame)} B is shorter than the {PAPER_TIMER_ID_BYTES} B "
                "timer id",
            )
        inference, index = _PAPER_ID.unpack_from(frame)
        return cls(inference=inference, index=index, payload=bytes(frame[PAPER_TIMER_ID_BYTES:]))


def ack_payload(bitmap: int) -> bytes:
    """The ACK payload: bit i set = chunk ``base + i`` received (base is the header's chunk)."""
    if not 0 <= bitmap <= 0xFFFFFFFF:
        raise ConfigError(f"ACK bitmap {bitmap} does not fit 32 bits")
    return _U32.pack(bitmap)


def ack_bitmap(payload: bytes) -> int:
    """The bitmap of an ACK payload (inverse of :func:`ack_payload`)."""
    if len(payload) != ACK_BITMAP_BYTES:
        raise ConfigError(f"ACK payload of {len(payload)} B is not {ACK_BITMAP_BYTES} B")
    value: int = _U32.unpack(payload)[0]
    return value


def nack_payload(reason: NackReason) -> bytes:
    """The NACK payload: one reason byte."""
    return bytes([NackReason(reason)])


def nack_reason(payload: bytes) -> NackReason:
    """The reason of a (decoded, hence valid) NACK payload."""
    if len(payload) != NACK_BYTES:
        raise ConfigError(f"NACK payload of {len(payload)} B is not {NACK_BYTES} B")
    try:
        return NackReason(payload[0])
    except ValueError:
        raise ConfigError(f"unknown NACK reason {payload[0]}") from None


def ctrl_payload(op: CtrlOp, token: int | None = None) -> bytes:
    """A CTRL payload: PING and PONG take a u32 ``token``, ABORT none.

    Raises:
        ConfigError: a token missing, extra or out of range.
    """
    op = CtrlOp(op)
    if op == CtrlOp.ABORT:
        if token is not None:
            raise ConfigError("CTRL ABORT takes no token")
        return bytes([op])
    if token is None or not 0 <= token <= 0xFFFFFFFF:
        raise ConfigError(f"CTRL {op.name} needs a u32 token, got {token}")
    return bytes([op]) + _U32.pack(token)


def ctrl_parse(payload: bytes) -> tuple[CtrlOp, int | None]:
    """Opcode and token (None for ABORT) of a (decoded, hence valid) CTRL payload."""
    if not payload or payload[0] not in _CTRL_OPS:
        raise ConfigError(f"not a CTRL payload: {payload.hex()}")
    op = CtrlOp(payload[0])
    want = 1 if op == CtrlOp.ABORT else CTRL_TOKEN_BYTES
    if len(payload) != want:
        raise ConfigError(f"CTRL {op.name} payload of {len(payload)} B is not {want} B")
    return op, (None if op == CtrlOp.ABORT else int(_U32.unpack_from(payload, 1)[0]))


def tensor_stream(tensor: bytes) -> bytes:
    """The byte stream of a reliable-mode tensor: ``tensor || CRC-32(tensor)`` (u32 LE)."""
    return bytes(tensor) + _U32.pack(crc32(tensor))


def tensor_from_stream(stream: bytes) -> bytes:
    """The tensor of a received stream, checking its CRC-32 (inverse of :func:`tensor_stream`).

    Raises:
        FrameError: code ``crc`` when the CRC-32 does not match, ``short`` below 4 bytes.
    """
    if len(stream) < TENSOR_CRC_BYTES:
        raise FrameError("short", f"tensor stream of {len(stream)} B has no CRC-32")
    tensor, crc = stream[:-TENSOR_CRC_BYTES], _U32.unpack(stream[-TENSOR_CRC_BYTES:])[0]
    if crc32(tensor) != crc:
        raise FrameError("crc", "tensor CRC-32 mismatch")
    return bytes(tensor)


def split_tensor(tensor: bytes, frame_bytes: int, mode: str) -> list[bytes]:
    """The DATA payloads of one tensor: every chunk :func:`data_payload_bytes` long but the last.

    Reliable mode splits :func:`tensor_stream` (the CRC-32 travels in the last chunks); paper mode
    splits the raw tensor. An empty paper tensor is one empty chunk.
    """
    n = frames_for_tensor(len(tensor), frame_bytes, mode)
    data = tensor_stream(tensor) if mode == "reliable" else bytes(tensor)
    per = data_payload_bytes(frame_bytes, mode)
    return [data[i * per : (i + 1) * per] for i in range(n)]


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection), the per-frame check.

    ``binascii.crc_hqx`` is this CRC with a caller-chosen initial value, computed in C: the
    simulator and the tests check thousands of frames.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib), the per-tensor checksum."""
    return zlib.crc32(data) & 0xFFFFFFFF


def data_payload_bytes(frame_bytes: int, mode: str) -> int:
    """Tensor bytes one DATA frame of ``frame_bytes`` carries in ``mode`` (even: int16 values).

    Reliable frames carry at most 65534 B (the largest even length the 16-bit field holds),
    however large ``frame_bytes`` is.

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
    return min(payload, MAX_PAYLOAD_BYTES & ~1) if mode == "reliable" else payload


def frames_for_tensor(tensor_bytes: int, frame_bytes: int, mode: str) -> int:
    """DATA frames needed for one tensor (reliable mode adds the 4 B tensor CRC to the data).

    Raises:
        ConfigError: a negative size, an unknown mode, a frame too small, or (reliable mode) more
            chunks than the 16-bit chunk count holds.
    """
    if tensor_bytes < 0:
        raise ConfigError(f"tensor size must be >= 0 bytes, got {tensor_bytes}")
    extra = TENSOR_CRC_BYTES if mode == "reliable" else 0
    per_frame = data_payload_bytes(frame_bytes, mode)
    n = max(1, -(-(tensor_bytes + extra) // per_frame))
    if mode == "reliable" and n > MAX_CHUNKS:
        raise ConfigError(
            f"a {tensor_bytes} B tensor needs {n} frames of {frame_bytes} B, more than the "
            f"{MAX_CHUNKS} a header counts"
        )
    return n
