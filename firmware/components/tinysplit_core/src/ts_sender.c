/*
 * The sending side of a link: one tensor at a time, paper mode (windows of frames, a response
 * per window, a missing response fails the tensor) or reliable selective repeat (at most
 * min(2 * window, 32) chunks unacknowledged, SACK-style loss detection by send order, timeouts).
 * Semantics: docs/protocol.md ("Sender and receiver (ARQ)"); the simulator's link models
 * (tinysplit.links) assume the same frame and answer counts.
 */
#include <stdint.h>
#include <string.h>

#include "ts_arq.h"

#define NO_DEADLINE INT64_MAX

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint32_t bit(uint32_t i)
{
    return (uint32_t)1u << i;
}

static int reliable(const ts_sender_t *t)
{
    return t->cfg.mode == TS_MODE_RELIABLE;
}

/* Unacknowledged chunks the receiver may not hold yet: the window's budget is counted on them. */
static uint32_t limit(const ts_sender_t *t)
{
    uint32_t twice = 2u * ts_sender_window(t);
    return twice < TS_ARQ_MAX_OUTSTANDING ? twice : TS_ARQ_MAX_OUTSTANDING;
}

/* Bits of the chunks [base, next) sent in this attempt (next - base <= 32). */
static uint32_t sent_mask(const ts_sender_t *t)
{
    uint32_t n = t->next - t->base;
    return n >= 32u ? UINT32_MAX : bit(n) - 1u;
}

static uint32_t popcount(uint32_t v)
{
    uint32_t n = 0;
    while (v != 0) {
        v &= v - 1u;
        n++;
    }
    return n;
}

static uint32_t lowest_bit(uint32_t v)
{
    uint32_t i = 0;
    while ((v & 1u) == 0) {
        v >>= 1;
        i++;
    }
    return i;
}

static void fail(ts_sender_t *t, ts_send_fail_t why)
{
    t->state = TS_SENDER_FAILED;
    t->fail = why;
    t->deadline_us = NO_DEADLINE;
}

/* Start (again) from the first frame; the receiver holds nothing of this attempt. */
static void restart(ts_sender_t *t, int64_t now_us)
{
    t->next = 0;
    t->base = 0;
    t->acked = 0;
    t->resend = 0;
    t->waiting = 0;
    t->pending_last = 0;
    t->busy = 0;
    t->timeouts_in_row = 0;
    t->progress_us = now_us;
    t->deadline_us = NO_DEADLINE;
}

int ts_sender_init(ts_sender_t *t, const ts_arq_config_t *cfg)
{
    if (t == NULL || cfg == NULL) {
        return TS_ERR_ARG;
    }
    if (cfg->mode != TS_MODE_PAPER && cfg->mode != TS_MODE_RELIABLE) {
        return TS_ERR_ARG;
    }
    if (cfg->window < 1 || cfg->window > TS_MAX_WINDOW || cfg->frame_bytes > TS_MAX_FRAME_BYTES ||
        ts_data_payload_bytes(cfg->frame_bytes, cfg->mode == TS_MODE_RELIABLE) < 2) {
        return TS_ERR_ARG;
    }
    if (!cfg->stream && cfg->ack_timeout_us == 0) {
        return TS_ERR_ARG; /* a zero timeout would fire before any answer could arrive */
    }
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->deadline_us = NO_DEADLINE;
    return TS_OK;
}

int ts_sender_start(ts_sender_t *t, const uint8_t *data, size_t bytes, uint16_t inference,
                    int8_t exponent, int64_t now_us)
{
    if (t == NULL || (data == NULL && bytes > 0)) {
        return TS_ERR_ARG;
    }
    if (t->state == TS_SENDER_ACTIVE) {
        return TS_ERR_STATE;
    }
    int frames = ts_frames_for_tensor(bytes, t->cfg.frame_bytes, reliable(t));
    if (frames < 0) {
        return TS_ERR_ARG; /* more chunks than the header's 16-bit count */
    }
    t->state = TS_SENDER_ACTIVE;
    t->fail = TS_SEND_FAIL_NONE;
    t->data = data;
    t->bytes = bytes;
    t->inference = inference;
    t->exponent = exponent;
    t->payload = (uint32_t)ts_data_payload_bytes(t->cfg.frame_bytes, reliable(t));
    t->frames = (uint32_t)frames;
    t->crc = reliable(t) ? ts_crc32(data, bytes) : 0;
    t->max_sent = 0;
    t->any_sent = 0;
    restart(t, now_us);
    return TS_OK;
}

