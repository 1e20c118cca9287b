"""The wire protocol's shared test vectors (``firmware/host_test/vectors/frames.json``).

Both codecs must agree on these: the Python tests encode and decode every vector with
:mod:`tinysplit.protocol.frames` and, through ctypes, with the firmware's C codec; the C fuzz
driver mutates the valid frames. The committed file is the output of :func:`build_vectors` (a test
keeps them equal), regenerated with::

    python -m tinysplit.protocol.vectors firmware/host_test/vectors/frames.json

Layout (all byte strings as lowercase hex; ``frame`` keys hold frame bytes only):

* ``frames``: valid reliable frames: ``header`` fields (``type`` by name), ``payload``, ``frame``.
* ``invalid``: frames the decoder rejects, with the expected ``error`` code.
* ``paper``: paper frames (``inference``, ``index``, ``payload``, ``frame``);
  ``paper_invalid``: paper frames rejected with ``error``.
* ``tensors``: a tensor, a frame size, and the DATA frames that carry it in reliable mode.
* ``crc``: CRC-16/CCITT-FALSE and CRC-32 of some inputs.
* ``sizes``: ``data_payload_bytes`` / ``frames_for_tensor`` results (or ``error``: ``arg``).
* ``requantize``: int16 ``values`` at exponent ``from`` converted to ``to``, and ``expected``.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tinysplit.errors import TinysplitError
from tinysplit.model.quantize import requantize_exponent
from tinysplit.protocol.frames import (
    FLAG_LAST,
    FLAG_RETRANSMISSION,
    HEADER_BYTES,
    CtrlOp,
    FrameHeader,
    FrameType,
    NackReason,
    PaperFrame,
    ack_payload,
    crc16_ccitt,
    crc32,
    ctrl_payload,
    data_payload_bytes,
    frames_for_tensor,
    nack_payload,
    pack_frame,
    split_tensor,
)

FORMAT = 1
#: Frame sizes of the transports (docs/protocol.md, "Sizes per transport").
BLE_PDU_VALUE_BYTES = 514  # ATT MTU 517 - 3
BLE_WRITE_BYTES = 512  # the largest ATT attribute value, and the paper's GATT writes
ESPNOW_V1_BYTES = 250
ESPNOW_V2_BYTES = 1470
TCP_MSS_BYTES = 1440


def _pattern(n: int, seed: int) -> bytes:
    """``n`` deterministic bytes (a multiplicative sequence, no RNG state to drift)."""
    return bytes((seed + 151 * i + (i * i >> 3)) & 0xFF for i in range(n))


def _int16_ramp(count: int, start: int, step: int) -> bytes:
    """``count`` int16 little-endian values ``start, start + step, ...`` wrapped into int16."""
    values = [((start + step * i + 32768) % 65536) - 32768 for i in range(count)]
    return struct.pack(f"<{count}h", *values)


def _header_dict(header: FrameHeader) -> dict[str, Any]:
    return {
        "type": header.type.name,
        "stage": header.stage,
        "flags": header.flags,
        "inference": header.inference,
        "chunk": header.chunk,
        "chunks": header.chunks,
        "length": header.length,
        "exponent": header.exponent,
    }


def _hdr(kind: FrameType, payload: bytes, **fields: int) -> tuple[FrameHeader, bytes]:
    """A header for ``payload`` (stage 1, everything else 0 unless given)."""
    values = {"stage": 1, "inference": 0, "chunk": 0, "chunks": 0, "exponent": 0, "flags": 0}
    values |= fields
    header = FrameHeader(
        type=kind,
        stage=values["stage"],
        inference=values["inference"],
        chunk=values["chunk"],
        chunks=values["chunks"],
        length=len(payload),
        exponent=values["exponent"],
        flags=values["flags"],
    )
    return header, payload


def _data(payload: bytes, chunk: int, chunks: int, **fields: int) -> tuple[FrameHeader, bytes]:
    flags = fields.pop("flags", 0) | (FLAG_LAST if chunk == chunks - 1 else 0)
    return _hdr(FrameType.DATA, payload, chunk=chunk, chunks=chunks, flags=flags, **fields)


def _valid_frames() -> list[dict[str, Any]]:
    ble_payload = data_payload_bytes(BLE_WRITE_BYTES, "reliable")
    pdu_payload = data_payload_bytes(BLE_PDU_VALUE_BYTES, "reliable")
    cases: list[tuple[str, tuple[FrameHeader, bytes]]] = [
        (
            "data BLE 512 B write, first of three chunks",
            _data(_int16_ramp(ble_payload // 2, -249, 1), 0, 3, stage=1, inference=1, exponent=-8),
        ),
        (
            "data 514 B (ATT MTU 517 - 3)",
            _data(_int16_ramp(pdu_payload // 2, 32000, 3), 1, 3, stage=1, inference=1, exponent=-8),
        ),
        (
            "data BLE last chunk, retransmitted",
            _data(
                _pattern(36, 3), 2, 3, stage=1, inference=1, exponent=-8, flags=FLAG_RETRANSMISSION
            ),
        ),
        (
            "data ESP-NOW v2 1470 B frame",
            _data(
                _pattern(data_payload_bytes(ESPNOW_V2_BYTES, "reliable"), 5),
                4,
                277,
                stage=2,
                inference=40000,
                exponent=-12,
            ),
        ),
        (
            "data ESP-NOW v1 250 B frame",
            _data(
                _pattern(data_payload_bytes(ESPNOW_V1_BYTES, "reliable"), 7),
                1715,
                1716,
                stage=3,
                inference=65535,
                exponent=-15,
            ),
        ),
        (
            "data TCP 1440 B frame (one MSS)",
            _data(
                _pattern(data_payload_bytes(TCP_MSS_BYTES, "reliable"), 9),
                0,
                282,
                stage=4,
                inference=2,
                exponent=0,
            ),
        ),
        ("data one byte, single chunk", _data(b"\x7f", 0, 1, stage=255, exponent=127)),
        ("data highest chunk index", _data(_pattern(2, 11), 65534, 65535, exponent=-128)),
        (
            "data exponent -128 retransmission",
            _data(_pattern(8, 13), 0, 2, exponent=-128, flags=FLAG_RETRANSMISSION),
        ),
        ("ack nothing received yet", _hdr(FrameType.ACK, ack_payload(0), stage=2, chunks=810)),
        (
            "ack base 3, chunks 3+0, 3+2 and 3+31",
            _hdr(FrameType.ACK, ack_payload(0x80000005), stage=2, inference=1, chunk=3, chunks=9),
        ),
        (
            "ack every chunk (base == chunks)",
            _hdr(FrameType.ACK, ack_payload(0), stage=5, inference=65535, chunk=797, chunks=797),
        ),
        ("ack all bits", _hdr(FrameType.ACK, ack_payload(0xFFFFFFFF), chunk=65535, chunks=65535)),
        ("ack empty stream (chunks 0)", _hdr(FrameType.ACK, ack_payload(0), stage=0)),
    ]
    cases += [
        (
            f"nack {reason.name}",
            _hdr(FrameType.NACK, nack_payload(reason), stage=3, inference=77, chunks=12),
        )
        for reason in NackReason
    ]
    cases += [
        ("ctrl ping", _hdr(FrameType.CTRL, ctrl_payload(CtrlOp.PING, 0x12345678), stage=1)),
        ("ctrl pong token max",
         _hdr(FrameType.CTRL, ctrl_payload(CtrlOp.PONG, 0xFFFFFFFF), stage=2)),
        ("ctrl abort", _hdr(FrameType.CTRL, ctrl_payload(CtrlOp.ABORT), stage=1, inference=9)),
    ]  # fmt: skip
    out = []
    for name, (header, payload) in cases:
        out.append(
            {
                "name": name,
                "header": _header_dict(header),
                "payload": payload.hex(),
                "frame": header.encode(payload).hex(),
            }
        )
    return out


def _with_byte(frame: bytes, offset: int, value: int) -> bytes:
    return frame[:offset] + bytes([value]) + frame[offset + 1 :]


def _invalid_frames() -> list[dict[str, Any]]:
    ok_header, ok_payload = _data(_pattern(6, 17), 0, 1, stage=2, inference=5, exponent=-7)
    ok = ok_header.encode(ok_payload)
    bad: list[tuple[str, bytes, str]] = [
        ("empty", b"", "short"),
        ("one byte", ok[:1], "short"),
        ("header minus one byte", ok[: HEADER_BYTES - 1], "short"),
        ("version 0", pack_frame(ok_header, ok_payload, version=0), "version"),
        ("version 2", pack_frame(ok_header, ok_payload, version=2), "version"),
        ("version 255, truncated too", pack_frame(ok_header, ok_payload, version=255)[:-1],
         "version"),
        ("payload one byte short", ok[:-1], "length"),
        ("payload one byte long", ok + b"\0", "length"),
        ("header only, length says 6", ok[:HEADER_BYTES], "length"),
        ("length field 0xffff", _with_byte(_with_byte(ok, 10, 0xFF), 11, 0xFF), "length"),
        ("flipped payload bit", ok[:-1] + bytes([ok[-1] ^ 0x01]), "crc"),
        ("flipped header bit", _with_byte(ok, 4, ok[4] ^ 0x80), "crc"),
        ("crc field swapped", ok[:14] + ok[15:16] + ok[14:15] + ok[16:], "crc"),
    ]  # fmt: skip

    def raw_type(kind: int, reserved: int = 0) -> bytes:
        """``ok`` with type ``kind`` (FrameHeader only holds known types) and a correct CRC."""
        frame = bytearray(pack_frame(ok_header, ok_payload, reserved=reserved))
        frame[1] = kind
        frame[14:16] = b"\0\0"
        frame[14:16] = struct.pack("<H", crc16_ccitt(bytes(frame)))
        return bytes(frame)

    bad += [
        ("unknown type 0 with a bad reserved byte", raw_type(0, reserved=1), "type"),
        ("unknown type 5", raw_type(5), "type"),
        ("unknown type 255", raw_type(255), "type"),
        ("reserved byte 1", pack_frame(ok_header, ok_payload, reserved=1), "field"),
    ]

    def field(name: str, case: tuple[FrameHeader, bytes]) -> tuple[str, bytes, str]:
        return name, pack_frame(*case), "field"

    d, p4 = FrameType.DATA, _pattern(4, 19)
    bad += [
        field("data chunks 0", _hdr(d, p4, chunk=0, chunks=0)),
        field("data chunk == chunks", _hdr(d, p4, chunk=3, chunks=3, flags=FLAG_LAST)),
        field("data last chunk without LAST", _hdr(d, p4, chunk=2, chunks=3)),
        field("data LAST before the last chunk", _hdr(d, p4, chunk=1, chunks=3, flags=FLAG_LAST)),
        field("data unknown flag 0x04", _hdr(d, p4, chunk=0, chunks=1, flags=FLAG_LAST | 0x04)),
        field("data unknown flag 0x80", _hdr(d, p4, chunk=0, chunks=2, flags=0x80)),
        field("data empty payload", _hdr(d, b"", chunk=0, chunks=1, flags=FLAG_LAST)),
        field("ack 3 B bitmap", _hdr(FrameType.ACK, b"\0\0\0", chunks=4)),
        field("ack 5 B bitmap", _hdr(FrameType.ACK, b"\0" * 5, chunks=4)),
        field("ack base above chunks", _hdr(FrameType.ACK, ack_payload(0), chunk=5, chunks=4)),
        field("ack with flags", _hdr(FrameType.ACK, ack_payload(0), chunks=4, flags=FLAG_LAST)),
        field("ack with exponent", _hdr(FrameType.ACK, ack_payload(0), chunks=4, exponent=-1)),
        field("nack empty", _hdr(FrameType.NACK, b"")),
        field("nack 2 B", _hdr(FrameType.NACK, b"\x01\x00")),
        field("nack reason 0", _hdr(FrameType.NACK, b"\x00")),
        field("nack reason 4", _hdr(FrameType.NACK, b"\x04")),
        field("nack with flags", _hdr(FrameType.NACK, b"\x02", flags=FLAG_RETRANSMISSION)),
        field("ctrl empty", _hdr(FrameType.CTRL, b"")),
        field("ctrl opcode 0", _hdr(FrameType.CTRL, b"\x00")),
        field("ctrl opcode 4", _hdr(FrameType.CTRL, b"\x04\0\0\0\0")),
        field("ctrl ping 4 B", _hdr(FrameType.CTRL, b"\x01\0\0\0")),
        field("ctrl pong 6 B", _hdr(FrameType.CTRL, b"\x02\0\0\0\0\0")),
        field("ctrl abort 2 B", _hdr(FrameType.CTRL, b"\x03\0")),
        field("ctrl with flags", _hdr(FrameType.CTRL, b"\x03", flags=FLAG_LAST)),
    ]
    return [{"name": name, "frame": frame.hex(), "error": code} for name, frame, code in bad]


def _paper_frames() -> list[dict[str, Any]]:
    paper_values = data_payload_bytes(BLE_WRITE_BYTES, "paper") // 2
    cases = [
        ("paper BLE write: 8 B timer id + 252 int16",
         PaperFrame(inference=3, index=796, payload=_int16_ramp(paper_values, -32768, 257))),
        ("paper response (timer id only)", PaperFrame(inference=3, index=796)),
        ("paper ESP-NOW v1 250 B",
         PaperFrame(inference=1, index=0,
                    payload=_pattern(data_payload_bytes(ESPNOW_V1_BYTES, "paper"), 23))),
        ("paper max ids", PaperFrame(inference=0xFFFFFFFF, index=0xFFFFFFFF, payload=b"\x01\x80")),
    ]  # fmt: skip
    return [
        {
            "name": name,
            "inference": frame.inference,
            "index": frame.index,
            "payload": frame.payload.hex(),
            "frame": frame.encode().hex(),
        }
        for name, frame in cases
    ]


def _tensors() -> list[dict[str, Any]]:
    out = []
    cases = [
        ("50 int16 in 48 B frames: the CRC-32 fills a chunk of its own", _int16_ramp(50, 1000, -37),
         48, -9),
        ("7 int16 in one 64 B frame", _int16_ramp(7, -3, 1), 64, 0),
    ]  # fmt: skip
    for name, tensor, frame_bytes, exponent in cases:
        chunks = split_tensor(tensor, frame_bytes, "reliable")
        frames = []
        for i, chunk in enumerate(chunks):
            header, _ = _data(chunk, i, len(chunks), stage=1, inference=12, exponent=exponent)
            frames.append(header.encode(chunk).hex())
        out.append(
            {
                "name": name,
                "tensor": tensor.hex(),
                "crc32": crc32(tensor),
                "frame_bytes": frame_bytes,
                "stage": 1,
                "inference": 12,
                "exponent": exponent,
                "frames": [{"frame": f} for f in frames],
            }
        )
    return out


def _crcs() -> list[dict[str, Any]]:
    inputs = [b"", b"123456789", b"\x00", b"\xff" * 4, _pattern(1454, 29)]
    return [{"data": d.hex(), "crc16": crc16_ccitt(d), "crc32": crc32(d)} for d in inputs]


def _sizes() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    payload_cases = [
        (512, "paper"), (512, "reliable"), (513, "paper"), (514, "reliable"), (250, "paper"),
        (250, "reliable"), (1470, "paper"), (1470, "reliable"), (1440, "reliable"), (10, "paper"),
        (9, "paper"), (18, "reliable"), (17, "reliable"), (0, "reliable"), (200000, "reliable"),
    ]  # fmt: skip
    for frame_bytes, mode in payload_cases:
        case: dict[str, Any] = {"frame_bytes": frame_bytes, "mode": mode}
        try:
            case["payload_bytes"] = data_payload_bytes(frame_bytes, mode)
        except TinysplitError:
            case["error"] = "arg"
        out.append(case)
    tensor_cases = [
        (401_408, 512, "paper"), (401_408, 512, "reliable"), (401_408, 514, "reliable"),
        (401_408, 250, "reliable"), (401_408, 1470, "reliable"), (496, 512, "reliable"),
        (492, 512, "reliable"), (0, 512, "paper"), (0, 512, "reliable"), (1, 250, "paper"),
        (65535 * 2 - 4, 18, "reliable"), (65535 * 2 - 3, 18, "reliable"), (100, 9, "paper"),
    ]  # fmt: skip
    for tensor_bytes, frame_bytes, mode in tensor_cases:
        case = {"tensor_bytes": tensor_bytes, "frame_bytes": frame_bytes, "mode": mode}
        try:
            case["frames"] = frames_for_tensor(tensor_bytes, frame_bytes, mode)
        except TinysplitError:
            case["error"] = "arg"
        out.append(case)
    return out


def _requantize() -> list[dict[str, Any]]:
    edge = [-32768, -32767, -16385, -16384, -3, -2, -1, 0, 1, 2, 3, 16383, 16384, 32766, 32767]
    exps = [(0, 0), (-8, -7), (-10, -8), (-15, -1), (-15, 0), (-16, 0), (-30, 5), (-128, 127),
            (-7, -8), (-9, -12), (-1, -15), (0, -16), (100, -100), (127, -128)]  # fmt: skip
    return [
        {
            "from": a,
            "to": b,
            "values": edge,
            "expected": requantize_exponent(np.array(edge, dtype=np.int16), a, b).tolist(),
        }
        for a, b in exps
    ]


def build_vectors() -> dict[str, Any]:
    """Every vector, as written to ``frames.json`` (deterministic: no randomness, no clock)."""
    return {
        "format": FORMAT,
        "description": "tinysplit wire protocol v1 test vectors; see docs/protocol.md. "
        "Generated by `python -m tinysplit.protocol.vectors` - do not edit.",
        "frames": _valid_frames(),
        "invalid": _invalid_frames(),
        "paper": _paper_frames(),
        "paper_invalid": [
            {"name": f"{n} B", "frame": _pattern(n, 31).hex(), "error": "short"} for n in (0, 1, 7)
        ],
        "tensors": _tensors(),
        "crc": _crcs(),
        "sizes": _sizes(),
        "requantize": _requantize(),
    }


def dumps(vectors: dict[str, Any]) -> str:
    """The file text: indented JSON (one ``"frame": "<hex>"`` per line) and a final newline."""
    return json.dumps(vectors, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m tinysplit.protocol.vectors PATH``: write the vectors to PATH."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tinysplit.protocol.vectors PATH", file=sys.stderr)
        return 2
    Path(args[0]).write_text(dumps(build_vectors()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
