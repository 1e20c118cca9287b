/*
 * Frame codec of the wire protocol, version 1 (spec: docs/protocol.md; the Python codec
 * tinysplit.protocol.frames applies the same rules in the same order).
 *
 * Decoding handles bytes straight from a radio: every read is bounds-checked against `len`
 * before it happens, and the payload pointer handed back points into the caller's buffer.
 */
#include <limits.h>
#include <string.h>

#include "ts_frame.h"

/* Byte offsets of the 16-byte header (little-endian fields). */
enum {
    OFF_VERSION = 0,
    OFF_TYPE = 1,
    OFF_STAGE = 2,
    OFF_FLAGS = 3,
    OFF_INFERENCE = 4,
    OFF_CHUNK = 6,
    OFF_CHUNKS = 8,
    OFF_LENGTH = 10,
    OFF_EXPONENT = 12,
    OFF_RESERVED = 13,
    OFF_CRC = 14,
};

#define TS_DATA_FLAGS (TS_FLAG_LAST | TS_FLAG_RETRANSMISSION)
#define TS_CTRL_TOKEN_BYTES 5u   /* PING / PONG payload: opcode + u32 token */
#define TS_MAX_PAYLOAD 0xFFFFu   /* the length field is 16 bits */
#define TS_MAX_CHUNKS 0xFFFFu    /* the chunks field is 16 bits */

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

/* CRC-16 over header bytes 0..13, the CRC field as two zero bytes, then the payload. */
static uint16_t frame_crc(const uint8_t *header, const uint8_t *payload, size_t payload_len)
{
    static const uint8_t zero_crc[2] = {0, 0};
    uint16_t crc = ts_crc16_ccitt_update(0xFFFFu, header, OFF_CRC);
    crc = ts_crc16_ccitt_update(crc, zero_crc, sizeof zero_crc);
    return ts_crc16_ccitt_update(crc, payload, payload_len);
}

/*
 * The per-type field rules of docs/protocol.md ("Frame types"); `payload` holds h->length bytes.
 * Shared by encode (never emit what a peer rejects) and decode.
 */
static int check_fields(const ts_frame_header_t *h, uint8_t reserved, const uint8_t *payload)
{
    if (h->type < TS_FRAME_DATA || h->type > TS_FRAME_CTRL) {
        return TS_ERR_TYPE; /* checked before any field: the validation order is part of the spec */
    }
    if (reserved != 0) {
        return TS_ERR_FIELD;
    }
    switch (h->type) {
    case TS_FRAME_DATA: {
        if (h->chunks == 0 || h->chunk >= h->chunks || h->length == 0) {
            return TS_ERR_FIELD;
        }
        if ((h->flags & (uint8_t)~TS_DATA_FLAGS) != 0) {
            return TS_ERR_FIELD;
        }
        int last = (h->flags & TS_FLAG_LAST) != 0;
        int is_last_chunk = h->chunk == (uint16_t)(h->chunks - 1u);
        return last == is_last_chunk ? TS_OK : TS_ERR_FIELD;
    }
    case TS_FRAME_ACK:
        if (h->length != TS_ACK_BITMAP_BYTES || h->chunk > h->chunks || h->flags != 0 ||
            h->exponent != 0) {
            return TS_ERR_FIELD;
        }
        return TS_OK;
    case TS_FRAME_NACK:
        if (h->length != TS_NACK_BYTES || h->flags != 0) {
            return TS_ERR_FIELD;
        }
        switch (payload[0]) {
        case TS_NACK_TENSOR_CRC:
        case TS_NACK_BUSY:
        case TS_NACK_TOO_LARGE:
            return TS_OK;
        default:
            return TS_ERR_FIELD;
        }
    case TS_FRAME_CTRL:
        if (h->length < 1 || h->flags != 0) {
            return TS_ERR_FIELD;
        }
        switch (payload[0]) {
        case TS_CTRL_PING:
        case TS_CTRL_PONG:
            return h->length == TS_CTRL_TOKEN_BYTES ? TS_OK : TS_ERR_FIELD;
        case TS_CTRL_ABORT:
            return h->length == 1 ? TS_OK : TS_ERR_FIELD;
        default:
            return TS_ERR_FIELD;
        }
    default:
        return TS_ERR_TYPE;
    }
}

int ts_frame_encode(const ts_frame_header_t *h, const uint8_t *payload, size_t payload_len,
                    uint8_t *out, size_t out_cap)
{
    if (h == NULL || out == NULL || (payload == NULL && payload_len > 0) ||
        payload_len != h->length) {
        return TS_ERR_ARG;
    }
    if (check_fields(h, 0, payload) != TS_OK) {
        return TS_ERR_FIELD; /* an unknown type included: the caller's header is inconsistent */
    }
    if (out_cap < TS_HEADER_BYTES || out_cap - TS_HEADER_BYTES < payload_len) {
        return TS_ERR_NOSPACE;
    }
    out[OFF_VERSION] = TS_PROTOCOL_VERSION;
    out[OFF_TYPE] = h->type;
    out[OFF_STAGE] = h->stage;
    out[OFF_FLAGS] = h->flags;
    put_u16(out + OFF_INFERENCE, h->inference);
    put_u16(out + OFF_CHUNK, h->chunk);
    put_u16(out + OFF_CHUNKS, h->chunks);
    put_u16(out + OFF_LENGTH, h->length);
    out[OFF_EXPONENT] = (uint8_t)h->exponent;
    out[OFF_RESERVED] = 0;
    /* memmove: a caller may build the payload in place at out + TS_HEADER_BYTES. */
    if (payload_len > 0) {
        memmove(out + TS_HEADER_BYTES, payload, payload_len);
    }
    put_u16(out + OFF_CRC, frame_crc(out, out + TS_HEADER_BYTES, payload_len));
    return (int)(TS_HEADER_BYTES + payload_len);
}

