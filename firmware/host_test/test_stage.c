/*
 * The stage runner (ts_stage.c): pipelines of ts_stage_t joined by lossy_channel.h on a virtual
 * clock, one thread. The fake slice adds its stage number to every value (and may shift the
 * exponent), so the last stage's output is known exactly. Reliable mode must deliver every
 * tensor intact and in order under loss, duplication, reordering and corruption; the paper mode
 * may fail but never delivers garbage; scribe marks come in order; NACKs, timeouts, PING/PONG
 * and requantization are counted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lossy_channel.h"
#include "ts_stage.h"
#include "ts_test.h"

#define MAX_STAGES 4
#define MAX_VALUES 50000 /* 100 KB tensors */
#define MAX_INFERENCES 64
#define MAX_MARKS 8

typedef struct pipe pipe_t;

typedef struct {
    pipe_t *pipe;
    int index; /* 0-based */
} stage_ctx_t;

struct pipe {
    int n;
    ts_stage_t st[MAX_STAGES];
    ts_stage_config_t cfg[MAX_STAGES];
    stage_ctx_t ctx[MAX_STAGES];
    int16_t in_buf[MAX_STAGES][MAX_VALUES + 2]; /* + the 4 B tensor CRC */
    int16_t out_buf[MAX_STAGES][MAX_VALUES];
    lc_channel_t down[MAX_STAGES]; /* stage i -> i + 1 */
    lc_channel_t up[MAX_STAGES];   /* stage i + 1 -> i */
    lc_net_t net;
    int64_t now;
    /* the fake slices */
    int8_t exp_shift[MAX_STAGES];
    int fail_call[MAX_STAGES]; /* the infer() call (1-based) that fails, 0: none */
    int calls[MAX_STAGES];
    /* inputs and outputs */
    uint16_t first;
    int8_t in_exponent;
    uint32_t outputs;
    uint32_t out_wrong;
    uint32_t out_of_order;
    uint16_t next_output;
    /* marks per stage and inference */
    uint8_t marks[MAX_STAGES][MAX_INFERENCES][MAX_MARKS];
    uint8_t mark_n[MAX_STAGES][MAX_INFERENCES];
    /* frames seen on delivery (reliable) */
    uint32_t seen_data, seen_ack, seen_busy, seen_crc_nack, seen_too_large, seen_ctrl;
    /* tamper: rewrite chunk `tamper_chunk` of the next DATA frame to stage 1 with a valid CRC-16 */
    int tamper_chunk;
    /* drop DATA chunks >= this index on their way to stage 2 (-1: none) */
    int drop_chunk_from;
};

static pipe_t PIPE;
static int16_t INPUT[MAX_VALUES];
static int16_t EXPECT[MAX_VALUES];

static const lc_params_t PERFECT = {.latency_us = 500, .frame_us = 100};
static const lc_params_t BAD = {
    .loss = 0.10, .dup = 0.03, .corrupt = 0.03, .latency_us = 500, .jitter_us = 1500,
    .frame_us = 100};

static void make_input(uint16_t inference, size_t count)
{
    lc_rng_t r = {0x1234u + inference * 977u};
    for (size_t k = 0; k < count; k++) {
        INPUT[k] = (int16_t)(uint16_t)lc_rng_next(&r);
    }
}

/* What the last stage must output for `inference`: every slice in turn, requantizing like the
 * stage runner does when the exponents differ. */
static int8_t make_expected(const pipe_t *p, uint16_t inference, size_t count)
{
    make_input(inference, count);
    memcpy(EXPECT, INPUT, count * sizeof INPUT[0]);
    int8_t e = p->in_exponent;
    for (int i = 0; i < p->n; i++) {
        int8_t want = p->cfg[i].input_exponent;
        if (p->cfg[i].mode == TS_MODE_PAPER && i > 0) {
            e = want; /* paper frames carry no exponent: the receiver assumes its own */
        } else if (e != want) {
            ts_requantize(EXPECT, count, e, want);
            e = want;
        }
        for (size_t k = 0; k < count; k++) {
            EXPECT[k] = (int16_t)(uint16_t)((uint16_t)EXPECT[k] + (uint16_t)(i + 1));
        }
        e = (int8_t)(e + p->exp_shift[i]);
    }
    return e;
}

/* --- the stage callbacks ------------------------------------------------------------------- */

static int cb_send(void *ctx, ts_link_t link, const uint8_t *frame, size_t len)
{
    stage_ctx_t *c = ctx;
    pipe_t *p = c->pipe;
    if (link == TS_LINK_DOWN) {
        lc_send(&p->net, &p->down[c->index], p->now, c->index + 1, TS_LINK_UP, frame, len);
    } else {
        lc_send(&p->net, &p->up[c->index - 1], p->now, c->index - 1, TS_LINK_DOWN, frame, len);
    }
    return TS_OK;
}

