/*
 * Window / ARQ state machines of one link (portable, no ESP-IDF): the sender of a tensor and the
 * receiver of tensors, in the paper's mode and in reliable selective repeat. Both are
 * non-blocking: the caller (the stage runner, ts_stage.c) hands them frames and the clock and
 * sends the frames they produce. Neither allocates; the tensor buffers belong to the caller.
 * Semantics, shared with the simulator's link models: docs/protocol.md ("Sender and receiver
 * (ARQ)").
 *
 * Sender, per tensor:
 *
 *     ts_sender_start(tx, data, bytes, inference, exponent, now);
 *     loop: while ((n = ts_sender_next_frame(tx, now, &info)) > 0) {
 *               ok = transport_send(ts_sender_frame(tx), n);
 *               ts_sender_sent(tx, ok, now);
 *           }
 *           feed answers (ts_sender_on_answer / ts_sender_on_paper_answer), call
 *           ts_sender_poll(tx, now) at ts_sender_deadline_us(tx, now)
 *     until ts_sender_state(tx) is TS_SENDER_DONE or TS_SENDER_FAILED, then ts_sender_reset(tx).
 *
 * Receiver: ts_receiver_on_data / ts_receiver_on_paper for every DATA frame, send the reply frame
 * they write (if any), and once an event says `completed`, consume ts_receiver_tensor() and call
 * ts_receiver_release().
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ts_frame.h"
#include "ts_window.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Protocol mode of a pipeline (every link uses the same). */
typedef enum {
    TS_MODE_PAPER = 0,    /* the paper's frames: 8 B timer id + raw int16, no retransmission */
    TS_MODE_RELIABLE = 1, /* header frames, CRC-16 per frame, CRC-32 per tensor, selective repeat */
} ts_mode_t;

#define TS_MAX_WINDOW 16            /* largest `window` (DATA frames per answer) */
#define TS_ARQ_MAX_OUTSTANDING 32   /* reliable: unacknowledged chunks at most (ACK bitmap bits) */
#define TS_ARQ_STALE_INFERENCES 8   /* DATA of the last few inferences before the newest one a
                                       receiver saw is a late duplicate, not a new tensor */
#define TS_ARQ_REPLY_MAX_BYTES (TS_HEADER_BYTES + 8) /* largest reply a receiver writes */

/** Link parameters shared by the sender and the receiver of a stage. Times in microseconds. */
typedef struct {
    ts_mode_t mode;
    uint8_t stage;           /* 1-based stage written into the headers this side sends */
    uint16_t window;         /* DATA frames per answer, 1..TS_MAX_WINDOW */
    uint16_t frame_bytes;    /* largest DATA frame, header included, <= TS_MAX_FRAME_BYTES */
    uint8_t stream;          /* 1: an ordered reliable byte stream (TCP): no ACKs, no paper
                                responses (NACKs still flow) */
    uint32_t ack_timeout_us; /* paper: wait for a response; reliable: resend after no progress */
    uint32_t busy_retry_us;  /* reliable: after a NACK BUSY, restart the tensor this much later */
    uint16_t max_timeouts;   /* reliable: timeouts in a row before the tensor fails (0: never) */
    int8_t paper_exponent;   /* paper: exponent of received tensors (paper frames carry none) */
} ts_arq_config_t;

/** Sender states. */
typedef enum {
    TS_SENDER_IDLE = 0, /* no tensor */
    TS_SENDER_ACTIVE,   /* sending or waiting for answers */
    TS_SENDER_DONE,     /* delivered: answered (paper), completion ACK (reliable) or, on a
                           stream, the transport accepted the last frame */
    TS_SENDER_FAILED,   /* given up, see ts_send_fail_t */
} ts_sender_state_t;

/** Why a tensor failed. */
typedef enum {
    TS_SEND_FAIL_NONE = 0,
    TS_SEND_FAIL_TIMEOUT = 1,   /* paper: no response in ack_timeout_us; reliable: max_timeouts
                                   timeouts in a row without progress */
    TS_SEND_FAIL_TOO_LARGE = 2, /* the receiver answered NACK TOO_LARGE */
    TS_SEND_FAIL_REFUSED = 3,   /* stream: the transport refused a frame (the stream is broken) */
} ts_send_fail_t;

/** What ts_sender_next_frame produced. */
typedef struct {
    uint8_t first;          /* the tensor's first DATA frame (the TX_START scribe mark) */
    uint8_t retransmission; /* this chunk was sent before */
    uint16_t index;         /* chunk (reliable) or frame (paper) index */
} ts_sender_frame_info_t;

