/*
 * The stage runner: receive a tensor from the previous stage -> run the slice -> send the result
 * to the next stage (portable, no ESP-IDF). Event-driven and single-threaded: the caller feeds
 * received frames and the clock, the runner calls back to send frames, infer and mark events.
 * The same code runs on the boards (ESP-IDF glue in esp/) and on the host (host_test/).
 * Semantics of both protocol modes: docs/protocol.md.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ts_arq.h"
#include "ts_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The two links of a stage. */
typedef enum {
    TS_LINK_UP = 0,   /* to the previous stage: DATA in, ACK / NACK out */
    TS_LINK_DOWN = 1, /* to the next stage: DATA out, ACK / NACK in */
} ts_link_t;

/** Scribe events of one inference on one stage, in the order they happen (docs/protocol.md). */
typedef enum {
    TS_MARK_RX_START = 1,
    TS_MARK_RX_END = 2,
    TS_MARK_INFER_START = 3,
    TS_MARK_INFER_END = 4,
    TS_MARK_TX_START = 5,
    TS_MARK_TX_END = 6,
} ts_mark_t;

/** What the stage runner needs from its environment. `ctx` is passed back to every call. */
typedef struct {
    /* Hand one frame to the transport towards `link`. TS_OK, or a negative code when the
     * transport refused it (paper mode: a silent drop the protocol must survive or report). */
    int (*send)(void *ctx, ts_link_t link, const uint8_t *frame, size_t len);
    /* Run the slice on `in` (int16, NHWC, real = v * 2^in_exponent); write at most out_capacity
     * values and their exponent. TS_OK or a negative code (the inference counts as failed). */
    int (*infer)(void *ctx, const int16_t *in, size_t in_values, int8_t in_exponent, int16_t *out,
                 size_t out_capacity, size_t *out_values, int8_t *out_exponent);
    /* Optional: a scribe event (GPIO pulse on the boards). */
    void (*mark)(void *ctx, ts_mark_t mark, uint16_t inference);
    /* Last stage only: the model output of `inference`. */
    void (*output)(void *ctx, uint16_t inference, const int16_t *values, size_t count,
                   int8_t exponent);
} ts_stage_ops_t;

/** Stage configuration; times in microseconds. */
typedef struct {
    uint8_t stage;              /* 1-based position in the pipeline */
    uint8_t stages;             /* pipeline length (>= 1) */
    ts_mode_t mode;             /* TS_MODE_PAPER or TS_MODE_RELIABLE */
    uint16_t window;            /* DATA frames per answer, 1..TS_MAX_WINDOW */
    uint16_t frame_bytes;       /* largest frame towards the next stage (header included) */
    uint8_t stream;             /* 1: the downstream transport is an ordered reliable byte
                                   stream (TCP): reliable mode sends no window ACKs */
    uint32_t ack_timeout_us;    /* reliable: resend unacknowledged frames; paper: tensor fails */
    uint32_t busy_retry_us;     /* after a NACK BUSY, retry the tensor this much later */
    uint16_t max_timeouts;      /* reliable: timeouts in a row before the tensor fails (0: never) */
    size_t input_values;        /* input tensor of this slice, int16 values */
    int8_t input_exponent;      /* the slice's input exponent; other exponents are requantized */
    size_t output_values;       /* output buffer capacity, int16 values */
} ts_stage_config_t;

/** Counters since ts_stage_init (or ts_stage_reset_stats). */
typedef struct {
    uint32_t tensors_in;        /* complete input tensors (received or injected) */
    uint32_t tensors_out;       /* tensors delivered downstream (or output by the last stage) */
    uint32_t inference_errors;  /* infer() failures */
    uint32_t send_failures;     /* tensors given up downstream (paper timeout, max_timeouts,
                                   NACK TOO_LARGE) */
    uint32_t tx_frames;         /* DATA frames handed to the transport, retransmissions included */
    uint32_t tx_bytes;
    uint32_t retransmissions;   /* DATA frames sent again */
    uint32_t tx_refused;        /* frames the transport refused (send() < 0) */
    uint32_t timeouts;
    uint32_t rx_frames;         /* frames received and decoded, both links */
    uint32_t rx_bytes;
    uint32_t rx_crc_errors;     /* frames dropped for a bad CRC-16 */
    uint32_t rx_malformed;      /* other undecodable frames */
    uint32_t rx_duplicates;     /* DATA chunks received twice */
    uint32_t rx_dropped_tensors;/* tensors dropped on receipt: paper gap or no room, reliable
                                   CTRL ABORT or replaced by a newer tensor */
    uint32_t tensor_crc_errors; /* reliable: tensors whose CRC-32 failed (NACKed, resent) */
    uint32_t requantized;       /* input tensors requantized to input_exponent */
    uint32_t rtt_us[2];         /* last PING round trip per link, 0 if none */
} ts_stage_stats_t;