static int cb_infer(void *ctx, const int16_t *in, size_t in_values, int8_t in_exponent,
                    int16_t *out, size_t out_capacity, size_t *out_values, int8_t *out_exponent)
{
    stage_ctx_t *c = ctx;
    pipe_t *p = c->pipe;
    if (++p->calls[c->index] == p->fail_call[c->index] || in_values > out_capacity) {
        return TS_ERR_STATE;
    }
    for (size_t k = 0; k < in_values; k++) {
        out[k] = (int16_t)(uint16_t)((uint16_t)in[k] + (uint16_t)(c->index + 1));
    }
    *out_values = in_values;
    *out_exponent = (int8_t)(in_exponent + p->exp_shift[c->index]);
    return TS_OK;
}

static void cb_mark(void *ctx, ts_mark_t mark, uint16_t inference)
{
    stage_ctx_t *c = ctx;
    pipe_t *p = c->pipe;
    unsigned slot = (uint16_t)(inference - p->first) % MAX_INFERENCES;
    if (p->mark_n[c->index][slot] < MAX_MARKS) {
        p->marks[c->index][slot][p->mark_n[c->index][slot]] = (uint8_t)mark;
    }
    p->mark_n[c->index][slot]++;
}

static void cb_output(void *ctx, uint16_t inference, const int16_t *values, size_t count,
                      int8_t exponent)
{
    stage_ctx_t *c = ctx;
    pipe_t *p = c->pipe;
    p->outputs++;
    if (inference != p->next_output) {
        p->out_of_order++;
    }
    p->next_output = (uint16_t)(inference + 1u);
    int8_t e = make_expected(p, inference, count);
    if (count != p->cfg[0].input_values || exponent != e ||
        memcmp(values, EXPECT, count * sizeof values[0]) != 0) {
        p->out_wrong++;
    }
}

static const ts_stage_ops_t OPS = {
    .send = cb_send, .infer = cb_infer, .mark = cb_mark, .output = cb_output};

/* --- the pipeline ---------------------------------------------------------------------------- */

static ts_stage_config_t stage_config(ts_mode_t mode, uint16_t window, uint16_t frame_bytes,
                                      size_t values)
{
    ts_stage_config_t cfg = {
        .mode = mode,
        .window = window,
        .frame_bytes = frame_bytes,
        .ack_timeout_us = 20000,
        .busy_retry_us = 3000,
        .max_timeouts = 0,
        .input_values = values,
        .input_exponent = -8,
        .output_values = values,
    };
    return cfg;
}

/* `n` stages with the same link settings; every link direction gets `ch` and its own seed. */
static int pipe_init(int n, const ts_stage_config_t *base, const lc_params_t *ch, uint64_t seed)
{
    pipe_t *p = &PIPE;
    p->n = n;
    p->now = 0;
    p->outputs = p->out_wrong = p->out_of_order = 0;
    p->seen_data = p->seen_ack = p->seen_busy = p->seen_crc_nack = 0;
    p->seen_too_large = p->seen_ctrl = 0;
    p->tamper_chunk = -1;
    p->drop_chunk_from = -1;
    p->in_exponent = base->input_exponent;
    memset(p->marks, 0, sizeof p->marks);
    memset(p->mark_n, 0, sizeof p->mark_n);
    lc_net_init(&p->net);
    for (int i = 0; i < n; i++) {
        p->cfg[i] = *base;
        p->cfg[i].stage = (uint8_t)(i + 1);
        p->cfg[i].stages = (uint8_t)n;
        p->ctx[i].pipe = p;
        p->ctx[i].index = i;
        p->exp_shift[i] = 0;
        p->fail_call[i] = 0;
        p->calls[i] = 0;
        lc_channel_init(&p->down[i], ch, seed * 16u + (uint64_t)i * 2u);
        lc_channel_init(&p->up[i], ch, seed * 16u + (uint64_t)i * 2u + 1u);
        int rc = ts_stage_init(&p->st[i], &p->cfg[i], &OPS, &p->ctx[i], p->in_buf[i],
                               p->out_buf[i]);
        if (rc != TS_OK) {
            return rc;
        }
    }
    return TS_OK;
}

/* Re-initialise one stage after the test changed its configuration. */
static int pipe_reconfigure(int i)
{
    return ts_stage_init(&PIPE.st[i], &PIPE.cfg[i], &OPS, &PIPE.ctx[i], PIPE.in_buf[i],
                         PIPE.out_buf[i]);
}

