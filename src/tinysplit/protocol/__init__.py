"""Wire format shared by the simulator and the firmware: frame header, CRCs, sizes."""

from __future__ import annotations

from tinysplit.protocol.frames import (
    ACK_BITMAP_BYTES,
    HEADER_BYTES,
    PAPER_TIMER_ID_BYTES,
    TENSOR_CRC_BYTES,
    FrameHeader,
    FrameType,
    crc16_ccitt,
    crc32,
    data_payload_bytes,
    frames_for_tensor,
)

__all__ = [
    "ACK_BITMAP_BYTES",
    "HEADER_BYTES",
    "PAPER_TIMER_ID_BYTES",
    "TENSOR_CRC_BYTES",
    "FrameHeader",
    "FrameType",
    "crc16_ccitt",
    "crc32",
    "data_payload_bytes",
    "frames_for_tensor",
]