/* Paper frame `index`: timer id + the next slice of raw tensor bytes. */
static int build_paper(ts_sender_t *t, uint32_t index)
{
    size_t off = (size_t)index * t->payload;
    size_t len = t->bytes - off < t->payload ? t->bytes - off : t->payload;
    return ts_paper_encode(t->inference, index, len > 0 ? t->data + off : NULL, len, t->frame,
                           sizeof t->frame);
}

/* Reliable chunk `index` of the stream tensor || CRC-32 (LE), payload built in place. */
static int build_chunk(ts_sender_t *t, uint32_t index, int retransmission)
{
    size_t stream = t->bytes + TS_TENSOR_CRC_BYTES;
    size_t off = (size_t)index * t->payload;
    size_t len = stream - off < t->payload ? stream - off : t->payload;
    uint8_t *p = t->frame + TS_HEADER_BYTES;
    uint8_t crc[TS_TENSOR_CRC_BYTES] = {
        (uint8_t)(t->crc & 0xFFu), (uint8_t)((t->crc >> 8) & 0xFFu),
        (uint8_t)((t->crc >> 16) & 0xFFu), (uint8_t)(t->crc >> 24)};
    /* The tensor part, then the part of the CRC this chunk carries (it may straddle two). */
    size_t from_data = off < t->bytes ? (t->bytes - off < len ? t->bytes - off : len) : 0;
    if (from_data > 0) {
        memcpy(p, t->data + off, from_data);
    }
    for (size_t i = from_data; i < len; i++) {
        p[i] = crc[off + i - t->bytes];
    }
    uint8_t flags = 0;
    if (index + 1u == t->frames) {
        flags |= TS_FLAG_LAST;
    }
    if (retransmission) {
        flags |= TS_FLAG_RETRANSMISSION;
    }
    ts_frame_header_t h = {
        .type = TS_FRAME_DATA,
        .stage = t->cfg.stage,
        .flags = flags,
        .inference = t->inference,
        .chunk = (uint16_t)index,
        .chunks = (uint16_t)t->frames,
        .length = (uint16_t)len,
        .exponent = t->exponent,
    };
    return ts_frame_encode(&h, p, len, t->frame, sizeof t->frame);
}

/* Reliable, not a stream: the next chunk to send now, or -1. */
static int64_t pick_chunk(ts_sender_t *t, int64_t now_us, int *retransmission)
{
    if (t->resend != 0) {
        uint32_t i = lowest_bit(t->resend);
        t->resend &= ~bit(i);
        *retransmission = 1;
        return (int64_t)t->base + i;
    }
    uint32_t outstanding = popcount(sent_mask(t) & ~t->acked);
    if (t->next < t->frames && t->next - t->base < TS_ARQ_MAX_OUTSTANDING &&
        outstanding < limit(t)) {
        if (outstanding == 0) {
            t->progress_us = now_us; /* the wait for an answer starts with this frame */
        }
        uint32_t c = t->next++;
        *retransmission = c < t->max_sent;
        return c;
    }
    return -1;
}

int ts_sender_next_frame(ts_sender_t *t, int64_t now_us, ts_sender_frame_info_t *info)
{
    if (t == NULL || t->state != TS_SENDER_ACTIVE) {
        return 0;
    }
    if (t->busy) {
        if (now_us < t->busy_until_us) {
            return 0;
        }
        restart(t, now_us);
    }
    int64_t index;
    int retransmission = 0;
    if (t->cfg.stream) {
        /* An ordered reliable transport: everything back to back, no answers. */
        if (t->pending_last || t->next >= t->frames) {
            return 0;
        }
        index = t->next++;
        retransmission = (uint32_t)index < t->max_sent;
        t->pending_last = t->next == t->frames;
    } else if (!reliable(t)) {
        if (t->waiting || t->next >= t->frames) {
            return 0;
        }
        index = t->next++;
        if (t->next % t->cfg.window == 0 || t->next == t->frames) {
            /* End of a window: wait for the response to this frame. */
            t->waiting = 1;
            t->answer_index = (uint32_t)index;
            t->deadline_us = now_us + (int64_t)t->cfg.ack_timeout_us;
        }
    } else {
        index = pick_chunk(t, now_us, &retransmission);
        if (index < 0) {
            return 0;
        }
        t->stamp[(uint32_t)index % TS_ARQ_MAX_OUTSTANDING] = ++t->clock;
    }
    uint32_t c = (uint32_t)index;
    int len = reliable(t) ? build_chunk(t, c, retransmission) : build_paper(t, c);
    if (len <= 0) {
        return len; /* cannot happen with a validated configuration */
    }
    if (info != NULL) {
        info->first = !t->any_sent;
        info->retransmission = (uint8_t)retransmission;
        info->index = (uint16_t)c;
    }
    t->any_sent = 1;
    if (c + 1u > t->max_sent) {
        t->max_sent = c + 1u;
    }
    return len;
}

