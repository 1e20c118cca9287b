/*
 * The stage runner: the receiver of the UP link fills the input buffer, the slice runs on it,
 * the sender of the DOWN link drains the output buffer (docs/protocol.md, "Stage runner").
 *
 * Two buffers, as the simulator models a board: the input buffer is free again once inference
 * has run on it (a tensor arriving earlier gets NACK BUSY), the output buffer once the sender is
 * done with it (inference waits until then). So a stage overlaps receiving tensor k+1 and
 * sending k-1 with computing k only as far as these two buffers allow.
 */
#include <stdint.h>
#include <string.h>

#include "ts_stage.h"

#define CTRL_TOKEN_BYTES 5u

static int reliable(const ts_stage_t *s)
{
    return s->cfg.mode == TS_MODE_RELIABLE;
}

static int last_stage(const ts_stage_t *s)
{
    return s->cfg.stage == s->cfg.stages;
}

static void mark(ts_stage_t *s, ts_mark_t m, uint16_t inference)
{
    if (s->ops->mark != NULL) {
        s->ops->mark(s->ctx, m, inference);
    }
}

/* Hand a frame to the transport; refusals are counted here. */
static int send_frame(ts_stage_t *s, ts_link_t link, const uint8_t *frame, size_t len)
{
    int rc = s->ops->send(s->ctx, link, frame, len);
    if (rc < 0) {
        s->stats.tx_refused++;
    }
    return rc;
}

static int send_ctrl(ts_stage_t *s, ts_link_t link, uint8_t op, uint16_t inference,
                     uint32_t token)
{
    uint8_t payload[CTRL_TOKEN_BYTES] = {op, (uint8_t)(token & 0xFFu),
                                         (uint8_t)((token >> 8) & 0xFFu),
                                         (uint8_t)((token >> 16) & 0xFFu), (uint8_t)(token >> 24)};
    size_t len = op == TS_CTRL_ABORT ? 1u : CTRL_TOKEN_BYTES;
    ts_frame_header_t h = {
        .type = TS_FRAME_CTRL,
        .stage = s->cfg.stage,
        .inference = inference,
        .length = (uint16_t)len,
    };
    uint8_t frame[TS_HEADER_BYTES + CTRL_TOKEN_BYTES];
    int n = ts_frame_encode(&h, payload, len, frame, sizeof frame);
    if (n < 0) {
        return n;
    }
    return send_frame(s, link, frame, (size_t)n);
}

int ts_stage_init(ts_stage_t *s, const ts_stage_config_t *cfg, const ts_stage_ops_t *ops,
                  void *ctx, void *in_buf, int16_t *out_buf)
{
    if (s == NULL || cfg == NULL || ops == NULL || in_buf == NULL || out_buf == NULL ||
        ops->send == NULL || ops->infer == NULL) {
        return TS_ERR_ARG;
    }
    if (cfg->stages < 1 || cfg->stage < 1 || cfg->stage > cfg->stages ||
        (cfg->stage == cfg->stages && ops->output == NULL)) {
        return TS_ERR_ARG;
    }
    if (cfg->input_values < 1 || cfg->output_values < 1 ||
        cfg->input_values > (SIZE_MAX - TS_TENSOR_CRC_BYTES) / 2u) {
        return TS_ERR_ARG;
    }
    ts_arq_config_t arq = {
        .mode = cfg->mode,
        .stage = cfg->stage,
        .window = cfg->window,
        .frame_bytes = cfg->frame_bytes,
        .stream = cfg->stream,
        .ack_timeout_us = cfg->ack_timeout_us,
        .busy_retry_us = cfg->busy_retry_us,
        .max_timeouts = cfg->max_timeouts,
        .paper_exponent = cfg->input_exponent,
    };
    memset(s, 0, sizeof *s);
    size_t in_bytes = cfg->input_values * 2u;
    if (ts_receiver_init(&s->rx, &arq, (uint8_t *)in_buf,
                         TS_STAGE_INPUT_BUFFER_BYTES(cfg->input_values), in_bytes) != TS_OK) {
        return TS_ERR_ARG;
    }
    if (cfg->stage < cfg->stages) {
        /* Only a stage with a next stage sends: its link settings must be valid. */
        if (ts_sender_init(&s->tx, &arq) != TS_OK ||
            ts_frames_for_tensor(cfg->output_values * 2u, cfg->frame_bytes,
                                 cfg->mode == TS_MODE_RELIABLE) < 0) {
            return TS_ERR_ARG;
        }
    }
    s->cfg = *cfg;
    s->ops = ops;
    s->ctx = ctx;
    s->in_buf = (int16_t *)in_buf;
    s->out_buf = out_buf;
    s->ping_sent_us[0] = s->ping_sent_us[1] = -1;
    return TS_OK;
}

