"""Python and C codecs against the committed test vectors, and against each other (hypothesis).

The vectors file is ``firmware/host_test/vectors/frames.json``; it must equal
:func:`tinysplit.protocol.vectors.build_vectors` so it cannot drift from the generator.
"""

from __future__ import annotations

import ctypes
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.ccodec import (
    c_decode,
    c_encode,
    c_paper_decode,
    c_paper_encode,
    c_requantize,
    py_decode,
)
from tinysplit.errors import ConfigError, FrameError
from tinysplit.model.quantize import requantize_exponent
from tinysplit.protocol import (
    FrameHeader,
    FrameType,
    PaperFrame,
    crc16_ccitt,
    crc32,
    data_payload_bytes,
    frames_for_tensor,
    tensor_from_stream,
)
from tinysplit.protocol.vectors import build_vectors, dumps

VECTORS_PATH = Path(__file__).resolve().parents[2] / "firmware/host_test/vectors/frames.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VALID_FRAMES = [bytes.fromhex(c["frame"]) for c in VECTORS["frames"]]


def by_name(cases: list[dict[str, Any]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", cases, ids=[c.get("name", "") for c in cases])


def test_committed_vectors_equal_the_generator() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == dumps(build_vectors()), (
        "frames.json is stale: python -m tinysplit.protocol.vectors " + str(VECTORS_PATH)
    )
    assert VECTORS_PATH.stat().st_size < 100_000


def test_vectors_cover_every_type_error_and_transport_size() -> None:
    kinds = {c["header"]["type"] for c in VECTORS["frames"]}
    assert kinds == {t.name for t in FrameType}
    assert {c["error"] for c in VECTORS["invalid"]} == {
        "short", "version", "length", "crc", "type", "field"
    }  # fmt: skip
    sizes = {len(f) for f in VALID_FRAMES}
    assert {512, 514, 250, 1470, 1440} <= sizes
    paper = [bytes.fromhex(c["frame"]) for c in VECTORS["paper"]]
    assert 512 in {len(f) for f in paper}  # 8 B timer id + 252 int16


@by_name(VECTORS["frames"])
def test_valid_frame_python(case: dict[str, Any]) -> None:
    fields, payload, frame = case["header"], bytes.fromhex(case["payload"]), case["frame"]
    header = FrameHeader(**{**fields, "type": FrameType[fields["type"]]})
    assert header.encode(payload).hex() == frame
    assert FrameHeader.decode(bytes.fromhex(frame)) == (header, payload)


@by_name(VECTORS["frames"])
def test_valid_frame_c(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    fields, payload, frame = case["header"], bytes.fromhex(case["payload"]), case["frame"]
    encoded = c_encode(core_lib, fields, payload)
    assert isinstance(encoded, bytes), encoded
    assert encoded.hex() == frame
    status, decoded = c_decode(core_lib, bytes.fromhex(frame))
    assert status == "ok"
    assert decoded == ({**fields, "type": int(FrameType[fields["type"]])}, payload)


@by_name(VECTORS["invalid"])
def test_invalid_frame_python(case: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as info:
        FrameHeader.decode(bytes.fromhex(case["frame"]))
    assert info.value.code == case["error"]


@by_name(VECTORS["invalid"])
def test_invalid_frame_c(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    assert c_decode(core_lib, bytes.fromhex(case["frame"])) == (case["error"], None)


@by_name(VECTORS["paper"])
def test_paper_frame(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame"])
    expected = PaperFrame(
        inference=case["inference"], index=case["index"], payload=bytes.fromhex(case["payload"])
    )
    assert expected.encode() == frame
    assert PaperFrame.decode(frame) == expected
    assert c_paper_encode(core_lib, expected.inference, expected.index, expected.payload) == frame
    assert c_paper_decode(core_lib, frame) == expected


@by_name(VECTORS["paper_invalid"])
def test_paper_frame_invalid(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame"])
    with pytest.raises(FrameError) as info:
        PaperFrame.decode(frame)
    assert info.value.code == case["error"]
    assert c_paper_decode(core_lib, frame) == case["error"]


@by_name(VECTORS["tensors"])
def test_tensor_stream(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    tensor = bytes.fromhex(case["tensor"])
    frames = [bytes.fromhex(f["frame"]) for f in case["frames"]]
    assert len(frames) == frames_for_tensor(len(tensor), case["frame_bytes"], "reliable")
    stream = b""
    for i, frame in enumerate(frames):
        assert len(frame) <= case["frame_bytes"]
        header, payload = FrameHeader.decode(frame)
        assert c_decode(core_lib, frame) == py_decode(frame)
        assert (header.chunk, header.chunks, header.exponent) == (i, len(frames), case["exponent"])
        stream += payload
    assert tensor_from_stream(stream) == tensor
    assert struct.unpack("<I", stream[-4:])[0] == case["crc32"] == crc32(tensor)


@pytest.mark.parametrize("case", VECTORS["crc"], ids=lambda c: c["data"][:16] or "empty")
def test_crc(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    buf = (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")
    assert crc16_ccitt(data) == core_lib.ts_crc16_ccitt(buf, len(data)) == case["crc16"]
    assert crc32(data) == core_lib.ts_crc32(buf, len(data)) == case["crc32"]


@pytest.mark.parametrize("case", VECTORS["sizes"], ids=lambda c: str(sorted(c.items())))
def test_sizes(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    reliable = int(case["mode"] == "reliable")
    if "tensor_bytes" in case:
        args = (case["tensor_bytes"], case["frame_bytes"], case["mode"])
        c_result = core_lib.ts_frames_for_tensor(args[0], args[1], reliable)
        py_call: Any = lambda: frames_for_tensor(*args)  # noqa: E731
        key = "frames"
    else:
        c_result = core_lib.ts_data_payload_bytes(case["frame_bytes"], reliable)
        py_call = lambda: data_payload_bytes(case["frame_bytes"], case["mode"])  # noqa: E731
        key = "payload_bytes"
    if "error" in case:
        assert c_result == -7  # TS_ERR_ARG
        with pytest.raises(ConfigError):
            py_call()
    else:
        assert c_result == py_call() == case[key]


@pytest.mark.parametrize("case", VECTORS["requantize"], ids=lambda c: f"{c['from']}->{c['to']}")
def test_requantize(core_lib: ctypes.CDLL, case: dict[str, Any]) -> None:
    values = np.array(case["values"], dtype=np.int16)
    assert requantize_exponent(values, case["from"], case["to"]).tolist() == case["expected"]
    assert c_requantize(core_lib, case["values"], case["from"], case["to"]) == case["expected"]


@settings(max_examples=300)
@given(
    st.lists(st.integers(-32768, 32767), max_size=64),
    st.integers(-128, 127),
    st.integers(-128, 127),
)
def test_requantize_c_equals_python(
    core_lib: ctypes.CDLL, values: list[int], from_exp: int, to_exp: int
) -> None:
    expected = requantize_exponent(np.array(values, dtype=np.int16), from_exp, to_exp).tolist()
    assert c_requantize(core_lib, values, from_exp, to_exp) == expected


def _repair(frame: bytearray) -> None:
    """Make the length field and CRC-16 match the bytes (mutations then reach the field checks)."""
    if len(frame) < 16 or len(frame) - 16 > 0xFFFF:
        return
    frame[10:12] = struct.pack("<H", len(frame) - 16)
    frame[14:16] = b"\0\0"
    frame[14:16] = struct.pack("<H", crc16_ccitt(bytes(frame)))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid vector frame with a few bytes changed, truncated or extended, often CRC-repaired."""
    frame = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "flip", "truncate", "extend"]))
        if action == "set" and frame:
            frame[draw(st.integers(0, min(len(frame), 18) - 1))] = draw(st.integers(0, 255))
        elif action == "flip" and frame:
            bit = draw(st.integers(0, 8 * len(frame) - 1))
            frame[bit // 8] ^= 1 << (bit % 8)
        elif action == "truncate":
            del frame[draw(st.integers(0, len(frame))) :]
        elif action == "extend":
            frame += draw(st.binary(min_size=1, max_size=6))
    if draw(st.booleans()):
        _repair(frame)
    return bytes(frame)


@st.composite
def small_headers(draw: st.DrawFn) -> bytes:
    """Random header fields near the rules' boundaries, short payload, correct length and CRC."""
    frame = bytearray(draw(st.binary(min_size=16, max_size=24)))
    frame[0] = 1
    frame[1] = draw(st.integers(0, 5))
    frame[3] = draw(st.integers(0, 4))
    frame[6:8] = struct.pack("<H", draw(st.sampled_from([0, 1, 2, 3, 0xFFFE, 0xFFFF])))
    frame[8:10] = struct.pack("<H", draw(st.sampled_from([0, 1, 2, 3, 0xFFFE, 0xFFFF])))
    frame[12] = draw(st.sampled_from([0, 0, 1, 0xFF]))
    frame[13] = draw(st.sampled_from([0, 0, 0, 1]))
    if len(frame) > 16:
        frame[16] = draw(st.integers(0, 4))
    _repair(frame)
    return bytes(frame)


@settings(max_examples=600)
@given(st.one_of(st.binary(max_size=40), mutated_frames(), small_headers()))
def test_c_and_python_decode_alike(core_lib: ctypes.CDLL, frame: bytes) -> None:
    c_result = c_decode(core_lib, frame)
    assert c_result == py_decode(frame)
    if c_result[0] == "ok":  # what decodes re-encodes to the same bytes, in both codecs
        fields, payload = c_result[1]
        assert c_encode(core_lib, fields, payload) == frame
        assert FrameHeader.decode(frame)[0].encode(payload) == frame
