/*
 * The receiving side of a link: one receive buffer, one tensor at a time, paper mode (frames
 * appended in order, a gap abandons the tensor, a response every `window` frames and at the end)
 * or reliable selective repeat (chunks placed by index within base..base+31, an ACK bitmap every
 * `window` DATA frames and on the LAST chunk, the tensor CRC-32 checked at the end).
 * Semantics: docs/protocol.md ("Sender and receiver (ARQ)").
 */
#include <stdint.h>
#include <string.h>

#include "ts_arq.h"

static uint32_t bit(uint32_t i)
{
    return (uint32_t)1u << i;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int ts_receiver_init(ts_receiver_t *r, const ts_arq_config_t *cfg, uint8_t *buf, size_t capacity,
                     size_t expected_bytes)
{
    if (r == NULL || cfg == NULL || (buf == NULL && capacity > 0)) {
        return TS_ERR_ARG;
    }
    if ((cfg->mode != TS_MODE_PAPER && cfg->mode != TS_MODE_RELIABLE) || cfg->window < 1 ||
        cfg->window > TS_MAX_WINDOW) {
        return TS_ERR_ARG;
    }
    if (cfg->mode == TS_MODE_PAPER ? expected_bytes > capacity
                                   : capacity < TS_TENSOR_CRC_BYTES) {
        return TS_ERR_ARG;
    }
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->buf = buf;
    r->capacity = capacity;
    r->expected_bytes = expected_bytes;
    return TS_OK;
}

static int make_ack(const ts_receiver_t *r, uint16_t inference, uint32_t base, uint32_t chunks,
                    uint32_t bitmap, uint8_t *reply, size_t cap)
{
    uint8_t payload[TS_ACK_BITMAP_BYTES];
    put_u32(payload, bitmap);
    ts_frame_header_t h = {
        .type = TS_FRAME_ACK,
        .stage = r->cfg.stage,
        .inference = inference,
        .chunk = (uint16_t)base,
        .chunks = (uint16_t)chunks,
        .length = TS_ACK_BITMAP_BYTES,
    };
    return ts_frame_encode(&h, payload, sizeof payload, reply, cap);
}

static int make_nack(const ts_receiver_t *r, const ts_frame_header_t *data, uint8_t reason,
                     uint8_t *reply, size_t cap)
{
    ts_frame_header_t h = {
        .type = TS_FRAME_NACK,
        .stage = r->cfg.stage,
        .inference = data->inference,
        .chunk = data->chunk,
        .chunks = data->chunks,
        .length = TS_NACK_BYTES,
    };
    return ts_frame_encode(&h, &reason, 1, reply, cap);
}

/* The answer to a chunk of a tensor already complete: its completion ACK again, since the
 * sender evidently missed it. */
static int ack_complete(const ts_receiver_t *r, uint8_t *reply, size_t cap)
{
    if (r->cfg.stream) {
        return 0;
    }
    return make_ack(r, r->done_inference, r->done_chunks, r->done_chunks, 0, reply, cap);
}

/* The newest inference this receiver has seen, if any. */
static int newest(const ts_receiver_t *r, uint16_t *inference)
{
    if (r->state != TS_RECEIVER_IDLE) {
        *inference = r->inference;
        return 1;
    }
    *inference = r->done_inference;
    return r->has_done;
}

/* A late frame of one of the few inferences before the newest (reordered or resent after its
 * tensor was done): never the start of a new tensor. Serial-number arithmetic (wraps). */
static int is_stale(const ts_receiver_t *r, uint16_t inference)
{
    uint16_t ref;
    if (!newest(r, &ref)) {
        return 0;
    }
    uint16_t behind = (uint16_t)(ref - inference);
    return behind >= 1 && behind <= TS_ARQ_STALE_INFERENCES;
}

/* Forget the chunks of the tensor being received (a bad CRC-32: the sender starts over). */
static void clear_chunks(ts_receiver_t *r)
{
    r->base = 0;
    r->have = 0;
    r->chunk_bytes = 0;
    r->last_bytes = 0;
    r->since_answer = 0;
}

/* Would a tensor of `chunks` chunks of `chunk_bytes` (the last at least 1 B) overflow? */
static int too_large(const ts_receiver_t *r, uint32_t chunks, uint32_t chunk_bytes,
                     uint32_t last_bytes)
{
    uint64_t need = (uint64_t)(chunks - 1u) * chunk_bytes + (last_bytes > 0 ? last_bytes : 1u);
    return need > r->capacity;
}

/* Every chunk is in: check the tensor CRC-32 (LE after the tensor). */
static int complete(ts_receiver_t *r, uint8_t *reply, size_t cap, ts_rx_event_t *ev)
{
    size_t total = (size_t)(r->chunks - 1u) * r->chunk_bytes + r->last_bytes;
    int good = total >= TS_TENSOR_CRC_BYTES;
    size_t bytes = good ? total - TS_TENSOR_CRC_BYTES : 0;
    if (good) {
        good = ts_crc32(r->buf, bytes) == get_u32(r->buf + bytes);
    }
    if (!good) {
        ts_frame_header_t h = {.inference = r->inference, .chunks = (uint16_t)r->chunks};
        ev->crc_error = 1;
        clear_chunks(r);
        return make_nack(r, &h, TS_NACK_TENSOR_CRC, reply, cap);
    }
    r->state = TS_RECEIVER_COMPLETE;
    r->bytes = bytes;
    r->has_done = 1;
    r->done_inference = r->inference;
    r->done_chunks = (uint16_t)r->chunks;
    ev->completed = 1;
    return ack_complete(r, reply, cap);
}

int ts_receiver_on_data(ts_receiver_t *r, const ts_frame_header_t *h, const uint8_t *payload,
                        uint8_t *reply, size_t reply_cap, ts_rx_event_t *ev)
{
    if (r == NULL || h == NULL || ev == NULL || reply == NULL ||
        reply_cap < TS_ARQ_REPLY_MAX_BYTES || (payload == NULL && h->length > 0)) {
        return TS_ERR_ARG;
    }
    memset(ev, 0, sizeof *ev);
    if (r->cfg.mode != TS_MODE_RELIABLE || h->type != TS_FRAME_DATA || h->chunks == 0 ||
        h->chunk >= h->chunks || h->length == 0) {
        ev->malformed = 1;
        return 0;
    }
    uint16_t inference = h->inference;
    if (r->state == TS_RECEIVER_COMPLETE) {
        if (inference == r->inference || is_stale(r, inference)) {
            ev->duplicate = 1;
            int done = r->has_done && inference == r->done_inference;
            return done ? ack_complete(r, reply, reply_cap) : 0;
        }
        ev->busy = 1; /* the buffer holds a tensor the stage has not consumed yet */
        return make_nack(r, h, TS_NACK_BUSY, reply, reply_cap);
    }
    int current = r->state == TS_RECEIVER_RECEIVING && inference == r->inference;
    if (!current && r->has_done && inference == r->done_inference) {
        ev->duplicate = 1;
        return ack_complete(r, reply, reply_cap);
    }
    if (!current && is_stale(r, inference)) {
        ev->duplicate = 1;
        return 0;
    }
    uint32_t chunk = h->chunk;
    uint32_t len = h->length;
    int last = chunk + 1u == h->chunks;
    if (!current) {
        if (last && h->chunks > 1u) {
            return 0; /* the chunk size is unknown until a full chunk arrives; it will be resent */
        }
        if (too_large(r, h->chunks, len, h->chunks == 1u ? len : 0)) {
            ev->too_large = 1;
            return make_nack(r, h, TS_NACK_TOO_LARGE, reply, reply_cap);
        }
        if (r->state == TS_RECEIVER_RECEIVING) {
            ev->dropped = 1; /* a newer tensor: the sender gave up the partial one */
        }
        r->state = TS_RECEIVER_RECEIVING;
        r->inference = inference;
        r->exponent = h->exponent;
        r->chunks = h->chunks;
        clear_chunks(r);
        ev->started = 1;
    }
    if (h->chunks != r->chunks || h->exponent != r->exponent) {
        ev->malformed = 1;
        return 0;
    }
    r->since_answer++;
    if (!last) {
        if (r->chunk_bytes == 0) {
            if (too_large(r, r->chunks, len, 0)) {
                ev->too_large = 1;
                r->state = TS_RECEIVER_IDLE;
                return make_nack(r, h, TS_NACK_TOO_LARGE, reply, reply_cap);
            }
            r->chunk_bytes = len;
        } else if (len != r->chunk_bytes) {
            ev->malformed = 1;
            return 0;
        }
    } else if (r->chunks > 1u && r->chunk_bytes == 0) {
        return 0; /* after a CRC reset: wait for a full chunk to learn the size */
    } else if (r->chunks > 1u && len > r->chunk_bytes) {
        ev->malformed = 1;
        return 0;
    } else if (too_large(r, r->chunks, r->chunk_bytes, len)) {
        ev->too_large = 1;
        r->state = TS_RECEIVER_IDLE;
        return make_nack(r, h, TS_NACK_TOO_LARGE, reply, reply_cap);
    }
    if (chunk < r->base || (chunk - r->base < 32u && (r->have & bit(chunk - r->base)) != 0)) {
        ev->duplicate = 1;
    } else if (chunk - r->base < 32u) {
        memcpy(r->buf + (size_t)chunk * r->chunk_bytes, payload, len);
        if (last) {
            r->last_bytes = len;
        }
        r->have |= bit(chunk - r->base);
        while ((r->have & 1u) != 0) {
            r->have >>= 1;
            r->base++;
        }
        ev->accepted = 1;
        if (r->base == r->chunks) {
            return complete(r, reply, reply_cap, ev);
        }
    }
    /* chunks beyond base + 31 are ignored: the sender never has them unacknowledged */
    if (r->cfg.stream || (r->since_answer < r->cfg.window && !last)) {
        return 0;
    }
    r->since_answer = 0;
    return make_ack(r, r->inference, r->base, r->chunks, r->have, reply, reply_cap);
}

static int paper_response(const ts_receiver_t *r, uint32_t inference, uint32_t index,
                          uint8_t *reply, size_t cap)
{
    if (r->cfg.stream) {
        return 0;
    }
    return ts_paper_encode(inference, index, NULL, 0, reply, cap);
}

int ts_receiver_on_paper(ts_receiver_t *r, uint32_t inference, uint32_t index,
                         const uint8_t *payload, size_t payload_len, uint8_t *reply,
                         size_t reply_cap, ts_rx_event_t *ev)
{
    if (r == NULL || ev == NULL || reply == NULL || reply_cap < TS_ARQ_REPLY_MAX_BYTES ||
        (payload == NULL && payload_len > 0)) {
        return TS_ERR_ARG;
    }
    memset(ev, 0, sizeof *ev);
    if (r->cfg.mode != TS_MODE_PAPER) {
        ev->malformed = 1;
        return 0;
    }
    uint16_t inf16 = (uint16_t)inference;
    int current = r->state != TS_RECEIVER_IDLE && inference == (uint32_t)r->inference;
    if (r->state == TS_RECEIVER_COMPLETE) {
        if (current) {
            ev->duplicate = 1;
        } else if (index == 0) {
            ev->dropped = 1; /* no flow control in the paper's protocol: no room, no response */
        }
        return 0;
    }
    if (current && index + 1u == r->next_index) {
        ev->duplicate = 1; /* the same frame twice (a duplicating link): the data is the same */
        return 0;
    }
    if (index == 0) {
        if (r->state == TS_RECEIVER_RECEIVING) {
            ev->dropped = 1;
        }
        r->state = TS_RECEIVER_RECEIVING;
        r->inference = inf16;
        r->exponent = r->cfg.paper_exponent; /* paper frames carry none */
        r->bytes = 0;
        r->next_index = 0;
        ev->started = 1;
        current = (uint32_t)inf16 == inference;
    }
    if (r->state != TS_RECEIVER_RECEIVING) {
        return 0; /* the rest of an abandoned tensor */
    }
    if (!current || index != r->next_index || payload_len > r->expected_bytes - r->bytes) {
        /* A lost (or reordered) frame: the paper's receiver cannot repair it. No response, so
         * the sender times out and counts the failure. */
        r->state = TS_RECEIVER_IDLE;
        ev->dropped = 1;
        return 0;
    }
    if (payload_len > 0) {
        memcpy(r->buf + r->bytes, payload, payload_len);
    }
    r->bytes += payload_len;
    r->next_index++;
    ev->accepted = 1;
    if (r->bytes == r->expected_bytes) {
        r->state = TS_RECEIVER_COMPLETE;
        r->has_done = 1;
        r->done_inference = r->inference;
        ev->completed = 1;
        return paper_response(r, inference, index, reply, reply_cap);
    }
    if (r->next_index % r->cfg.window == 0) {
        return paper_response(r, inference, index, reply, reply_cap);
    }
    return 0;
}

int ts_receiver_abort(ts_receiver_t *r, uint16_t inference)
{
    if (r == NULL || r->state != TS_RECEIVER_RECEIVING || r->inference != inference) {
        return 0;
    }
    r->state = TS_RECEIVER_IDLE;
    return 1;
}

int ts_receiver_hold(ts_receiver_t *r, uint16_t inference, size_t bytes, int8_t exponent)
{
    if (r == NULL || bytes > r->capacity) {
        return TS_ERR_ARG;
    }
    if (r->state != TS_RECEIVER_IDLE) {
        return TS_ERR_STATE;
    }
    r->state = TS_RECEIVER_COMPLETE;
    r->inference = inference;
    r->bytes = bytes;
    r->exponent = exponent;
    return TS_OK;
}

const uint8_t *ts_receiver_tensor(const ts_receiver_t *r, size_t *bytes, uint16_t *inference,
                                  int8_t *exponent)
{
    if (r == NULL || r->state != TS_RECEIVER_COMPLETE) {
        return NULL;
    }
    if (bytes != NULL) {
        *bytes = r->bytes;
    }
    if (inference != NULL) {
        *inference = r->inference;
    }
    if (exponent != NULL) {
        *exponent = r->exponent;
    }
    return r->buf;
}

void ts_receiver_release(ts_receiver_t *r)
{
    if (r != NULL && r->state == TS_RECEIVER_COMPLETE) {
        r->state = TS_RECEIVER_IDLE;
    }
}

void ts_receiver_reset(ts_receiver_t *r)
{
    if (r == NULL) {
        return;
    }
    r->state = TS_RECEIVER_IDLE;
    r->has_done = 0;
    r->bytes = 0;
    clear_chunks(r);
}

ts_receiver_state_t ts_receiver_state(const ts_receiver_t *r)
{
    return r->state;
}