/* The sender finished (delivered or failed): free the output buffer. */
static void finish_sender(ts_stage_t *s)
{
    ts_sender_state_t st = ts_sender_state(&s->tx);
    if (!s->out_busy || (st != TS_SENDER_DONE && st != TS_SENDER_FAILED)) {
        return;
    }
    uint16_t inference = ts_sender_inference(&s->tx);
    if (st == TS_SENDER_DONE) {
        mark(s, TS_MARK_TX_END, inference);
        s->stats.tensors_out++;
    } else {
        s->stats.send_failures++;
        if (reliable(s) && !s->cfg.stream &&
            ts_sender_fail_reason(&s->tx) == TS_SEND_FAIL_TIMEOUT) {
            /* Best effort: let the next stage drop the partial tensor now. */
            send_ctrl(s, TS_LINK_DOWN, TS_CTRL_ABORT, inference, 0);
        }
    }
    ts_sender_reset(&s->tx);
    s->out_busy = 0;
}

/* Run the slice on the complete input tensor and hand the result to the sender (or output). */
static void run_inference(ts_stage_t *s, int64_t now_us)
{
    size_t bytes = 0;
    uint16_t inference = 0;
    int8_t exponent = 0;
    if (ts_receiver_tensor(&s->rx, &bytes, &inference, &exponent) == NULL) {
        s->in_ready = 0;
        return;
    }
    size_t n = s->cfg.input_values;
    if (bytes != n * 2u) {
        /* A tensor of another size cannot be this slice's input. */
        s->stats.inference_errors++;
        ts_receiver_release(&s->rx);
        s->in_ready = 0;
        return;
    }
    if (exponent != s->cfg.input_exponent) {
        ts_requantize(s->in_buf, n, exponent, s->cfg.input_exponent);
        s->stats.requantized++;
        exponent = s->cfg.input_exponent;
    }
    size_t out_values = 0;
    int8_t out_exponent = 0;
    mark(s, TS_MARK_INFER_START, inference);
    int rc = s->ops->infer(s->ctx, s->in_buf, n, exponent, s->out_buf, s->cfg.output_values,
                           &out_values, &out_exponent);
    mark(s, TS_MARK_INFER_END, inference);
    ts_receiver_release(&s->rx); /* the input buffer is free for the next tensor */
    s->in_ready = 0;
    if (rc < 0 || out_values > s->cfg.output_values) {
        s->stats.inference_errors++;
        return;
    }
    if (last_stage(s)) {
        s->ops->output(s->ctx, inference, s->out_buf, out_values, out_exponent);
        s->stats.tensors_out++;
        return;
    }
    s->out_values = out_values;
    s->out_exponent = out_exponent;
    s->out_inference = inference;
    if (ts_sender_start(&s->tx, (const uint8_t *)s->out_buf, out_values * 2u, inference,
                        out_exponent, now_us) != TS_OK) {
        s->stats.send_failures++; /* too many chunks for the header: cannot be sent */
        return;
    }
    s->out_busy = 1;
}

/* Send every frame the protocol allows now. */
static void pump(ts_stage_t *s, int64_t now_us)
{
    ts_sender_frame_info_t info;
    int n;
    while (ts_sender_state(&s->tx) == TS_SENDER_ACTIVE &&
           (n = ts_sender_next_frame(&s->tx, now_us, &info)) > 0) {
        if (info.first) {
            mark(s, TS_MARK_TX_START, ts_sender_inference(&s->tx));
        }
        s->stats.tx_frames++;
        s->stats.tx_bytes += (uint32_t)n;
        if (info.retransmission) {
            s->stats.retransmissions++;
        }
        int rc = send_frame(s, TS_LINK_DOWN, ts_sender_frame(&s->tx), (size_t)n);
        ts_sender_sent(&s->tx, rc >= 0, now_us);
    }
}