static void count_frame(pipe_t *p, const lc_frame_t *f)
{
    ts_frame_header_t h;
    const uint8_t *payload;
    if (ts_frame_decode(f->data, f->len, &h, &payload) != TS_OK) {
        return;
    }
    switch (h.type) {
    case TS_FRAME_DATA:
        p->seen_data++;
        break;
    case TS_FRAME_ACK:
        p->seen_ack++;
        break;
    case TS_FRAME_NACK:
        p->seen_busy += payload[0] == TS_NACK_BUSY;
        p->seen_crc_nack += payload[0] == TS_NACK_TENSOR_CRC;
        p->seen_too_large += payload[0] == TS_NACK_TOO_LARGE;
        break;
    default:
        p->seen_ctrl++;
        break;
    }
}

/* Change a byte of a DATA chunk and re-encode it: a valid CRC-16 over wrong data, as if the
 * sender's buffer had changed after the tensor CRC-32 was computed. */
static void tamper(pipe_t *p, lc_frame_t *f)
{
    ts_frame_header_t h;
    const uint8_t *payload;
    if (p->tamper_chunk < 0 || f->dst != 1 ||
        ts_frame_decode(f->data, f->len, &h, &payload) != TS_OK || h.type != TS_FRAME_DATA ||
        h.chunk != (uint16_t)p->tamper_chunk) {
        return;
    }
    uint8_t body[TS_MAX_FRAME_BYTES];
    memcpy(body, payload, h.length);
    body[0] ^= 0x40u;
    int n = ts_frame_encode(&h, body, h.length, f->data, sizeof f->data);
    if (n > 0) {
        f->len = (uint16_t)n;
        p->tamper_chunk = -1;
    }
}

static int dropped_on_purpose(const pipe_t *p, const lc_frame_t *f)
{
    ts_frame_header_t h;
    const uint8_t *payload;
    return p->drop_chunk_from >= 0 && f->dst == 1 &&
           ts_frame_decode(f->data, f->len, &h, &payload) == TS_OK && h.type == TS_FRAME_DATA &&
           h.chunk >= p->drop_chunk_from;
}

static int quiet(const pipe_t *p)
{
    if (lc_next_time(&p->net) != INT64_MAX) {
        return 0;
    }
    for (int i = 0; i < p->n; i++) {
        if (ts_stage_next_deadline_us(&p->st[i]) != INT64_MAX) {
            return 0;
        }
    }
    return 1;
}

/*
 * Inject `count` inferences into stage 1 (back to back as soon as it takes one, or, `spaced`,
 * only when the whole pipeline is quiet) and run until nothing is left to do or `limit_us`.
 */
static void pipe_run(uint16_t first, int count, int spaced, int64_t limit_us)
{
    pipe_t *p = &PIPE;
    static lc_frame_t f;
    size_t values = p->cfg[0].input_values;
    p->first = first;
    p->next_output = first;
    int injected = 0;
    for (long iter = 0; iter < 50000000L; iter++) {
        int can = injected < count && (spaced ? quiet(p) : !p->st[0].in_ready);
        if (can) {
            make_input((uint16_t)(first + injected), values);
            if (ts_stage_inject(&p->st[0], (uint16_t)(first + injected), INPUT, values,
                                p->in_exponent, p->now) == TS_OK) {
                injected++;
            }
        }
        for (int i = 0; i < p->n; i++) {
            ts_stage_poll(&p->st[i], p->now);
        }
        if (injected < count && (spaced ? quiet(p) : !p->st[0].in_ready)) {
            continue;
        }
        int64_t t = lc_next_time(&p->net);
        for (int i = 0; i < p->n; i++) {
            int64_t d = ts_stage_next_deadline_us(&p->st[i]);
            t = d < t ? d : t;
        }
        if (t == INT64_MAX || t > limit_us) {
            return;
        }
        if (t > p->now) {
            p->now = t;
        }
        while (lc_next_time(&p->net) <= p->now) {
            lc_pop(&p->net, &f);
            tamper(p, &f);
            if (dropped_on_purpose(p, &f)) {
                continue;
            }
            if (p->cfg[0].mode == TS_MODE_RELIABLE) {
                count_frame(p, &f);
            }
            ts_stage_on_frame(&p->st[f.dst], (ts_link_t)f.link, f.data, f.len, p->now);
        }
    }
}

