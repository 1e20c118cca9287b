"""Wire-format codec: header round trip, rejected frames, CRC check values, frame sizes.

Field rules, paper frames and payload helpers: ``test_frames_api.py``; agreement with the C codec:
``tests/firmware/test_codec_vectors.py``.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinysplit.errors import ConfigError, FrameError
from tinysplit.protocol.frames import (
    FLAG_LAST,
    FLAG_RETRANSMISSION,
    HEADER_BYTES,
    MAX_CHUNKS,
    PAPER_TIMER_ID_BYTES,
    TENSOR_CRC_BYTES,
    VERSION,
    CtrlOp,
    FrameHeader,
    FrameType,
    NackReason,
    ack_payload,
    crc16_ccitt,
    crc32,
    ctrl_payload,
    data_payload_bytes,
    frames_for_tensor,
    nack_payload,
)

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
I8 = st.integers(-128, 127)
CHECK = b"123456789"  # the standard CRC check input

#: Byte offsets of the header fields (module docstring of ``frames``).
VERSION_AT, TYPE_AT, LENGTH_AT, CRC_AT = 0, 1, 10, 14


def sample_frame(payload: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A valid DATA frame carrying ``payload``."""
    header = FrameHeader(
        type=FrameType.DATA,
        stage=2,
        inference=7,
        chunk=8,
        chunks=9,
        length=len(payload),
        exponent=-5,
        flags=FLAG_LAST,
    )
    return header.encode(payload)


def with_crc(head: bytes, payload: bytes) -> bytes:
    """``head`` (16 B, any CRC field) and ``payload`` with a correct CRC-16 filled in."""
    crc = crc16_ccitt(head[:CRC_AT] + b"\0\0" + payload)
    return head[:CRC_AT] + struct.pack("<H", crc) + payload


@st.composite
def headers_and_payloads(draw: st.DrawFn) -> tuple[FrameHeader, bytes]:
    """Any valid frame: every field over the full range its type allows, a matching payload."""
    kind = draw(st.sampled_from(FrameType))
    chunks = draw(U16)
    chunk, exponent, flags = 0, 0, 0
    if kind == FrameType.DATA:
        chunks = max(chunks, 1)
        chunk = draw(st.integers(0, chunks - 1))
        exponent = draw(I8)
        flags = (FLAG_LAST if chunk == chunks - 1 else 0) | draw(
            st.sampled_from([0, FLAG_RETRANSMISSION])
        )
        payload = draw(st.binary(min_size=1, max_size=1500))
    elif kind == FrameType.ACK:
        chunk = draw(st.integers(0, chunks))
        payload = ack_payload(draw(st.integers(0, 0xFFFFFFFF)))
    elif kind == FrameType.NACK:
        chunk, exponent = draw(U16), draw(I8)
        payload = nack_payload(draw(st.sampled_from(NackReason)))
    else:
        chunk, exponent = draw(U16), draw(I8)
        op = draw(st.sampled_from(CtrlOp))
        token = None if op == CtrlOp.ABORT else draw(st.integers(0, 0xFFFFFFFF))
        payload = ctrl_payload(op, token)
    header = FrameHeader(
        type=kind,
        stage=draw(U8),
        inference=draw(U16),
        chunk=chunk,
        chunks=chunks,
        length=len(payload),
        exponent=exponent,
        flags=flags,
    )
    return header, payload


@given(headers_and_payloads())
def test_encode_decode_round_trip(case: tuple[FrameHeader, bytes]) -> None:
    header, payload = case
    frame = header.encode(payload)
    assert len(frame) == HEADER_BYTES + len(payload)
    assert frame[VERSION_AT] == VERSION
    assert frame[HEADER_BYTES:] == payload
    assert FrameHeader.decode(frame) == (header, payload)


def test_header_layout_is_little_endian() -> None:
    frame = sample_frame()
    assert frame[:CRC_AT] == bytes(
        [VERSION, FrameType.DATA, 2, FLAG_LAST, 7, 0, 8, 0, 9, 0, 4, 0, 0xFB, 0]
    )
    assert struct.unpack_from("<H", frame, CRC_AT)[0] == crc16_ccitt(
        frame[:CRC_AT] + b"\0\0" + frame[HEADER_BYTES:]
    )


