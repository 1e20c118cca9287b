/*
 * Frames on a TCP byte stream (portable, no ESP-IDF): how the receiver finds frame boundaries.
 *
 * Reliable mode: a frame is its own delimiter. The receiver reads the 16-byte header, then the
 * `length` payload bytes the header announces, and hands header + payload on unchanged.
 * Paper mode: paper frames (8-byte timer id + raw values) carry no length and the transport does
 * not know tensor sizes, so on TCP only each paper frame is preceded by a u16 little-endian byte
 * count. The prefix is stripped on receive; the frame handed on is the paper frame itself.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_WIFI_PAPER_PREFIX_BYTES 2u

/** Bytes to read before the size of the next frame is known: the reliable header (16) or the
 *  paper prefix (2). */
size_t ts_wifi_head_bytes(int reliable);

/**
 * Bytes that follow `head` (ts_wifi_head_bytes(reliable) bytes) up to the end of the frame, or a
 * negative ts_err_t when the head cannot start a frame: TS_ERR_VERSION (reliable header of
 * another protocol version: the stream is out of step) or TS_ERR_LENGTH (the whole frame, header
 * included, would be empty or exceed `max_frame_bytes`).
 */
int ts_wifi_body_bytes(const uint8_t *head, int reliable, size_t max_frame_bytes);

/** Write the paper-mode prefix announcing a frame of `frame_len` bytes (1..65535). */
void ts_wifi_paper_prefix(uint8_t out[TS_WIFI_PAPER_PREFIX_BYTES], size_t frame_len);

#ifdef __cplusplus
}
#endif