/* Every stage marked every inference in the documented order. */
static int marks_in_order(int count)
{
    static const uint8_t full[] = {TS_MARK_RX_START,    TS_MARK_RX_END,   TS_MARK_INFER_START,
                                   TS_MARK_INFER_END,   TS_MARK_TX_START, TS_MARK_TX_END};
    for (int i = 0; i < PIPE.n; i++) {
        int expect_n = i == PIPE.n - 1 ? 4 : 6;
        for (int k = 0; k < count; k++) {
            if (PIPE.mark_n[i][k] != expect_n ||
                memcmp(PIPE.marks[i][k], full, (size_t)expect_n) != 0) {
                fprintf(stderr, "    stage %d inference %d: %u marks\n", i + 1, k,
                        PIPE.mark_n[i][k]);
                return 0;
            }
        }
    }
    return 1;
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1u) / b;
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_zero_loss_frames_and_answers_match_the_simulator(void)
{
    static const uint16_t frames[] = {250, 514, 1470};
    static const size_t values[] = {1, 117, 5000};
    for (int mode = 0; mode <= 1; mode++) {
        for (uint16_t w = 1; w <= TS_MAX_WINDOW; w += 5) {
            for (size_t f = 0; f < 3; f++) {
                for (size_t v = 0; v < 3; v++) {
                    ts_stage_config_t cfg = stage_config((ts_mode_t)mode, w, frames[f], values[v]);
                    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 1) == TS_OK);
                    pipe_run(10, 4, 1, 100000000);
                    uint32_t per = (uint32_t)ts_frames_for_tensor(values[v] * 2u, frames[f], mode);
                    TS_CHECK_EQ_INT(PIPE.outputs, 4);
                    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
                    TS_CHECK_EQ_INT(PIPE.down[0].sent, 4u * per);
                    TS_CHECK_EQ_INT(PIPE.up[0].sent, 4u * ceil_div(per, w));
                    const ts_stage_stats_t *s1 = ts_stage_stats(&PIPE.st[0]);
                    const ts_stage_stats_t *s2 = ts_stage_stats(&PIPE.st[1]);
                    TS_CHECK_EQ_INT(s1->tx_frames, 4u * per);
                    TS_CHECK_EQ_INT(s1->retransmissions, 0);
                    TS_CHECK_EQ_INT(s1->timeouts, 0);
                    TS_CHECK_EQ_INT(s1->tensors_in, 4);
                    TS_CHECK_EQ_INT(s1->tensors_out, 4);
                    TS_CHECK_EQ_INT(s2->tensors_in, 4);
                    TS_CHECK_EQ_INT(s2->tensors_out, 4);
                    TS_CHECK_EQ_INT(s2->rx_frames, 4u * per);
                    TS_CHECK_EQ_INT(s1->rx_frames, 4u * ceil_div(per, w));
                    TS_CHECK(marks_in_order(4));
                    TS_CHECK(ts_stage_idle(&PIPE.st[0]) && ts_stage_idle(&PIPE.st[1]));
                }
            }
        }
    }
}

static void test_reliable_pipeline_delivers_everything_under_loss(void)
{
    static const uint16_t windows[] = {1, 4, 16};
    static const uint16_t frames[] = {250, 514, 1470};
    static const size_t values[] = {1, 300, 3000};
    uint32_t runs = 0, retrans = 0, tx = 0, timeouts = 0, busy = 0, crc = 0, dup = 0;
    const char *env = getenv("TS_STAGE_SEEDS"); /* longer soak runs */
    long env_n = env != NULL ? strtol(env, NULL, 10) : 0;
    uint32_t seeds = env_n > 0 && env_n < 1000000 ? (uint32_t)env_n : 25u;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        for (size_t w = 0; w < 3; w++) {
            for (size_t f = 0; f < 3; f++) {
                for (size_t v = 0; v < 3; v++) {
                    ts_stage_config_t cfg =
                        stage_config(TS_MODE_RELIABLE, windows[w], frames[f], values[v]);
                    TS_REQUIRE(pipe_init(3, &cfg, &BAD, seed) == TS_OK);
                    uint16_t first = (uint16_t)(65530u + seed);
                    pipe_run(first, 6, 0, 1000000000);
                    if (PIPE.outputs != 6 || PIPE.out_wrong || PIPE.out_of_order ||
                        !marks_in_order(6)) {
                        TS_CHECK_EQ_INT(PIPE.outputs, 6);
                        TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
                        TS_CHECK_EQ_INT(PIPE.out_of_order, 0);
                        fprintf(stderr, "    seed %llu window %u frame %u values %zu\n",
                                (unsigned long long)seed, windows[w], frames[f], values[v]);
                        return;
                    }
                    runs++;
                    for (int i = 0; i < 3; i++) {
                        const ts_stage_stats_t *s = ts_stage_stats(&PIPE.st[i]);
                        TS_CHECK_EQ_INT(s->send_failures, 0);
                        TS_CHECK_EQ_INT(s->inference_errors, 0);
                        TS_CHECK_EQ_INT(s->tensor_crc_errors, 0);
                        TS_CHECK_EQ_INT(s->tensors_out, 6);
                        retrans += s->retransmissions;
                        tx += s->tx_frames;
                        timeouts += s->timeouts;
                        crc += s->rx_crc_errors;
                        dup += s->rx_duplicates;
                    }
                    busy += PIPE.seen_busy;
                }
            }
        }
    }
    TS_CHECK_EQ_INT(runs, seeds * 27u);
    TS_CHECK(busy > 0);
    printf("    3 stages x 6 inferences x %u runs (10%% loss, 3%% dup, 3%% corrupt, reorder): "
           "%u DATA frames, %u retransmissions, %u timeouts, %u NACK BUSY, %u CRC-16 drops, "
           "%u duplicates\n",
           runs, tx, retrans, timeouts, busy, crc, dup);
}