/** A stage; allocate statically, fields are private. */
typedef struct {
    ts_stage_config_t cfg;
    const ts_stage_ops_t *ops;
    void *ctx;
    ts_receiver_t rx;
    ts_sender_t tx;
    int16_t *in_buf;            /* input_values int16 + TS_TENSOR_CRC_BYTES */
    int16_t *out_buf;           /* output_values int16 */
    size_t out_values;
    int8_t out_exponent;
    uint16_t in_inference;
    uint8_t in_ready;           /* an input tensor waits for inference */
    uint8_t out_busy;           /* the output buffer is being sent */
    uint16_t out_inference;
    int64_t ping_sent_us[2];
    uint32_t ping_token[2];
    ts_stage_stats_t stats;
} ts_stage_t;

/** Bytes the caller must provide for the input buffer of `input_values` values. */
#define TS_STAGE_INPUT_BUFFER_BYTES(input_values) ((input_values) * 2u + TS_TENSOR_CRC_BYTES)

/** Initialise; TS_ERR_ARG on an invalid configuration (ranges in ts_stage_config_t). */
int ts_stage_init(ts_stage_t *s, const ts_stage_config_t *cfg, const ts_stage_ops_t *ops,
                  void *ctx, void *in_buf, int16_t *out_buf);

/** Stage 1: hand in an input tensor. TS_ERR_STATE while the previous input is not consumed,
 *  TS_ERR_ARG if `count` differs from input_values. Marks RX_START and RX_END. */
int ts_stage_inject(ts_stage_t *s, uint16_t inference, const int16_t *values, size_t count,
                    int8_t exponent, int64_t now_us);

/** Feed one frame received on `from`. Undecodable frames are counted and dropped. */
void ts_stage_on_frame(ts_stage_t *s, ts_link_t from, const uint8_t *frame, size_t len,
                       int64_t now_us);

/**
 * Whether a frame from `from` may be fed now. Always 1, except on a stream (cfg.stream) for the
 * UP link while the input buffer holds a tensor not consumed yet: the receiver would answer the
 * next tensor with NACK BUSY, which a stream sender, done once its transport took the last frame,
 * never heeds, so the tensor would be lost. The caller keeps such frames, in arrival order, and
 * feeds them once this returns 1 again (after ts_stage_poll ran the inference); on the boards
 * the TCP reader meanwhile stops reading and TCP flow control holds the sender back.
 */
int ts_stage_accepts(const ts_stage_t *s, ts_link_t from);

/** Do due work: run a waiting inference, send the frames the window allows, handle timeouts. */
void ts_stage_poll(ts_stage_t *s, int64_t now_us);

/** Earliest time ts_stage_poll has timed work to do (INT64_MAX if none). */
int64_t ts_stage_next_deadline_us(const ts_stage_t *s);

/** Send a CTRL PING on `link`; the PONG fills stats.rtt_us[link]. */
int ts_stage_ping(ts_stage_t *s, ts_link_t link, uint32_t token, int64_t now_us);

/** True when nothing is in flight: no input waiting, no tensor being received or sent. */
int ts_stage_idle(const ts_stage_t *s);

/** Drop every partial tensor (inputs, transfers) and keep the counters. */
void ts_stage_abort(ts_stage_t *s);

const ts_stage_stats_t *ts_stage_stats(const ts_stage_t *s);
void ts_stage_reset_stats(ts_stage_t *s);

/** Requantize int16 values in place from exponent `from` to `to` (round half up, saturate). */
void ts_requantize(int16_t *values, size_t count, int8_t from, int8_t to);

#ifdef __cplusplus
}
#endif