int ts_stage_inject(ts_stage_t *s, uint16_t inference, const int16_t *values, size_t count,
                    int8_t exponent, int64_t now_us)
{
    (void)now_us;
    if (s == NULL || values == NULL || count != s->cfg.input_values) {
        return TS_ERR_ARG;
    }
    if (s->in_ready || ts_receiver_state(&s->rx) != TS_RECEIVER_IDLE) {
        return TS_ERR_STATE;
    }
    memcpy(s->in_buf, values, count * sizeof *values);
    if (ts_receiver_hold(&s->rx, inference, count * 2u, exponent) != TS_OK) {
        return TS_ERR_STATE;
    }
    mark(s, TS_MARK_RX_START, inference);
    mark(s, TS_MARK_RX_END, inference);
    s->stats.tensors_in++;
    s->in_ready = 1;
    s->in_inference = inference;
    return TS_OK;
}

/* Book what a DATA frame did to the receiver. */
static void receiver_event(ts_stage_t *s, const ts_rx_event_t *ev, uint16_t inference)
{
    if (ev->started) {
        mark(s, TS_MARK_RX_START, inference);
    }
    s->stats.rx_duplicates += ev->duplicate;
    s->stats.rx_dropped_tensors += ev->dropped;
    s->stats.tensor_crc_errors += ev->crc_error;
    s->stats.rx_malformed += ev->malformed;
    if (ev->completed) {
        mark(s, TS_MARK_RX_END, inference);
        s->stats.tensors_in++;
        s->in_ready = 1;
        s->in_inference = inference;
    }
}

static void on_paper_frame(ts_stage_t *s, ts_link_t from, const uint8_t *frame, size_t len,
                           int64_t now_us)
{
    uint32_t inference, index;
    const uint8_t *payload;
    size_t payload_len;
    if (ts_paper_decode(frame, len, &inference, &index, &payload, &payload_len) != TS_OK) {
        s->stats.rx_malformed++;
        return;
    }
    s->stats.rx_frames++;
    s->stats.rx_bytes += (uint32_t)len;
    if (from == TS_LINK_DOWN) {
        ts_sender_on_paper_answer(&s->tx, inference, index, payload_len, now_us);
        finish_sender(s);
        return;
    }
    uint8_t reply[TS_ARQ_REPLY_MAX_BYTES];
    ts_rx_event_t ev;
    int n = ts_receiver_on_paper(&s->rx, inference, index, payload, payload_len, reply,
                                 sizeof reply, &ev);
    receiver_event(s, &ev, (uint16_t)inference);
    if (n > 0) {
        send_frame(s, TS_LINK_UP, reply, (size_t)n);
    }
}

static void on_ctrl(ts_stage_t *s, ts_link_t from, const ts_frame_header_t *h,
                    const uint8_t *payload, int64_t now_us)
{
    uint32_t token = 0;
    if (h->length >= CTRL_TOKEN_BYTES) {
        token = (uint32_t)payload[1] | ((uint32_t)payload[2] << 8) |
                ((uint32_t)payload[3] << 16) | ((uint32_t)payload[4] << 24);
    }
    switch (payload[0]) {
    case TS_CTRL_PING:
        send_ctrl(s, from, TS_CTRL_PONG, h->inference, token);
        break;
    case TS_CTRL_PONG:
        if (s->ping_sent_us[from] >= 0 && token == s->ping_token[from]) {
            int64_t rtt = now_us - s->ping_sent_us[from];
            s->stats.rtt_us[from] = rtt < 0 ? 0 : rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
            s->ping_sent_us[from] = -1;
        }
        break;
    case TS_CTRL_ABORT:
        if (from == TS_LINK_UP && ts_receiver_abort(&s->rx, h->inference)) {
            s->stats.rx_dropped_tensors++;
        }
        break;
    default:
        s->stats.rx_malformed++;
        break;
    }
}