static void test_reliable_pipeline_with_100kb_tensors(void)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 6, 514, MAX_VALUES);
        TS_REQUIRE(pipe_init(2, &cfg, &BAD, seed) == TS_OK);
        pipe_run(0, 3, 0, 1000000000);
        TS_CHECK_EQ_INT(PIPE.outputs, 3);
        TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
        TS_CHECK(marks_in_order(3));
        const ts_stage_stats_t *s = ts_stage_stats(&PIPE.st[0]);
        printf("    100 KB x 3, seed %llu: %u DATA frames (%u needed), %u retransmissions, "
               "%u timeouts\n",
               (unsigned long long)seed, s->tx_frames,
               3u * (uint32_t)ts_frames_for_tensor(MAX_VALUES * 2u, 514, 1), s->retransmissions,
               s->timeouts);
    }
}

static void test_stream_pipeline_sends_no_answers(void)
{
    for (int mode = 0; mode <= 1; mode++) {
        ts_stage_config_t cfg = stage_config((ts_mode_t)mode, 4, 1470, 3000);
        cfg.stream = 1;
        TS_REQUIRE(pipe_init(3, &cfg, &PERFECT, 3) == TS_OK);
        pipe_run(0, 5, 0, 100000000);
        TS_CHECK_EQ_INT(PIPE.outputs, 5);
        TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
        TS_CHECK_EQ_INT(PIPE.up[0].sent + PIPE.up[1].sent, 0);
        TS_CHECK_EQ_INT(PIPE.down[0].sent, 5u * (uint32_t)ts_frames_for_tensor(6000, 1470, mode));
        TS_CHECK(marks_in_order(5));
    }
}

/* On a stream a NACK BUSY comes too late (the sender is done once the transport took its last
 * frame), so the caller holds UP frames while ts_stage_accepts says no and feeds them once the
 * input buffer is free: both tensors arrive, none is dropped or NACKed. */
static void test_stream_input_waits_while_the_buffer_is_full(void)
{
    pipe_t *p = &PIPE;
    static lc_frame_t held[16];
    static lc_frame_t f;
    for (int mode = 0; mode <= 1; mode++) {
        ts_stage_config_t cfg = stage_config((ts_mode_t)mode, 4, 1470, 3000);
        cfg.stream = 1;
        TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 15) == TS_OK);
        p->first = 0;
        p->next_output = 0;
        /* stage 1 sends inferences 0 and 1 back to back: a stream sender waits for no answer */
        for (uint16_t k = 0; k < 2; k++) {
            make_input(k, cfg.input_values);
            TS_REQUIRE(ts_stage_inject(&p->st[0], k, INPUT, cfg.input_values, p->in_exponent,
                                       p->now) == TS_OK);
            ts_stage_poll(&p->st[0], p->now);
        }
        TS_CHECK_EQ_INT(ts_stage_stats(&p->st[0])->tensors_out, 2);
        /* stage 2's slice is busy meanwhile: it is not polled while the frames arrive */
        int held_n = 0;
        while (lc_next_time(&p->net) != INT64_MAX) {
            p->now = lc_next_time(&p->net);
            lc_pop(&p->net, &f);
            if (held_n > 0 || !ts_stage_accepts(&p->st[1], (ts_link_t)f.link)) {
                TS_REQUIRE(held_n < 16);
                held[held_n++] = f;
            } else {
                ts_stage_on_frame(&p->st[1], (ts_link_t)f.link, f.data, f.len, p->now);
            }
        }
        TS_CHECK_EQ_INT(held_n, ts_frames_for_tensor(6000, 1470, mode)); /* all of inference 1 */
        ts_stage_poll(&p->st[1], p->now); /* inference 0 runs and frees the input buffer */
        TS_CHECK(ts_stage_accepts(&p->st[1], TS_LINK_UP));
        for (int i = 0; i < held_n; i++) {
            ts_stage_on_frame(&p->st[1], (ts_link_t)held[i].link, held[i].data, held[i].len,
                              p->now);
        }
        ts_stage_poll(&p->st[1], p->now);
        TS_CHECK_EQ_INT(p->outputs, 2);
        TS_CHECK_EQ_INT(p->out_wrong, 0);
        TS_CHECK_EQ_INT(p->out_of_order, 0);
        TS_CHECK_EQ_INT(ts_stage_stats(&p->st[1])->rx_dropped_tensors, 0);
        TS_CHECK_EQ_INT(p->up[0].sent, 0); /* no NACK BUSY */
    }
    /* Not on a stream: the receiver answers NACK BUSY and the sender retries. */
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 1470, 3000);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 15) == TS_OK);
    make_input(0, cfg.input_values);
    TS_REQUIRE(ts_stage_inject(&p->st[1], 0, INPUT, cfg.input_values, -8, 0) == TS_OK);
    TS_CHECK(ts_stage_accepts(&p->st[1], TS_LINK_UP));
}

