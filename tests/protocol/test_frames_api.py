"""Field rules, paper frames, ACK / NACK / CTRL payloads and tensor streams (Python codec)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinysplit.errors import ConfigError, FrameError, TinysplitError
from tinysplit.protocol import (
    ERROR_CODES,
    FLAG_LAST,
    FLAG_RETRANSMISSION,
    HEADER_BYTES,
    CtrlOp,
    FrameHeader,
    FrameType,
    NackReason,
    PaperFrame,
    ack_bitmap,
    ack_payload,
    crc32,
    ctrl_parse,
    ctrl_payload,
    data_payload_bytes,
    frames_for_tensor,
    nack_payload,
    nack_reason,
    pack_frame,
    split_tensor,
    tensor_from_stream,
    tensor_stream,
)


def header(kind: FrameType, payload: bytes, **fields: int) -> FrameHeader:
    values = {"stage": 1, "inference": 0, "chunk": 0, "chunks": 0, "exponent": 0, "flags": 0}
    values |= fields
    return FrameHeader(type=kind, length=len(payload), **values)


def decode_code(frame: bytes) -> str:
    with pytest.raises(FrameError) as info:
        FrameHeader.decode(frame)
    return info.value.code


def test_frame_error_is_a_tinysplit_error_with_a_code() -> None:
    error = FrameError("crc", "frame CRC mismatch")
    assert isinstance(error, TinysplitError)
    assert not isinstance(error, ConfigError)
    assert (error.code, str(error)) == ("crc", "frame CRC mismatch")
    assert ERROR_CODES == ("short", "version", "length", "crc", "type", "field")


INVALID = [
    ("data chunks 0", FrameType.DATA, b"\1", {"chunks": 0}),
    ("data chunk == chunks", FrameType.DATA, b"\1", {"chunk": 2, "chunks": 2, "flags": 1}),
    ("data LAST missing", FrameType.DATA, b"\1", {"chunk": 1, "chunks": 2}),
    ("data LAST early", FrameType.DATA, b"\1", {"chunk": 0, "chunks": 2, "flags": 1}),
    ("data unknown flag", FrameType.DATA, b"\1", {"chunks": 1, "flags": 0x05}),
    ("data empty", FrameType.DATA, b"", {"chunks": 1, "flags": 1}),
    ("ack short bitmap", FrameType.ACK, b"\0\0", {"chunks": 1}),
    ("ack base above chunks", FrameType.ACK, b"\0" * 4, {"chunk": 2, "chunks": 1}),
    ("ack flags", FrameType.ACK, b"\0" * 4, {"flags": 2}),
    ("ack exponent", FrameType.ACK, b"\0" * 4, {"exponent": -3}),
    ("nack unknown reason", FrameType.NACK, b"\x09", {}),
    ("nack two bytes", FrameType.NACK, b"\x01\x01", {}),
    ("nack flags", FrameType.NACK, b"\x01", {"flags": 1}),
    ("ctrl empty", FrameType.CTRL, b"", {}),
    ("ctrl unknown opcode", FrameType.CTRL, b"\x07", {}),
    ("ctrl ping without token", FrameType.CTRL, b"\x01", {}),
    ("ctrl abort with token", FrameType.CTRL, b"\x03\0\0\0\0", {}),
    ("ctrl flags", FrameType.CTRL, b"\x03", {"flags": 1}),
]


@pytest.mark.parametrize(("kind", "payload", "fields"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])  # fmt: skip
def test_field_rules_hold_on_both_sides(
    kind: FrameType, payload: bytes, fields: dict[str, int]
) -> None:
    h = header(kind, payload, **fields)
    with pytest.raises(ConfigError, match=f"cannot encode this {kind.name} frame"):
        h.encode(payload)
    assert decode_code(pack_frame(h, payload)) == "field"


def test_reserved_byte_must_be_zero() -> None:
    h = header(FrameType.DATA, b"\1\2", chunks=1, flags=FLAG_LAST)
    assert decode_code(pack_frame(h, b"\1\2", reserved=0x40)) == "field"


def test_checks_run_in_the_documented_order() -> None:
    h = header(FrameType.DATA, b"\1\2", chunks=1, flags=0)  # a field error ...
    frame = bytearray(pack_frame(h, b"\1\2", reserved=1))
    assert decode_code(bytes(frame)) == "field"
    frame[1] = 9  # ... under a type error (with the CRC now wrong) ...
    assert decode_code(bytes(frame)) == "crc"
    assert decode_code(bytes(frame) + b"\0") == "length"
    frame[0] = 7
    assert decode_code(bytes(frame) + b"\0") == "version"
    assert decode_code(bytes(frame[:15])) == "short"


def test_a_retransmitted_last_chunk_is_valid() -> None:
    h = header(FrameType.DATA, b"\1\2", chunk=4, chunks=5, flags=FLAG_LAST | FLAG_RETRANSMISSION)
    assert FrameHeader.decode(h.encode(b"\1\2")) == (h, b"\1\2")


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=600))
def test_paper_frame_round_trip(inference: int, index: int, payload: bytes) -> None:
    frame = PaperFrame(inference=inference, index=index, payload=payload)
    encoded = frame.encode()
    assert encoded[:8] == struct.pack("<II", inference, index)
    assert PaperFrame.decode(encoded) == frame


def test_paper_ble_write_is_timer_id_and_252_int16() -> None:
    values = struct.pack("<252h", *range(-126, 126))
    frame = PaperFrame(inference=1, index=0, payload=values).encode()
    assert len(frame) == 512
    assert data_payload_bytes(512, "paper") == len(values)


@pytest.mark.parametrize("size", range(8))
def test_paper_decode_rejects_a_short_frame(size: int) -> None:
    with pytest.raises(FrameError, match="timer id") as info:
        PaperFrame.decode(bytes(size))
    assert info.value.code == "short"


@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_paper_ids_are_u32(value: int) -> None:
    with pytest.raises(ConfigError, match=r"outside 0\.\.4294967295"):
        PaperFrame(inference=value, index=0)


@given(st.integers(0, 0xFFFFFFFF))
def test_ack_payload_round_trip(bitmap: int) -> None:
    payload = ack_payload(bitmap)
    assert payload == struct.pack("<I", bitmap)
    assert ack_bitmap(payload) == bitmap


def test_payload_helpers_reject_bad_values() -> None:
    with pytest.raises(ConfigError):
        ack_payload(1 << 32)
    with pytest.raises(ConfigError):
        ack_bitmap(b"\0")
    with pytest.raises(ConfigError):
        nack_reason(b"\x00")
    with pytest.raises(ConfigError):
        ctrl_payload(CtrlOp.PING)
    with pytest.raises(ConfigError):
        ctrl_payload(CtrlOp.ABORT, 1)
    with pytest.raises(ConfigError):
        ctrl_parse(b"\x01\0")
    with pytest.raises(ConfigError):
        ctrl_parse(b"")


@pytest.mark.parametrize("reason", list(NackReason))
def test_nack_payload_round_trip(reason: NackReason) -> None:
    assert nack_reason(nack_payload(reason)) is reason


@pytest.mark.parametrize(("op", "token"), [(CtrlOp.PING, 7), (CtrlOp.PONG, 0xFFFFFFFF),
                                           (CtrlOp.ABORT, None)])  # fmt: skip
def test_ctrl_payload_round_trip(op: CtrlOp, token: int | None) -> None:
    payload = ctrl_payload(op, token)
    assert ctrl_parse(payload) == (op, token)
    h = header(FrameType.CTRL, payload)
    assert FrameHeader.decode(h.encode(payload))[1] == payload


@given(st.binary(max_size=3000), st.sampled_from([48, 250, 514, 1470]))
def test_split_tensor_reassembles_and_counts_like_frames_for_tensor(
    tensor: bytes, frame_bytes: int
) -> None:
    chunks = split_tensor(tensor, frame_bytes, "reliable")
    per = data_payload_bytes(frame_bytes, "reliable")
    assert len(chunks) == frames_for_tensor(len(tensor), frame_bytes, "reliable")
    assert all(len(c) == per for c in chunks[:-1])
    assert 1 <= len(chunks[-1]) <= per
    assert all(HEADER_BYTES + len(c) <= frame_bytes for c in chunks)
    stream = b"".join(chunks)
    assert stream == tensor_stream(tensor)
    assert tensor_from_stream(stream) == tensor
    assert struct.unpack("<I", stream[-4:])[0] == crc32(tensor)


def test_split_tensor_paper_mode_is_the_raw_tensor() -> None:
    tensor = bytes(range(256)) * 4
    chunks = split_tensor(tensor, 512, "paper")
    assert [len(c) for c in chunks] == [504, 504, 16]
    assert b"".join(chunks) == tensor
    assert split_tensor(b"", 512, "paper") == [b""]


def test_tensor_from_stream_detects_corruption() -> None:
    stream = bytearray(tensor_stream(b"\1\2\3\4"))
    stream[1] ^= 0x01
    with pytest.raises(FrameError, match="tensor CRC-32") as info:
        tensor_from_stream(bytes(stream))
    assert info.value.code == "crc"
    with pytest.raises(FrameError) as info:
        tensor_from_stream(b"\0\0\0")
    assert info.value.code == "short"


def test_reliable_payload_is_capped_by_the_length_field() -> None:
    assert data_payload_bytes(200_000, "reliable") == 0xFFFE
    assert data_payload_bytes(200_000, "paper") == 199_992