const uint8_t *ts_sender_frame(const ts_sender_t *t)
{
    return t->frame;
}

void ts_sender_sent(ts_sender_t *t, int accepted, int64_t now_us)
{
    (void)now_us;
    if (t == NULL || t->state != TS_SENDER_ACTIVE || !t->cfg.stream) {
        return; /* elsewhere a refused frame is a lost frame: the protocol repairs or reports it */
    }
    if (!accepted) {
        fail(t, TS_SEND_FAIL_REFUSED);
    } else if (t->pending_last) {
        t->state = TS_SENDER_DONE;
    }
}

/* Reliable ACK: mark what the receiver holds, find lost chunks, slide the window. */
static void on_ack(ts_sender_t *t, const ts_frame_header_t *h, const uint8_t *payload,
                   int64_t now_us)
{
    uint32_t ack_base = h->chunk;
    if (ack_base >= t->frames) {
        t->state = TS_SENDER_DONE; /* only a receiver whose tensor CRC checked says so */
        t->deadline_us = NO_DEADLINE;
        return;
    }
    if (t->busy) {
        return; /* a late ACK of an earlier attempt: this attempt has not started */
    }
    uint32_t bitmap = get_u32(payload);
    uint32_t latest = 0; /* send order of the latest-sent chunk this ACK reports */
    uint32_t progress = 0; /* chunks this ACK acknowledged for the first time */
    for (uint32_t c = t->base; c < t->next; c++) {
        uint32_t i = c - t->base;
        int held = c < ack_base || (c - ack_base < 32u && (bitmap & bit(c - ack_base)) != 0);
        if (!held) {
            continue;
        }
        uint32_t s = t->stamp[c % TS_ARQ_MAX_OUTSTANDING];
        if (s > latest) {
            latest = s;
        }
        if ((t->acked & bit(i)) == 0) {
            t->acked |= bit(i);
            progress++;
        }
        t->resend &= ~bit(i);
    }
    /* Selective repeat: a chunk sent before one the receiver holds, and not held, was lost. */
    uint32_t known_lost = t->resend;
    for (uint32_t c = t->base; c < t->next; c++) {
        uint32_t i = c - t->base;
        if ((t->acked & bit(i)) == 0 && t->stamp[c % TS_ARQ_MAX_OUTSTANDING] < latest) {
            t->resend |= bit(i);
        }
    }
    if (t->adaptive) {
        if ((t->resend & ~known_lost) != 0) {
            ts_window_on_loss(&t->win);
        }
        if (progress > 0) {
            int64_t waited = now_us - t->progress_us;
            uint32_t interval = waited <= 0 ? 0u
                                : waited >= (int64_t)UINT32_MAX ? UINT32_MAX
                                                                : (uint32_t)waited;
            ts_window_on_ack(&t->win, progress, interval);
        }
    }
    if (progress) {
        t->progress_us = now_us;
        t->timeouts_in_row = 0;
    }
    /* Slide, keeping the last chunk in the window: only the completion ACK ends the tensor. */
    while ((t->acked & 1u) != 0 && t->base + 1u < t->frames) {
        t->acked >>= 1;
        t->resend >>= 1;
        t->base++;
    }
}

int ts_sender_on_answer(ts_sender_t *t, const ts_frame_header_t *h, const uint8_t *payload,
                        int64_t now_us)
{
    if (t == NULL || h == NULL || t->state != TS_SENDER_ACTIVE || !reliable(t) ||
        h->inference != t->inference) {
        return TS_ERR_STATE;
    }
    if (h->type == TS_FRAME_NACK) {
        switch (payload[0]) {
        case TS_NACK_TOO_LARGE:
            fail(t, TS_SEND_FAIL_TOO_LARGE);
            break;
        case TS_NACK_BUSY:
            if (!t->busy) {
                /* The receiver stored nothing of this attempt: all of it again, later. */
                restart(t, now_us);
                t->busy = 1;
                t->busy_until_us = now_us + (int64_t)t->cfg.busy_retry_us;
            }
            break;
        case TS_NACK_TENSOR_CRC:
            restart(t, now_us); /* the receiver dropped every chunk */
            break;
        default:
            return TS_ERR_STATE;
        }
        return TS_OK;
    }
    if (h->type != TS_FRAME_ACK || t->cfg.stream || h->chunks != t->frames) {
        return TS_ERR_STATE;
    }
    on_ack(t, h, payload, now_us);
    return TS_OK;
}