static void test_paper_pipeline_without_loss_delivers(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_PAPER, 6, 512, 2000);
    TS_REQUIRE(pipe_init(4, &cfg, &PERFECT, 4) == TS_OK);
    pipe_run(0, 8, 1, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 8);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK(marks_in_order(8));
    for (int i = 0; i < 4; i++) {
        TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[i])->send_failures, 0);
        TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[i])->rx_dropped_tensors, 0);
    }
}

static void test_paper_pipeline_with_loss_fails_and_counts(void)
{
    lc_params_t lossy = {.loss = 0.01, .latency_us = 500, .frame_us = 100};
    uint32_t outputs = 0, failures = 0, dropped = 0, timeouts = 0, total = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        ts_stage_config_t cfg = stage_config(TS_MODE_PAPER, 6, 512, 2000);
        TS_REQUIRE(pipe_init(3, &cfg, &lossy, seed) == TS_OK);
        pipe_run(0, 10, 1, 100000000);
        TS_CHECK_EQ_INT(PIPE.out_wrong, 0); /* never a corrupt tensor */
        uint32_t fail = 0;
        for (int i = 0; i < 3; i++) {
            const ts_stage_stats_t *s = ts_stage_stats(&PIPE.st[i]);
            fail += s->send_failures;
            dropped += s->rx_dropped_tensors;
            timeouts += s->timeouts;
            TS_CHECK_EQ_INT(s->retransmissions, 0);
        }
        /* Every inference is output or a failure is counted (a lost last response fails a
         * tensor the next stage did get, so both can happen). */
        TS_CHECK(PIPE.outputs + fail >= 10);
        outputs += PIPE.outputs;
        failures += fail;
        total += 10;
    }
    TS_CHECK(failures > 0);
    TS_CHECK_EQ_INT(failures, timeouts);
    printf("    paper, 1%% loss, 3 stages x %u inferences of 8 frames: %u output, %u send "
           "failures, %u receiver drops\n", total, outputs, failures, dropped);
}

static void test_busy_receiver_answers_nack_busy(void)
{
    /* A slow last link keeps stage 2 sending, so stage 1's next tensor finds its input buffer
     * full: NACK BUSY, then a retry after busy_retry_us. */
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 2000);
    TS_REQUIRE(pipe_init(3, &cfg, &PERFECT, 5) == TS_OK);
    PIPE.down[1].p.frame_us = 2000;
    pipe_run(0, 5, 0, 1000000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 5);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK(PIPE.seen_busy > 0);
    TS_CHECK(ts_stage_stats(&PIPE.st[0])->retransmissions > 0);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->timeouts, 0);
    TS_CHECK(marks_in_order(5));
}

static void test_tensor_crc_failure_is_nacked_and_resent(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 2000);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 6) == TS_OK);
    PIPE.tamper_chunk = 5;
    pipe_run(0, 2, 0, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 2);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK_EQ_INT(PIPE.seen_crc_nack, 1);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->tensor_crc_errors, 1);
    uint32_t per = (uint32_t)ts_frames_for_tensor(4000, 250, 1);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->retransmissions, per);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->tx_frames, 3u * per);
    TS_CHECK(marks_in_order(2));
}

static void test_too_large_tensor_fails_at_the_sender(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 2000);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 7) == TS_OK);
    PIPE.cfg[1].input_values = 500; /* stage 2 was built for a smaller input */
    TS_REQUIRE(pipe_reconfigure(1) == TS_OK);
    pipe_run(0, 1, 0, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 0);
    TS_CHECK(PIPE.seen_too_large > 0);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->send_failures, 1);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->tensors_out, 0);
    TS_CHECK(ts_stage_idle(&PIPE.st[0]));
}