def test_encode_rejects_a_payload_of_another_length() -> None:
    header = FrameHeader(type=FrameType.ACK, stage=1, inference=0, chunk=0, chunks=1, length=4)
    with pytest.raises(ConfigError, match="header says 4"):
        header.encode(b"\0\0\0")


@pytest.mark.parametrize("size", [0, 1, HEADER_BYTES - 1])
def test_decode_rejects_a_short_frame(size: int) -> None:
    with pytest.raises(FrameError, match="shorter than") as info:
        FrameHeader.decode(sample_frame()[:size])
    assert info.value.code == "short"


@pytest.mark.parametrize("version", [0, VERSION + 1, 0xFF])
def test_decode_rejects_another_version(version: int) -> None:
    frame = bytearray(sample_frame())
    frame[VERSION_AT] = version
    with pytest.raises(FrameError, match="version") as info:
        FrameHeader.decode(with_crc(bytes(frame[:HEADER_BYTES]), bytes(frame[HEADER_BYTES:])))
    assert info.value.code == "version"


@pytest.mark.parametrize("delta", [-1, 1])
def test_decode_rejects_a_length_mismatch(delta: int) -> None:
    frame = sample_frame()
    payload = frame[HEADER_BYTES:-1] if delta < 0 else frame[HEADER_BYTES:] + b"\0"
    with pytest.raises(FrameError, match="header says") as info:
        FrameHeader.decode(with_crc(frame[:HEADER_BYTES], payload))
    assert info.value.code == "length"


def test_decode_rejects_a_truncated_frame() -> None:
    with pytest.raises(FrameError) as info:
        FrameHeader.decode(sample_frame()[:-1])
    assert info.value.code == "length"


@given(headers_and_payloads(), st.data())
def test_decode_rejects_any_flipped_bit(
    case: tuple[FrameHeader, bytes], data: st.DataObject
) -> None:
    frame = bytearray(case[0].encode(case[1]))
    bit = data.draw(st.integers(0, 8 * len(frame) - 1), label="bit")
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError) as info:
        FrameHeader.decode(bytes(frame))
    # The version and length bytes are checked before the CRC.
    assert info.value.code in {"version", "length", "crc"}


@pytest.mark.parametrize("offset", range(HEADER_BYTES + 4))
def test_decode_reports_a_flipped_bit_in_header_or_payload(offset: int) -> None:
    frame = bytearray(sample_frame())
    frame[offset] ^= 0x10
    with pytest.raises(FrameError) as info:
        FrameHeader.decode(bytes(frame))
    want = {VERSION_AT: "version", LENGTH_AT: "length", LENGTH_AT + 1: "length"}.get(offset, "crc")
    assert info.value.code == want


def test_decode_names_a_crc_mismatch() -> None:
    frame = bytearray(sample_frame())
    frame[-1] ^= 0x01
    with pytest.raises(FrameError, match="CRC") as info:
        FrameHeader.decode(bytes(frame))
    assert info.value.code == "crc"


@pytest.mark.parametrize("kind", [0, max(FrameType) + 1, 0xFF])
def test_decode_rejects_an_unknown_type(kind: int) -> None:
    frame = bytearray(sample_frame())
    frame[TYPE_AT] = kind
    with pytest.raises(FrameError, match=f"unknown frame type {kind}") as info:
        FrameHeader.decode(with_crc(bytes(frame[:HEADER_BYTES]), bytes(frame[HEADER_BYTES:])))
    assert info.value.code == "type"


def test_crc_check_values() -> None:
    assert crc16_ccitt(CHECK) == 0x29B1  # CRC-16/CCITT-FALSE
    assert crc32(CHECK) == 0xCBF43926  # CRC-32 (IEEE 802.3)
    assert crc16_ccitt(b"") == 0xFFFF
    assert crc32(b"") == 0


@given(st.binary(max_size=256))
def test_crcs_fit_their_fields(data: bytes) -> None:
    assert 0 <= crc16_ccitt(data) <= 0xFFFF
    assert 0 <= crc32(data) <= 0xFFFFFFFF