int ts_frame_decode(const uint8_t *frame, size_t len, ts_frame_header_t *h,
                    const uint8_t **payload)
{
    if (frame == NULL || h == NULL || payload == NULL) {
        return TS_ERR_ARG;
    }
    if (len < TS_HEADER_BYTES) {
        return TS_ERR_SHORT;
    }
    if (frame[OFF_VERSION] != TS_PROTOCOL_VERSION) {
        return TS_ERR_VERSION;
    }
    uint16_t length = get_u16(frame + OFF_LENGTH);
    if (len - TS_HEADER_BYTES != length) {
        return TS_ERR_LENGTH;
    }
    const uint8_t *body = frame + TS_HEADER_BYTES;
    if (frame_crc(frame, body, length) != get_u16(frame + OFF_CRC)) {
        return TS_ERR_CRC;
    }
    ts_frame_header_t got = {
        .type = frame[OFF_TYPE],
        .stage = frame[OFF_STAGE],
        .flags = frame[OFF_FLAGS],
        .inference = get_u16(frame + OFF_INFERENCE),
        .chunk = get_u16(frame + OFF_CHUNK),
        .chunks = get_u16(frame + OFF_CHUNKS),
        .length = length,
        .exponent = (int8_t)frame[OFF_EXPONENT],
    };
    /* check_fields reads payload[0] only for NACK / CTRL after checking length >= 1. */
    int err = check_fields(&got, frame[OFF_RESERVED], body);
    if (err != TS_OK) {
        return err;
    }
    *h = got;
    *payload = body;
    return TS_OK;
}

int ts_paper_encode(uint32_t inference, uint32_t index, const uint8_t *payload, size_t payload_len,
                    uint8_t *out, size_t out_cap)
{
    if (out == NULL || (payload == NULL && payload_len > 0) ||
        payload_len > (size_t)INT_MAX - TS_PAPER_TIMER_ID_BYTES) {
        return TS_ERR_ARG;
    }
    if (out_cap < TS_PAPER_TIMER_ID_BYTES || out_cap - TS_PAPER_TIMER_ID_BYTES < payload_len) {
        return TS_ERR_NOSPACE;
    }
    put_u32(out, inference);
    put_u32(out + 4, index);
    if (payload_len > 0) {
        memmove(out + TS_PAPER_TIMER_ID_BYTES, payload, payload_len);
    }
    return (int)(TS_PAPER_TIMER_ID_BYTES + payload_len);
}

int ts_paper_decode(const uint8_t *frame, size_t len, uint32_t *inference, uint32_t *index,
                    const uint8_t **payload, size_t *payload_len)
{
    if (frame == NULL || inference == NULL || index == NULL || payload == NULL ||
        payload_len == NULL) {
        return TS_ERR_ARG;
    }
    if (len < TS_PAPER_TIMER_ID_BYTES) {
        return TS_ERR_SHORT;
    }
    *inference = get_u32(frame);
    *index = get_u32(frame + 4);
    *payload = frame + TS_PAPER_TIMER_ID_BYTES;
    *payload_len = len - TS_PAPER_TIMER_ID_BYTES;
    return TS_OK;
}

int ts_data_payload_bytes(size_t frame_bytes, int reliable)
{
    size_t overhead = reliable ? TS_HEADER_BYTES : TS_PAPER_TIMER_ID_BYTES;
    if (frame_bytes < overhead + 2u) {
        return TS_ERR_ARG;
    }
    size_t payload = (frame_bytes - overhead) / 2u * 2u;
    /* A larger frame budget than the header can describe carries the largest even payload. */
    size_t cap = reliable ? (TS_MAX_PAYLOAD & ~(size_t)1) : ((size_t)INT_MAX & ~(size_t)1);
    return (int)(payload < cap ? payload : cap);
}

int ts_frames_for_tensor(size_t tensor_bytes, size_t frame_bytes, int reliable)
{
    int per_frame = ts_data_payload_bytes(frame_bytes, reliable);
    if (per_frame < 0) {
        return per_frame;
    }
    size_t extra = reliable ? TS_TENSOR_CRC_BYTES : 0u;
    if (tensor_bytes > SIZE_MAX - extra) {
        return TS_ERR_ARG;
    }
    size_t stream = tensor_bytes + extra;
    size_t per = (size_t)per_frame;
    size_t frames = stream / per + (stream % per != 0 ? 1u : 0u);
    if (frames == 0) {
        frames = 1; /* an empty paper tensor still takes one frame */
    }
    if (frames > (reliable ? (size_t)TS_MAX_CHUNKS : (size_t)INT_MAX)) {
        return TS_ERR_ARG; /* the chunks field cannot count it */
    }
    return (int)frames;
}

const char *ts_err_name(int err)
{
    switch (err) {
    case TS_OK:
        return "ok";
    case TS_ERR_SHORT:
        return "short";
    case TS_ERR_VERSION:
        return "version";
    case TS_ERR_LENGTH:
        return "length";
    case TS_ERR_CRC:
        return "crc";
    case TS_ERR_TYPE:
        return "type";
    case TS_ERR_FIELD:
        return "field";
    case TS_ERR_ARG:
        return "arg";
    case TS_ERR_NOSPACE:
        return "nospace";
    case TS_ERR_STATE:
        return "state";
    case TS_ERR_TIMEOUT:
        return "timeout";
    default:
        return "unknown";
    }
}