int ts_sender_on_paper_answer(ts_sender_t *t, uint32_t inference, uint32_t index,
                              size_t payload_len, int64_t now_us)
{
    (void)now_us;
    if (t == NULL || t->state != TS_SENDER_ACTIVE || reliable(t) || !t->waiting ||
        inference != t->inference || index != t->answer_index || payload_len != 0) {
        return TS_ERR_STATE;
    }
    t->waiting = 0;
    t->deadline_us = NO_DEADLINE;
    if (t->next >= t->frames) {
        t->state = TS_SENDER_DONE;
    }
    return TS_OK;
}

int ts_sender_poll(ts_sender_t *t, int64_t now_us)
{
    if (t == NULL || t->state != TS_SENDER_ACTIVE || t->cfg.stream) {
        return 0;
    }
    if (!reliable(t)) {
        if (t->waiting && now_us >= t->deadline_us) {
            fail(t, TS_SEND_FAIL_TIMEOUT); /* the paper's behaviour: no retransmission */
            return 1;
        }
        return 0;
    }
    if (t->busy || t->next == 0 || now_us < t->progress_us + (int64_t)t->cfg.ack_timeout_us) {
        return 0;
    }
    uint32_t unacked = sent_mask(t) & ~t->acked;
    if (unacked == 0 && t->next < t->frames) {
        /* Nothing waits for an answer and the window is open: the caller has not sent the next
         * chunk yet (pick_chunk restarts the clock when it does). Not a timeout. */
        return 0;
    }
    t->timeouts_in_row++;
    if (t->adaptive) {
        ts_window_on_timeout(&t->win);
    }
    if (t->cfg.max_timeouts != 0 && t->timeouts_in_row >= t->cfg.max_timeouts) {
        fail(t, TS_SEND_FAIL_TIMEOUT);
        return 1;
    }
    t->resend = unacked;
    if (t->resend == 0) {
        /* Everything reported but no completion ACK: probe with the last chunk. */
        t->resend = bit(t->frames - 1u - t->base);
    }
    t->progress_us = now_us;
    return 1;
}

int64_t ts_sender_deadline_us(const ts_sender_t *t, int64_t now_us)
{
    if (t == NULL || t->state != TS_SENDER_ACTIVE) {
        return NO_DEADLINE;
    }
    if (t->busy) {
        return t->busy_until_us;
    }
    if (t->cfg.stream) {
        return (!t->pending_last && t->next < t->frames) ? now_us : NO_DEADLINE;
    }
    if (!reliable(t)) {
        if (t->waiting) {
            return t->deadline_us;
        }
        return t->next < t->frames ? now_us : NO_DEADLINE;
    }
    if (t->resend != 0) {
        return now_us;
    }
    uint32_t outstanding = popcount(sent_mask(t) & ~t->acked);
    if (t->next < t->frames && t->next - t->base < TS_ARQ_MAX_OUTSTANDING &&
        outstanding < limit(t)) {
        return now_us;
    }
    return t->progress_us + (int64_t)t->cfg.ack_timeout_us;
}

ts_sender_state_t ts_sender_state(const ts_sender_t *t)
{
    return t->state;
}

ts_send_fail_t ts_sender_fail_reason(const ts_sender_t *t)
{
    return t->fail;
}

uint16_t ts_sender_inference(const ts_sender_t *t)
{
    return t->inference;
}

void ts_sender_reset(ts_sender_t *t)
{
    if (t == NULL) {
        return;
    }
    t->state = TS_SENDER_IDLE;
    t->fail = TS_SEND_FAIL_NONE;
    t->data = NULL;
    t->bytes = 0;
    t->frames = 0;
    restart(t, 0);
}

int ts_sender_set_adaptive(ts_sender_t *t, int on)
{
    if (t == NULL) {
        return TS_ERR_ARG;
    }
    if (t->state == TS_SENDER_ACTIVE) {
        return TS_ERR_STATE;
    }
    t->adaptive = (uint8_t)(on && reliable(t) && !t->cfg.stream);
    if (t->adaptive) {
        uint16_t cadence = t->cfg.window;
        return ts_window_init(&t->win, cadence, ts_window_min_for_cadence(cadence),
                              TS_MAX_WINDOW);
    }
    return TS_OK;
}

uint16_t ts_sender_window(const ts_sender_t *t)
{
    return t->adaptive ? ts_window_current(&t->win) : t->cfg.window;
}