/** The sender of one link; fields are private. */
typedef struct {
    ts_arq_config_t cfg;
    ts_sender_state_t state;
    ts_send_fail_t fail;
    const uint8_t *data;     /* the tensor being sent (caller's buffer, unchanged until done) */
    size_t bytes;
    uint16_t inference;
    int8_t exponent;
    uint32_t crc;            /* reliable: CRC-32 of the tensor, sent LE after it */
    uint32_t payload;        /* tensor bytes per full frame */
    uint32_t frames;         /* DATA frames (chunks) of the tensor */
    uint32_t next;           /* next frame never sent in this attempt */
    uint32_t max_sent;       /* frames [0, max_sent) were sent in some attempt */
    uint8_t any_sent;        /* a DATA frame of this tensor went out */
    uint8_t pending_last;    /* stream: the frame just handed over is the last one */
    /* paper */
    uint8_t waiting;         /* waiting for the response to frame answer_index */
    uint32_t answer_index;
    /* reliable selective repeat; bit i of the masks is chunk base + i */
    uint32_t base;           /* first chunk not known to be received */
    uint32_t acked;          /* chunks the receiver reported */
    uint32_t resend;         /* chunks to send again */
    uint32_t stamp[TS_ARQ_MAX_OUTSTANDING]; /* send order of chunk c at [c % 32] */
    uint32_t clock;          /* send order counter */
    uint16_t timeouts_in_row;
    uint8_t busy;            /* NACK BUSY: restart at busy_until_us */
    int64_t busy_until_us;
    int64_t progress_us;     /* last progress (start, an ACK that acknowledged something new) */
    int64_t deadline_us;     /* paper: response deadline; INT64_MAX when none */
    uint8_t adaptive;        /* reliable, not a stream: `win` sets the chunks in flight */
    ts_window_t win;         /* adaptive window, kept from one tensor to the next */
    uint8_t frame[TS_MAX_FRAME_BYTES]; /* the frame ts_sender_next_frame built */
} ts_sender_t;

/** Receiver states. */
typedef enum {
    TS_RECEIVER_IDLE = 0,  /* the buffer is free */
    TS_RECEIVER_RECEIVING, /* a tensor is arriving */
    TS_RECEIVER_COMPLETE,  /* the buffer holds a complete tensor until ts_receiver_release */
} ts_receiver_state_t;

/** What one DATA frame did to the receiver (all zero: ignored). */
typedef struct {
    uint8_t started;   /* first accepted frame of a new tensor (the RX_START scribe mark) */
    uint8_t accepted;  /* new tensor data stored */
    uint8_t completed; /* the tensor is complete and checked (the RX_END scribe mark) */
    uint8_t duplicate; /* data already held, or a late frame of an earlier tensor */
    uint8_t dropped;   /* a partial tensor was abandoned (paper gap, replaced, no room) */
    uint8_t crc_error; /* reliable: every chunk arrived but the tensor CRC-32 failed */
    uint8_t busy;      /* answered NACK BUSY */
    uint8_t too_large; /* answered NACK TOO_LARGE */
    uint8_t malformed; /* inconsistent with the tensor being received (sizes, counts) */
} ts_rx_event_t;

/** The receiver of one link; fields are private. */
typedef struct {
    ts_arq_config_t cfg;
    ts_receiver_state_t state;
    uint8_t *buf;            /* receive buffer: the tensor stream (reliable: + CRC-32) */
    size_t capacity;         /* bytes of buf */
    size_t expected_bytes;   /* paper: the tensor size the receiver expects */
    uint16_t inference;      /* tensor being received or held */
    int8_t exponent;
    size_t bytes;            /* paper: bytes received so far; complete: tensor bytes */
    uint32_t chunks;         /* reliable: chunk count of the tensor */
    uint32_t chunk_bytes;    /* reliable: payload of a non-LAST chunk, 0 until known */
    uint32_t last_bytes;     /* reliable: payload of the LAST chunk, 0 until received */
    uint32_t base;           /* reliable: chunks < base received */
    uint32_t have;           /* reliable: bit i = chunk base + i received */
    uint32_t next_index;     /* paper: next frame index */
    uint32_t since_answer;   /* DATA frames since the last answer */
    uint8_t has_done;        /* done_inference is valid */
    uint16_t done_inference; /* the last tensor completed (answers its duplicates) */
    uint16_t done_chunks;
} ts_receiver_t;

/* --- sender ----------------------------------------------------------------------------- */

/** Set up an idle sender. TS_ERR_ARG on an invalid configuration (window, frame size, mode). */
int ts_sender_init(ts_sender_t *t, const ts_arq_config_t *cfg);

/**
 * Start sending `bytes` bytes at `data` (int16 values, LE) as `inference` with `exponent`.
 * The buffer must stay unchanged until the sender is done or failed. TS_ERR_STATE while another
 * tensor is active, TS_ERR_ARG if it needs more than 65535 frames (reliable) or `data` is NULL
 * with bytes > 0.
 */
int ts_sender_start(ts_sender_t *t, const uint8_t *data, size_t bytes, uint16_t inference,
                    int8_t exponent, int64_t now_us);

/**
 * Build the next frame the protocol allows at `now_us` into the sender's frame buffer
 * (ts_sender_frame). Returns its length (> 0), 0 when nothing may be sent now. After handing
 * the frame to the transport, call ts_sender_sent.
 */