@pytest.mark.parametrize(
    ("frame_bytes", "mode", "payload"),
    [
        (512, "paper", 504),  # the paper's 252 int16 values per 512 B BLE write
        (512, "reliable", 496),
        (514, "reliable", 498),
        (513, "paper", 504),  # an odd remainder is dropped: whole int16 values only
        (250, "paper", 242),  # ESP-NOW v1
        (250, "reliable", 234),
        (1470, "paper", 1462),  # ESP-NOW v2
        (1470, "reliable", 1454),
        (PAPER_TIMER_ID_BYTES + 2, "paper", 2),  # the smallest frames that carry one value
        (HEADER_BYTES + 2, "reliable", 2),
    ],
)
def test_data_payload_bytes(frame_bytes: int, mode: str, payload: int) -> None:
    assert data_payload_bytes(frame_bytes, mode) == payload


@pytest.mark.parametrize(
    ("frame_bytes", "mode"),
    [
        (PAPER_TIMER_ID_BYTES + 1, "paper"),
        (0, "paper"),
        (HEADER_BYTES + 1, "reliable"),
        (HEADER_BYTES, "reliable"),
        (-4, "reliable"),
    ],
)
def test_data_payload_bytes_rejects_tiny_frames(frame_bytes: int, mode: str) -> None:
    with pytest.raises(ConfigError, match="cannot carry data"):
        data_payload_bytes(frame_bytes, mode)


@pytest.mark.parametrize("mode", ["", "Paper", "fast"])
def test_unknown_mode_is_rejected(mode: str) -> None:
    with pytest.raises(ConfigError, match="unknown protocol mode"):
        data_payload_bytes(512, mode)
    with pytest.raises(ConfigError, match="unknown protocol mode"):
        frames_for_tensor(1000, 512, mode)


@pytest.mark.parametrize(
    ("tensor_bytes", "frame_bytes", "mode", "frames"),
    [
        (401_408, 512, "paper", 797),  # 401,408 / 504 = 796.4
        (401_408, 512, "reliable", 810),  # (401,408 + 4) / 496 = 809.3
        (504, 512, "paper", 1),
        (505, 512, "paper", 2),
        (496, 512, "reliable", 2),  # the tensor CRC spills into a second frame
        (492, 512, "reliable", 1),  # ... or just fits
        (0, 512, "paper", 1),  # an empty tensor still takes one frame
        (0, 512, "reliable", 1),
        (1, 250, "paper", 1),
    ],
)
def test_frames_for_tensor(tensor_bytes: int, frame_bytes: int, mode: str, frames: int) -> None:
    assert frames_for_tensor(tensor_bytes, frame_bytes, mode) == frames


@given(
    st.integers(0, 2_000_000),
    st.integers(HEADER_BYTES + 2, 4096),
    st.sampled_from(["paper", "reliable"]),
)
def test_frames_for_tensor_is_the_fewest_that_hold_the_data(
    tensor_bytes: int, frame_bytes: int, mode: str
) -> None:
    data = tensor_bytes + (TENSOR_CRC_BYTES if mode == "reliable" else 0)
    per_frame = data_payload_bytes(frame_bytes, mode)
    if mode == "reliable" and data > MAX_CHUNKS * per_frame:
        with pytest.raises(ConfigError, match="more than the 65535 a header counts"):
            frames_for_tensor(tensor_bytes, frame_bytes, mode)
        return
    n = frames_for_tensor(tensor_bytes, frame_bytes, mode)
    assert n >= 1
    assert n * per_frame >= data
    assert n == 1 or (n - 1) * per_frame < data


@pytest.mark.parametrize(
    ("field", "value"),
    [("stage", 256), ("inference", 65536), ("chunk", -1), ("length", 70000), ("exponent", 128)],
)
def test_out_of_range_fields_are_config_errors(field: str, value: int) -> None:
    fields = {"type": FrameType.DATA, "stage": 1, "inference": 0, "chunk": 0, "chunks": 1,
              "length": 0} | {field: value}  # fmt: skip
    with pytest.raises(ConfigError, match=f"frame field {field}={value} is outside"):
        FrameHeader(**fields)  # type: ignore[arg-type]


def test_negative_tensor_size_is_refused() -> None:
    with pytest.raises(ConfigError, match="tensor size must be >= 0"):
        frames_for_tensor(-1, 512, "paper")
