/*
 * tinysplit wire protocol, version 1: frame codec and checksums (portable, no ESP-IDF).
 *
 * The layout is specified in docs/protocol.md and mirrored by the Python codec
 * (tinysplit.protocol.frames); firmware/host_test/vectors/frames.json holds the shared test
 * vectors both codecs must encode and decode identically.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_PROTOCOL_VERSION 1
#define TS_HEADER_BYTES 16          /* reliable-mode header */
#define TS_PAPER_TIMER_ID_BYTES 8   /* paper-mode frame prefix */
#define TS_TENSOR_CRC_BYTES 4       /* CRC-32 appended to a tensor's byte stream */
#define TS_ACK_BITMAP_BYTES 4       /* ACK payload */
#define TS_NACK_BYTES 1             /* NACK payload: a ts_nack_reason_t */
#define TS_MAX_FRAME_BYTES 1470     /* largest frame of any transport (ESP-NOW v2) */

#define TS_FLAG_LAST 0x01u           /* DATA: last chunk of the tensor */
#define TS_FLAG_RETRANSMISSION 0x02u /* DATA: sent before */

/** Result codes of the portable core: 0 is success, errors are negative. */
typedef enum {
    TS_OK = 0,
    TS_ERR_SHORT = -1,    /* frame shorter than its header */
    TS_ERR_VERSION = -2,  /* another protocol version */
    TS_ERR_LENGTH = -3,   /* payload length differs from the header's length field */
    TS_ERR_CRC = -4,      /* CRC-16 mismatch */
    TS_ERR_TYPE = -5,     /* unknown frame type */
    TS_ERR_FIELD = -6,    /* fields inconsistent with the type (see docs/protocol.md) */
    TS_ERR_ARG = -7,      /* bad argument from the caller */
    TS_ERR_NOSPACE = -8,  /* output buffer too small */
    TS_ERR_STATE = -9,    /* call not valid in the current state */
    TS_ERR_TIMEOUT = -10, /* peer did not answer in time */
} ts_err_t;

/** Frame types (header byte 1). */
typedef enum {
    TS_FRAME_DATA = 1,
    TS_FRAME_ACK = 2,
    TS_FRAME_NACK = 3,
    TS_FRAME_CTRL = 4,
} ts_frame_type_t;

/** NACK reasons (the NACK payload byte). */
typedef enum {
    TS_NACK_TENSOR_CRC = 1, /* all chunks arrived but the tensor CRC-32 failed: resend it all */
    TS_NACK_BUSY = 2,       /* the receive buffer holds another inference: retry later */
    TS_NACK_TOO_LARGE = 3,  /* the tensor does not fit the receive buffer: give up */
} ts_nack_reason_t;

/** CTRL opcodes (first payload byte). */
typedef enum {
    TS_CTRL_PING = 1,  /* + u32 token: the peer answers PONG with the same token (RTT) */
    TS_CTRL_PONG = 2,  /* + u32 token */
    TS_CTRL_ABORT = 3, /* + nothing: drop the partial tensor of `inference` */
} ts_ctrl_op_t;

/** A decoded header; `length` counts payload bytes after the 16-byte header. */
typedef struct {
    uint8_t type;       /* ts_frame_type_t */
    uint8_t stage;      /* stage (1-based) of the board that sent this frame */
    uint8_t flags;      /* TS_FLAG_* */
    uint16_t inference; /* inference sequence number (wraps at 65536) */
    uint16_t chunk;     /* DATA: chunk index; ACK: cumulative base (chunks < base received) */
    uint16_t chunks;    /* chunk count of the tensor */
    uint16_t length;    /* payload bytes */
    int8_t exponent;    /* DATA: tensor exponent, real value = int16 * 2^exponent */
} ts_frame_header_t;

/** CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor). */
uint16_t ts_crc16_ccitt(const uint8_t *data, size_t len);

/** Continue a CRC-16/CCITT-FALSE over more data (`crc` from the previous call or 0xFFFF). */
uint16_t ts_crc16_ccitt_update(uint16_t crc, const uint8_t *data, size_t len);

/** CRC-32/ISO-HDLC (as zlib.crc32), the per-tensor checksum. */
uint32_t ts_crc32(const uint8_t *data, size_t len);

/** Continue a CRC-32 (`crc` from the previous call, 0 to start), as zlib.crc32(data, crc). */
uint32_t ts_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/**
 * Encode header + payload into `out` (CRC-16 computed here; `h->length` must equal
 * `payload_len`). Returns the frame length (> 0) or TS_ERR_ARG / TS_ERR_NOSPACE / TS_ERR_FIELD.
 */
int ts_frame_encode(const ts_frame_header_t *h, const uint8_t *payload, size_t payload_len,
                    uint8_t *out, size_t out_cap);

/**
 * Decode and validate one frame of `len` bytes. On TS_OK, `*h` holds the header and `*payload`
 * points into `frame` (h->length bytes). Checks, in this order: short, version, length, CRC,
 * type, fields. Never reads outside frame[0..len).
 */
int ts_frame_decode(const uint8_t *frame, size_t len, ts_frame_header_t *h,
                    const uint8_t **payload);

/** Paper-mode frame: 8-byte timer id (u32 LE inference, u32 LE frame index) + raw payload. */
int ts_paper_encode(uint32_t inference, uint32_t index, const uint8_t *payload, size_t payload_len,
                    uint8_t *out, size_t out_cap);

/** Split a paper-mode frame; TS_ERR_SHORT below 8 bytes. `*payload_len` may be 0 (a response). */
int ts_paper_decode(const uint8_t *frame, size_t len, uint32_t *inference, uint32_t *index,
                    const uint8_t **payload, size_t *payload_len);

/** Tensor bytes one DATA frame of `frame_bytes` carries (even; paper: minus 8, reliable: 16). */
int ts_data_payload_bytes(size_t frame_bytes, int reliable);

/** DATA frames for one tensor (reliable mode counts the 4-byte tensor CRC in the stream). */
int ts_frames_for_tensor(size_t tensor_bytes, size_t frame_bytes, int reliable);

/** Short name of a result code ("ok", "short", "version", "length", "crc", "type", ...). */
const char *ts_err_name(int err);

#ifdef __cplusplus
}
#endif