static void test_dead_link_fails_after_max_timeouts(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 2000);
    cfg.max_timeouts = 3;
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 8) == TS_OK);
    PIPE.down[0].dead = 1;
    pipe_run(0, 2, 0, 100000000);
    const ts_stage_stats_t *s = ts_stage_stats(&PIPE.st[0]);
    TS_CHECK_EQ_INT(PIPE.outputs, 0);
    TS_CHECK_EQ_INT(s->send_failures, 2);
    TS_CHECK_EQ_INT(s->timeouts, 6);
    TS_CHECK_EQ_INT(s->tensors_out, 0);
    TS_CHECK_EQ_INT(s->tx_frames, 2u * 8u * 3u); /* 2 x window, twice resent, per tensor */
    TS_CHECK_EQ_INT(PIPE.down[0].sent, s->tx_frames + 2u); /* + one CTRL ABORT per failure */
    TS_CHECK(ts_stage_idle(&PIPE.st[0]));
}

static void test_abort_drops_a_partial_tensor(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 2000);
    cfg.max_timeouts = 2;
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 9) == TS_OK);
    /* stage 2 gets chunks 0 and 1 only */
    PIPE.drop_chunk_from = 2;
    pipe_run(0, 1, 0, 100000000);
    const ts_stage_stats_t *s2 = ts_stage_stats(&PIPE.st[1]);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->send_failures, 1);
    TS_CHECK_EQ_INT(s2->rx_dropped_tensors, 1); /* the ABORT reached it */
    TS_CHECK(ts_stage_idle(&PIPE.st[1]));
    TS_CHECK_EQ_INT(PIPE.mark_n[1][0], 1); /* RX_START only */
}

static void test_ping_pong_measures_the_round_trip(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 250, 100);
    TS_REQUIRE(pipe_init(3, &cfg, &PERFECT, 10) == TS_OK);
    PIPE.now = 1000;
    TS_CHECK_EQ_INT(ts_stage_ping(&PIPE.st[1], TS_LINK_DOWN, 0xDEADBEEFu, PIPE.now), TS_OK);
    TS_CHECK_EQ_INT(ts_stage_ping(&PIPE.st[1], TS_LINK_UP, 7, PIPE.now), TS_OK);
    TS_CHECK_EQ_INT(ts_stage_ping(&PIPE.st[0], TS_LINK_UP, 7, PIPE.now), TS_ERR_STATE);
    TS_CHECK_EQ_INT(ts_stage_ping(&PIPE.st[2], TS_LINK_DOWN, 7, PIPE.now), TS_ERR_STATE);
    pipe_run(0, 0, 0, 100000);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->rtt_us[TS_LINK_DOWN], 1000);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->rtt_us[TS_LINK_UP], 1000);
    TS_CHECK_EQ_INT(PIPE.seen_ctrl, 4);
    cfg.mode = TS_MODE_PAPER;
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 10) == TS_OK);
    TS_CHECK_EQ_INT(ts_stage_ping(&PIPE.st[0], TS_LINK_DOWN, 1, 0), TS_ERR_STATE);
}

static void test_inputs_are_requantized_when_exponents_differ(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 514, 1000);
    TS_REQUIRE(pipe_init(3, &cfg, &PERFECT, 11) == TS_OK);
    PIPE.exp_shift[0] = 1; /* stage 1 outputs at -7, stage 2 wants -8 */
    PIPE.exp_shift[1] = -2;
    PIPE.cfg[2].input_exponent = -10; /* stage 2 outputs at -10: no requantization */
    TS_REQUIRE(pipe_reconfigure(2) == TS_OK);
    pipe_run(0, 3, 0, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 3);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->requantized, 0);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->requantized, 3);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[2])->requantized, 0);
    /* an injected input at another exponent is requantized too */
    PIPE.in_exponent = -6;
    PIPE.exp_shift[0] = 0;
    PIPE.exp_shift[1] = 0;
    PIPE.cfg[2].input_exponent = -8;
    TS_REQUIRE(pipe_reconfigure(2) == TS_OK);
    pipe_run(3, 2, 0, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 5);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->requantized, 2);
}

static void test_inference_errors_are_counted_and_skipped(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 514, 100);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 12) == TS_OK);
    PIPE.fail_call[1] = 2; /* stage 2 fails on inference 1 */
    pipe_run(0, 3, 0, 100000000);
    TS_CHECK_EQ_INT(PIPE.outputs, 2);
    TS_CHECK_EQ_INT(PIPE.out_wrong, 0);
    TS_CHECK_EQ_INT(PIPE.out_of_order, 1); /* 0, 2 */
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->inference_errors, 1);
    TS_CHECK(ts_stage_idle(&PIPE.st[1]));
}