int ts_sender_next_frame(ts_sender_t *t, int64_t now_us, ts_sender_frame_info_t *info);

/** The frame the last ts_sender_next_frame built. */
const uint8_t *ts_sender_frame(const ts_sender_t *t);

/** Report whether the transport accepted the frame just built (stream: completes the tensor or,
 *  when refused, fails it; other links: a refused frame counts as lost). */
void ts_sender_sent(ts_sender_t *t, int accepted, int64_t now_us);

/** A decoded ACK or NACK from the receiver (reliable mode). Frames of other inferences are
 *  ignored. Returns TS_OK, or TS_ERR_STATE when ignored. */
int ts_sender_on_answer(ts_sender_t *t, const ts_frame_header_t *h, const uint8_t *payload,
                        int64_t now_us);

/** A paper-mode response (timer id `inference`, `index`, no payload). TS_OK or TS_ERR_STATE. */
int ts_sender_on_paper_answer(ts_sender_t *t, uint32_t inference, uint32_t index,
                              size_t payload_len, int64_t now_us);

/** Handle a due deadline at `now_us`. Returns the number of timeouts that fired (0 or 1). */
int ts_sender_poll(ts_sender_t *t, int64_t now_us);

/** Earliest time ts_sender_poll or ts_sender_next_frame has work (INT64_MAX: none; a time
 *  <= now when a frame may be sent at once). */
int64_t ts_sender_deadline_us(const ts_sender_t *t, int64_t now_us);

ts_sender_state_t ts_sender_state(const ts_sender_t *t);
ts_send_fail_t ts_sender_fail_reason(const ts_sender_t *t);
uint16_t ts_sender_inference(const ts_sender_t *t);

/** Forget the tensor (done, failed or active) and return to idle. */
void ts_sender_reset(ts_sender_t *t);

/**
 * Adaptive window (docs/protocol.md "Adaptive window"): with `on`, a reliable, non-stream sender
 * keeps min(2 w, 32) chunks unacknowledged where w adapts per ACK (ts_window.h) between
 * ts_window_min_for_cadence(cfg.window) and TS_MAX_WINDOW, starting at cfg.window; the
 * receiver's ACK cadence stays cfg.window. Paper mode and streams keep the fixed window (the
 * call is accepted and changes nothing). Resets what the controller learned. TS_ERR_STATE while
 * a tensor is active.
 */
int ts_sender_set_adaptive(ts_sender_t *t, int on);

/** Window the sender uses now: the adaptive one when enabled, else cfg.window. */
uint16_t ts_sender_window(const ts_sender_t *t);

/* --- receiver --------------------------------------------------------------------------- */

/**
 * Set up an idle receiver on `buf` of `capacity` bytes. Paper mode fills exactly
 * `expected_bytes` (<= capacity); reliable mode takes any tensor whose stream (tensor + 4 B
 * CRC-32) fits `capacity`. TS_ERR_ARG on an invalid configuration.
 */
int ts_receiver_init(ts_receiver_t *r, const ts_arq_config_t *cfg, uint8_t *buf, size_t capacity,
                     size_t expected_bytes);

/**
 * A decoded reliable DATA frame. Writes the answer (ACK or NACK, nothing on a stream except
 * NACKs) into `reply` and returns its length, 0 for none, or a negative code for a caller error.
 * `*ev` says what happened. `reply_cap` >= TS_ARQ_REPLY_MAX_BYTES.
 */
int ts_receiver_on_data(ts_receiver_t *r, const ts_frame_header_t *h, const uint8_t *payload,
                        uint8_t *reply, size_t reply_cap, ts_rx_event_t *ev);

/** A paper-mode DATA frame (decoded timer id and payload); the reply is a response frame. */
int ts_receiver_on_paper(ts_receiver_t *r, uint32_t inference, uint32_t index,
                         const uint8_t *payload, size_t payload_len, uint8_t *reply,
                         size_t reply_cap, ts_rx_event_t *ev);

/** CTRL ABORT of `inference`: drop that partial tensor. Returns 1 if one was dropped. */
int ts_receiver_abort(ts_receiver_t *r, uint16_t inference);

/** Mark the buffer as holding a complete tensor written by the caller (an injected input):
 *  DATA now gets NACK BUSY until ts_receiver_release. TS_ERR_STATE unless idle. */
int ts_receiver_hold(ts_receiver_t *r, uint16_t inference, size_t bytes, int8_t exponent);

/** The complete tensor (NULL unless complete): its bytes, inference and exponent. */
const uint8_t *ts_receiver_tensor(const ts_receiver_t *r, size_t *bytes, uint16_t *inference,
                                  int8_t *exponent);

/** The complete tensor has been consumed: the buffer is free for the next one. */
void ts_receiver_release(ts_receiver_t *r);

/** Drop any tensor and forget the last completed inference. */
void ts_receiver_reset(ts_receiver_t *r);

ts_receiver_state_t ts_receiver_state(const ts_receiver_t *r);

#ifdef __cplusplus
}
#endif