void ts_stage_on_frame(ts_stage_t *s, ts_link_t from, const uint8_t *frame, size_t len,
                       int64_t now_us)
{
    if (s == NULL || frame == NULL || (from != TS_LINK_UP && from != TS_LINK_DOWN)) {
        return;
    }
    if (!reliable(s)) {
        on_paper_frame(s, from, frame, len, now_us);
        return;
    }
    ts_frame_header_t h;
    const uint8_t *payload;
    int rc = ts_frame_decode(frame, len, &h, &payload);
    if (rc != TS_OK) {
        if (rc == TS_ERR_CRC) {
            s->stats.rx_crc_errors++;
        } else {
            s->stats.rx_malformed++;
        }
        return;
    }
    s->stats.rx_frames++;
    s->stats.rx_bytes += (uint32_t)len;
    switch (h.type) {
    case TS_FRAME_DATA: {
        if (from != TS_LINK_UP) {
            s->stats.rx_malformed++;
            return;
        }
        uint8_t reply[TS_ARQ_REPLY_MAX_BYTES];
        ts_rx_event_t ev;
        int n = ts_receiver_on_data(&s->rx, &h, payload, reply, sizeof reply, &ev);
        receiver_event(s, &ev, h.inference);
        if (n > 0) {
            send_frame(s, TS_LINK_UP, reply, (size_t)n);
        }
        return;
    }
    case TS_FRAME_ACK:
    case TS_FRAME_NACK:
        if (from != TS_LINK_DOWN) {
            s->stats.rx_malformed++;
            return;
        }
        ts_sender_on_answer(&s->tx, &h, payload, now_us);
        finish_sender(s);
        return;
    case TS_FRAME_CTRL:
        on_ctrl(s, from, &h, payload, now_us);
        return;
    default:
        s->stats.rx_malformed++;
        return;
    }
}

int ts_stage_accepts(const ts_stage_t *s, ts_link_t from)
{
    return !(s->cfg.stream && from == TS_LINK_UP &&
             ts_receiver_state(&s->rx) == TS_RECEIVER_COMPLETE);
}

void ts_stage_poll(ts_stage_t *s, int64_t now_us)
{
    if (s == NULL) {
        return;
    }
    for (;;) {
        if (s->out_busy) {
            s->stats.timeouts += (uint32_t)ts_sender_poll(&s->tx, now_us);
            finish_sender(s);
        }
        if (s->in_ready && !s->out_busy) {
            run_inference(s, now_us);
            continue; /* the last stage may take the next input at once */
        }
        if (s->out_busy) {
            pump(s, now_us);
            finish_sender(s); /* a stream is done once the transport took the last frame */
        }
        if (!(s->in_ready && !s->out_busy)) {
            return;
        }
    }
}

/* Returns 0 (a time in the past) when work is due at once: call ts_stage_poll now. */
int64_t ts_stage_next_deadline_us(const ts_stage_t *s)
{
    if (s == NULL) {
        return INT64_MAX;
    }
    if (s->in_ready && !s->out_busy) {
        return 0;
    }
    if (s->out_busy) {
        return ts_sender_deadline_us(&s->tx, 0);
    }
    return INT64_MAX;
}

int ts_stage_ping(ts_stage_t *s, ts_link_t link, uint32_t token, int64_t now_us)
{
    if (s == NULL || (link != TS_LINK_UP && link != TS_LINK_DOWN)) {
        return TS_ERR_ARG;
    }
    if (!reliable(s) || (link == TS_LINK_UP && s->cfg.stage == 1) ||
        (link == TS_LINK_DOWN && last_stage(s))) {
        return TS_ERR_STATE; /* paper frames have no CTRL type; an end stage lacks that link */
    }
    int rc = send_ctrl(s, link, TS_CTRL_PING, 0, token);
    if (rc < 0) {
        return rc;
    }
    s->ping_sent_us[link] = now_us;
    s->ping_token[link] = token;
    return TS_OK;
}

int ts_stage_idle(const ts_stage_t *s)
{
    return !s->in_ready && !s->out_busy && ts_receiver_state(&s->rx) == TS_RECEIVER_IDLE;
}

void ts_stage_abort(ts_stage_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->out_busy && ts_sender_state(&s->tx) == TS_SENDER_ACTIVE && reliable(s) &&
        !s->cfg.stream) {
        send_ctrl(s, TS_LINK_DOWN, TS_CTRL_ABORT, ts_sender_inference(&s->tx), 0);
    }
    ts_sender_reset(&s->tx);
    s->out_busy = 0;
    ts_receiver_reset(&s->rx);
    s->in_ready = 0;
    s->ping_sent_us[0] = s->ping_sent_us[1] = -1;
}

const ts_stage_stats_t *ts_stage_stats(const ts_stage_t *s)
{
    return &s->stats;
}

void ts_stage_reset_stats(ts_stage_t *s)
{
    memset(&s->stats, 0, sizeof s->stats);
}