static void test_inject_and_init_errors(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 514, 100);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 13) == TS_OK);
    make_input(0, 100);
    TS_CHECK_EQ_INT(ts_stage_inject(&PIPE.st[0], 0, INPUT, 99, -8, 0), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_stage_inject(&PIPE.st[0], 0, INPUT, 100, -8, 0), TS_OK);
    TS_CHECK_EQ_INT(ts_stage_inject(&PIPE.st[0], 1, INPUT, 100, -8, 0), TS_ERR_STATE);
    TS_CHECK_EQ_INT(ts_stage_next_deadline_us(&PIPE.st[0]), 0); /* inference due now */
    TS_CHECK(!ts_stage_idle(&PIPE.st[0]));
    ts_stage_abort(&PIPE.st[0]);
    TS_CHECK(ts_stage_idle(&PIPE.st[0]));
    TS_CHECK_EQ_INT(ts_stage_next_deadline_us(&PIPE.st[0]), INT64_MAX);
    ts_stage_reset_stats(&PIPE.st[0]);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->tensors_in, 0);

    ts_stage_t s;
    ts_stage_config_t bad = cfg;
    bad.stage = 1;
    bad.stages = 2;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, PIPE.in_buf[0], PIPE.out_buf[0]), TS_OK);
    bad.stage = 3;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, PIPE.in_buf[0], PIPE.out_buf[0]),
                    TS_ERR_ARG);
    bad = cfg;
    bad.stage = 1;
    bad.stages = 2;
    bad.window = 17;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, PIPE.in_buf[0], PIPE.out_buf[0]),
                    TS_ERR_ARG);
    bad.window = 4;
    bad.input_values = 0;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, PIPE.in_buf[0], PIPE.out_buf[0]),
                    TS_ERR_ARG);
    bad.input_values = 100;
    bad.frame_bytes = 10;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, PIPE.in_buf[0], PIPE.out_buf[0]),
                    TS_ERR_ARG);
    ts_stage_ops_t no_output = OPS;
    no_output.output = NULL;
    bad = cfg;
    bad.stage = 2;
    bad.stages = 2;
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &no_output, NULL, PIPE.in_buf[0], PIPE.out_buf[0]),
                    TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_stage_init(&s, &bad, &OPS, NULL, NULL, PIPE.out_buf[0]), TS_ERR_ARG);
}

static void test_undecodable_frames_are_counted(void)
{
    ts_stage_config_t cfg = stage_config(TS_MODE_RELIABLE, 4, 514, 100);
    TS_REQUIRE(pipe_init(2, &cfg, &PERFECT, 14) == TS_OK);
    uint8_t junk[20] = {1, 1, 1};
    ts_stage_on_frame(&PIPE.st[1], TS_LINK_UP, junk, sizeof junk, 0); /* bad length */
    ts_stage_on_frame(&PIPE.st[1], TS_LINK_UP, junk, 3, 0);           /* short */
    uint8_t frame[TS_HEADER_BYTES + 4];
    ts_frame_header_t ack = {.type = TS_FRAME_ACK, .stage = 2, .chunks = 1, .length = 4};
    uint8_t bitmap[4] = {0};
    TS_REQUIRE(ts_frame_encode(&ack, bitmap, 4, frame, sizeof frame) > 0);
    ts_stage_on_frame(&PIPE.st[1], TS_LINK_UP, frame, sizeof frame, 0); /* ACK from upstream */
    frame[TS_HEADER_BYTES] ^= 1u;
    ts_stage_on_frame(&PIPE.st[0], TS_LINK_DOWN, frame, sizeof frame, 0); /* bad CRC-16 */
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->rx_malformed, 3);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[0])->rx_crc_errors, 1);
    TS_CHECK_EQ_INT(ts_stage_stats(&PIPE.st[1])->rx_frames, 1);
}

int main(void)
{
    TS_RUN(test_zero_loss_frames_and_answers_match_the_simulator);
    TS_RUN(test_reliable_pipeline_delivers_everything_under_loss);
    TS_RUN(test_reliable_pipeline_with_100kb_tensors);
    TS_RUN(test_stream_pipeline_sends_no_answers);
    TS_RUN(test_stream_input_waits_while_the_buffer_is_full);
    TS_RUN(test_paper_pipeline_without_loss_delivers);
    TS_RUN(test_paper_pipeline_with_loss_fails_and_counts);
    TS_RUN(test_busy_receiver_answers_nack_busy);
    TS_RUN(test_tensor_crc_failure_is_nacked_and_resent);
    TS_RUN(test_too_large_tensor_fails_at_the_sender);
    TS_RUN(test_dead_link_fails_after_max_timeouts);
    TS_RUN(test_abort_drops_a_partial_tensor);
    TS_RUN(test_ping_pong_measures_the_round_trip);
    TS_RUN(test_inputs_are_requantized_when_exponents_differ);
    TS_RUN(test_inference_errors_are_counted_and_skipped);
    TS_RUN(test_inject_and_init_errors);
    TS_RUN(test_undecodable_frames_are_counted);
    return TS_RESULT();
}
