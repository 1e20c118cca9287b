"""ctypes bindings of the C frame codec (``ts_frame.h``) and results comparable with Python's."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import FrameError
from tinysplit.protocol import FrameHeader, FrameType, PaperFrame

_u8p = ctypes.POINTER(ctypes.c_uint8)
_ERR_NAMES = {
    0: "ok", -1: "short", -2: "version", -3: "length", -4: "crc", -5: "type", -6: "field",
    -7: "arg", -8: "nospace",
}  # fmt: skip


class CHeader(ctypes.Structure):
    """``ts_frame_header_t`` (natural C alignment, as the compiler lays it out)."""

    _fields_ = [
        ("type", ctypes.c_uint8),
        ("stage", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("inference", ctypes.c_uint16),
        ("chunk", ctypes.c_uint16),
        ("chunks", ctypes.c_uint16),
        ("length", ctypes.c_uint16),
        ("exponent", ctypes.c_int8),
    ]


def declare_codec(lib: ctypes.CDLL) -> None:
    """Declare argtypes / restype of the codec, CRC and requantize functions on ``lib``."""
    sz, i32, u32, u16, i8 = (ctypes.c_size_t, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint16,
                             ctypes.c_int8)  # fmt: skip
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "ts_crc16_ccitt": (u16, [_u8p, sz]),
        "ts_crc16_ccitt_update": (u16, [u16, _u8p, sz]),
        "ts_crc32": (u32, [_u8p, sz]),
        "ts_crc32_update": (u32, [u32, _u8p, sz]),
        "ts_frame_encode": (i32, [ctypes.POINTER(CHeader), _u8p, sz, _u8p, sz]),
        "ts_frame_decode": (
            i32, [_u8p, sz, ctypes.POINTER(CHeader), ctypes.POINTER(_u8p)]),
        "ts_paper_encode": (i32, [u32, u32, _u8p, sz, _u8p, sz]),
        "ts_paper_decode": (
            i32, [_u8p, sz, ctypes.POINTER(u32), ctypes.POINTER(u32), ctypes.POINTER(_u8p),
                  ctypes.POINTER(sz)]),
        "ts_data_payload_bytes": (i32, [sz, i32]),
        "ts_frames_for_tensor": (i32, [sz, sz, i32]),
        "ts_err_name": (ctypes.c_char_p, [i32]),
        "ts_requantize": (None, [ctypes.POINTER(ctypes.c_int16), sz, i8, i8]),
    }  # fmt: skip
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _buf(data: bytes) -> Any:
    """A C array holding exactly ``data`` (at least one byte so the pointer is never NULL)."""
    return (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(data or b"\0")


def err_name(lib: ctypes.CDLL, code: int) -> str:
    """``ts_err_name(code)`` as str."""
    name: bytes = lib.ts_err_name(code)
    return name.decode()


def c_decode(lib: ctypes.CDLL, frame: bytes) -> tuple[str, Any]:
    """Decode with C: ("ok", (header fields, payload)) or (error code name, None)."""
    head = CHeader()
    payload = _u8p()
    buf = _buf(frame)  # kept alive: the payload pointer points into it
    err = lib.ts_frame_decode(buf, len(frame), ctypes.byref(head), ctypes.byref(payload))
    if err != 0:
        return err_name(lib, err), None
    fields = {f[0]: getattr(head, f[0]) for f in CHeader._fields_}
    return "ok", (fields, ctypes.string_at(payload, head.length))


def py_decode(frame: bytes) -> tuple[str, Any]:
    """Decode with Python, in :func:`c_decode`'s terms."""
    try:
        header, payload = FrameHeader.decode(frame)
    except FrameError as exc:
        return exc.code, None
    fields = {f[0]: getattr(header, f[0]) for f in CHeader._fields_}
    fields["type"] = int(header.type)
    return "ok", (fields, payload)


def c_encode(lib: ctypes.CDLL, fields: dict[str, Any], payload: bytes) -> bytes | str:
    """Encode with C: the frame bytes, or the error code name."""
    head = CHeader(**{**fields, "type": int(FrameType[fields["type"]])
                      if isinstance(fields["type"], str) else fields["type"]})  # fmt: skip
    out = (ctypes.c_uint8 * (16 + len(payload)))()
    n = lib.ts_frame_encode(ctypes.byref(head), _buf(payload), len(payload), out, len(out))
    return bytes(out[:n]) if n > 0 else err_name(lib, n)


def c_paper_decode(lib: ctypes.CDLL, frame: bytes) -> PaperFrame | str:
    """Paper-decode with C: a PaperFrame, or the error code name."""
    inference, index, payload, size = (
        ctypes.c_uint32(),
        ctypes.c_uint32(),
        _u8p(),
        ctypes.c_size_t(),
    )
    buf = _buf(frame)  # kept alive: the payload pointer points into it
    err = lib.ts_paper_decode(buf, len(frame), ctypes.byref(inference), ctypes.byref(index),
                              ctypes.byref(payload), ctypes.byref(size))  # fmt: skip
    if err != 0:
        return err_name(lib, err)
    return PaperFrame(inference=inference.value, index=index.value,
                      payload=ctypes.string_at(payload, size.value))  # fmt: skip


def c_paper_encode(lib: ctypes.CDLL, inference: int, index: int, payload: bytes) -> bytes:
    """Paper-encode with C."""
    out = (ctypes.c_uint8 * (8 + len(payload)))()
    n = lib.ts_paper_encode(inference, index, _buf(payload), len(payload), out, len(out))
    assert n == len(out), err_name(lib, n)
    return bytes(out)


def c_requantize(lib: ctypes.CDLL, values: list[int], from_exp: int, to_exp: int) -> list[int]:
    """``ts_requantize`` on a copy of ``values``."""
    arr: npt.NDArray[np.int16] = np.array(values, dtype=np.int16)
    ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
    lib.ts_requantize(ptr, arr.size, from_exp, to_exp)
    return [int(v) for v in arr]
