/*
 * The ARQ state machines (ts_sender.c, ts_receiver.c) on their own: one sender and one receiver
 * joined by lossy_channel.h on a virtual clock. Zero-loss frame and answer counts (what the
 * simulator's link models assume), reliable delivery under loss, duplication, reordering and
 * corruption across seeds, windows and frame sizes, the paper mode's failures, and each NACK.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lossy_channel.h"
#include "ts_arq.h"
#include "ts_frame.h"
#include "ts_test.h"

#define BIG_TENSOR_BYTES 100000u /* ~100 KB: 428 chunks in 250 B frames */
#define RX_CAPACITY (BIG_TENSOR_BYTES + TS_TENSOR_CRC_BYTES)

enum { TO_SENDER = 0, TO_RECEIVER = 1 };

/* One sender -> receiver link and everything the tests count about it. */
typedef struct {
    ts_arq_config_t cfg;
    ts_sender_t tx;
    ts_receiver_t rx;
    lc_net_t net;
    lc_channel_t fwd;  /* DATA */
    lc_channel_t back; /* answers */
    int64_t now;
    uint8_t rx_buf[RX_CAPACITY];
    int hold;          /* 1: do not release a completed tensor (the receiver stays busy) */
    /* the tensor the receiver should complete next */
    const uint8_t *expect;
    size_t expect_bytes;
    uint16_t expect_inference;
    int8_t expect_exponent;
    /* counts */
    uint32_t data_frames;
    uint32_t retransmissions;
    uint32_t answers;      /* frames the receiver sent back */
    uint32_t timeouts;
    uint32_t undecodable;  /* frames the codec rejected (corrupted on the channel) */
    uint32_t completed;    /* tensors the receiver completed */
    uint32_t wrong;        /* completions that differ from the expected tensor */
    uint32_t busy;         /* NACK BUSY sent */
    uint32_t crc_errors;   /* tensor CRC-32 failures (NACK TENSOR_CRC sent) */
    uint32_t too_large;
    uint32_t dropped;
    uint32_t duplicates;
    /* optional: change the sender's buffer from the start until frame `tamper_index` is built
     * (-1: never) */
    int tamper_index;
    uint8_t *tamper_data;
} pair_t;

static pair_t P;
static uint8_t TENSOR[BIG_TENSOR_BYTES];

static const lc_params_t PERFECT = {.latency_us = 500, .frame_us = 100};

static void fill(uint8_t *data, size_t bytes, uint64_t seed)
{
    lc_rng_t r = {seed * 0x2545F4914F6CDD1Dull + 1u};
    for (size_t i = 0; i < bytes; i++) {
        data[i] = (uint8_t)lc_rng_next(&r);
    }
}

/* A seed count from the environment (longer soak runs), else `fallback`. */
static uint32_t env_seeds(const char *name, uint32_t fallback)
{
    const char *env = getenv(name);
    long n = env != NULL ? strtol(env, NULL, 10) : 0;
    return n > 0 && n < 1000000 ? (uint32_t)n : fallback;
}

static ts_arq_config_t link_config(ts_mode_t mode, uint16_t window, uint16_t frame_bytes)
{
    ts_arq_config_t cfg = {
        .mode = mode,
        .stage = 1,
        .window = window,
        .frame_bytes = frame_bytes,
        .ack_timeout_us = 20000,
        .busy_retry_us = 5000,
        .max_timeouts = 0,
        .paper_exponent = -7,
    };
    return cfg;
}

static int pair_init(const ts_arq_config_t *cfg, const lc_params_t *fwd, const lc_params_t *back,
                     uint64_t seed, size_t paper_bytes)
{
    memset(&P.cfg, 0, sizeof P.cfg);
    P.cfg = *cfg;
    ts_arq_config_t rx_cfg = *cfg;
    rx_cfg.stage = 2;
    int rc = ts_sender_init(&P.tx, cfg);
    if (rc == TS_OK) {
        rc = ts_receiver_init(&P.rx, &rx_cfg, P.rx_buf, sizeof P.rx_buf, paper_bytes);
    }
    lc_net_init(&P.net);
    lc_channel_init(&P.fwd, fwd, seed * 2u + 1u);
    lc_channel_init(&P.back, back, seed * 2u + 2u);
    P.now = 0;
    P.hold = 0;
    P.expect = NULL;
    P.data_frames = P.retransmissions = P.answers = P.timeouts = P.undecodable = 0;
    P.completed = P.wrong = P.busy = P.crc_errors = P.too_large = P.dropped = P.duplicates = 0;
    P.tamper_index = -1;
    return rc;
}

static void to_receiver(const lc_frame_t *f)
{
    uint8_t reply[TS_ARQ_REPLY_MAX_BYTES];
    ts_rx_event_t ev;
    int n;
    if (P.cfg.mode == TS_MODE_RELIABLE) {
        ts_frame_header_t h;
        const uint8_t *payload;
        if (ts_frame_decode(f->data, f->len, &h, &payload) != TS_OK) {
            P.undecodable++;
            return;
        }
        n = ts_receiver_on_data(&P.rx, &h, payload, reply, sizeof reply, &ev);
    } else {
        uint32_t inference, index;
        const uint8_t *payload;
        size_t len;
        if (ts_paper_decode(f->data, f->len, &inference, &index, &payload, &len) != TS_OK) {
            P.undecodable++;
            return;
        }
        n = ts_receiver_on_paper(&P.rx, inference, index, payload, len, reply, sizeof reply, &ev);
    }
    P.busy += ev.busy;
    P.crc_errors += ev.crc_error;
    P.too_large += ev.too_large;
    P.dropped += ev.dropped;
    P.duplicates += ev.duplicate;
    if (ev.completed) {
        size_t bytes;
        uint16_t inference;
        int8_t exponent;
        const uint8_t *t = ts_receiver_tensor(&P.rx, &bytes, &inference, &exponent);
        P.completed++;
        if (t == NULL || P.expect == NULL || inference != P.expect_inference ||
            bytes != P.expect_bytes || exponent != P.expect_exponent ||
            (bytes > 0 && memcmp(t, P.expect, bytes) != 0)) {
            P.wrong++;
        }
        P.expect = NULL; /* exactly once */
        if (!P.hold) {
            ts_receiver_release(&P.rx);
        }
    }
    if (n > 0) {
        P.answers++;
        lc_send(&P.net, &P.back, P.now, TO_SENDER, 0, reply, (size_t)n);
    }
}

static void to_sender(const lc_frame_t *f)
{
    if (P.cfg.mode == TS_MODE_RELIABLE) {
        ts_frame_header_t h;
        const uint8_t *payload;
        if (ts_frame_decode(f->data, f->len, &h, &payload) != TS_OK) {
            P.undecodable++;
            return;
        }
        ts_sender_on_answer(&P.tx, &h, payload, P.now);
    } else {
        uint32_t inference, index;
        const uint8_t *payload;
        size_t len;
        if (ts_paper_decode(f->data, f->len, &inference, &index, &payload, &len) != TS_OK) {
            P.undecodable++;
            return;
        }
        ts_sender_on_paper_answer(&P.tx, inference, index, len, P.now);
    }
}

static void deliver_due(void)
{
    static lc_frame_t f;
    while (lc_next_time(&P.net) <= P.now) {
        lc_pop(&P.net, &f);
        if (f.dst == TO_RECEIVER) {
            to_receiver(&f);
        } else {
            to_sender(&f);
        }
    }
}

static void pump(void)
{
    ts_sender_frame_info_t info;
    int n;
    while ((n = ts_sender_next_frame(&P.tx, P.now, &info)) > 0) {
        if ((int)info.index == P.tamper_index && P.tamper_data != NULL) {
            /* The frame is built: restore the buffer so the next attempt sends the truth. */
            P.tamper_data[0] ^= 0x5Au;
            P.tamper_index = -1;
        }
        P.data_frames++;
        P.retransmissions += info.retransmission;
        lc_send(&P.net, &P.fwd, P.now, TO_RECEIVER, 0, ts_sender_frame(&P.tx), (size_t)n);
        ts_sender_sent(&P.tx, 1, P.now);
    }
}

/* Send one tensor until the sender is done or failed (or `limit_us` of virtual time). */
static ts_sender_state_t transfer(const uint8_t *data, size_t bytes, uint16_t inference,
                                  int8_t exponent, int64_t limit_us)
{
    P.expect = data;
    P.expect_bytes = bytes;
    P.expect_inference = inference;
    P.expect_exponent = P.cfg.mode == TS_MODE_PAPER ? P.cfg.paper_exponent : exponent;
    if (ts_sender_start(&P.tx, data, bytes, inference, exponent, P.now) != TS_OK) {
        return TS_SENDER_IDLE;
    }
    if (P.tamper_index >= 0 && P.tamper_data != NULL) {
        P.tamper_data[0] ^= 0x5Au; /* after the tensor CRC-32 was taken; pump() restores it */
    }
    int64_t end = P.now + limit_us;
    for (;;) {
        pump();
        ts_sender_state_t st = ts_sender_state(&P.tx);
        if (st == TS_SENDER_DONE || st == TS_SENDER_FAILED) {
            ts_sender_reset(&P.tx);
            return st;
        }
        int64_t t = lc_next_time(&P.net);
        int64_t d = ts_sender_deadline_us(&P.tx, P.now);
        if (d < t) {
            t = d;
        }
        if (t == INT64_MAX || t > end) {
            return TS_SENDER_ACTIVE; /* stuck */
        }
        if (t > P.now) {
            P.now = t;
        }
        deliver_due();
        P.timeouts += (uint32_t)ts_sender_poll(&P.tx, P.now);
    }
}

/* Deliver what is still in flight (late duplicates must change nothing). */
static void drain(void)
{
    while (lc_next_time(&P.net) != INT64_MAX) {
        P.now = lc_next_time(&P.net);
        deliver_due();
    }
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1u) / b;
}

/* --- zero loss: exactly the frames and answers the simulator counts ------------------------ */

static void test_zero_loss_counts_match_the_simulator(void)
{
    static const uint16_t frames[] = {250, 514, 1470};
    /* 232, 496, 1452: the tensor CRC-32 straddles two chunks (250, 514, 1470 B frames) */
    static const size_t sizes[] = {0, 2, 230, 232, 234, 496, 1000, 1452, 4096, BIG_TENSOR_BYTES};
    fill(TENSOR, sizeof TENSOR, 1);
    for (int mode = 0; mode <= 1; mode++) {
        for (uint16_t w = 1; w <= TS_MAX_WINDOW; w++) {
            for (size_t f = 0; f < sizeof frames / sizeof frames[0]; f++) {
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                    ts_arq_config_t cfg = link_config((ts_mode_t)mode, w, frames[f]);
                    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 1, sizes[s]) == TS_OK);
                    ts_sender_state_t st = transfer(TENSOR, sizes[s], 7, -3, 10000000);
                    uint32_t expect = (uint32_t)ts_frames_for_tensor(sizes[s], frames[f], mode);
                    TS_CHECK_EQ_INT(st, TS_SENDER_DONE);
                    TS_CHECK_EQ_INT(P.data_frames, expect);
                    TS_CHECK_EQ_INT(P.answers, ceil_div(expect, w));
                    TS_CHECK_EQ_INT(P.retransmissions, 0);
                    TS_CHECK_EQ_INT(P.timeouts, 0);
                    TS_CHECK_EQ_INT(P.completed, 1);
                    TS_CHECK_EQ_INT(P.wrong, 0);
                }
            }
        }
    }
}

static void test_paper_frames_reproduce_the_paper_layout(void)
{
    /* 514 B BLE values: 8 B timer id + 253 int16 -> 252 (even) values = 504 B of tensor. */
    TS_CHECK_EQ_INT(ts_data_payload_bytes(514, 0), 506);
    TS_CHECK_EQ_INT(ts_data_payload_bytes(512, 0), 504);
    ts_arq_config_t cfg = link_config(TS_MODE_PAPER, 6, 512);
    fill(TENSOR, 1008, 2);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 2, 1008) == TS_OK);
    TS_REQUIRE(ts_sender_start(&P.tx, TENSOR, 1008, 300, 0, 0) == TS_OK);
    ts_sender_frame_info_t info;
    int n = ts_sender_next_frame(&P.tx, 0, &info);
    TS_CHECK_EQ_INT(n, 512);
    const uint8_t *f = ts_sender_frame(&P.tx);
    TS_CHECK_EQ_INT(f[0] | (f[1] << 8), 300); /* inference */
    TS_CHECK_EQ_INT(f[4], 0);                 /* frame index */
    TS_CHECK_EQ_MEM(f + 8, TENSOR, 504);
    TS_CHECK(info.first);
    n = ts_sender_next_frame(&P.tx, 0, &info);
    TS_CHECK_EQ_INT(n, 512);
    TS_CHECK_EQ_INT(ts_sender_frame(&P.tx)[4], 1);
    TS_CHECK(!info.first);
    /* Two frames, window 6: the last frame ends the window; nothing more until answered. */
    TS_CHECK_EQ_INT(ts_sender_next_frame(&P.tx, 0, &info), 0);
    TS_CHECK_EQ_INT(ts_sender_deadline_us(&P.tx, 0), 20000);
}

/* --- reliable mode under loss ------------------------------------------------------------ */

typedef struct {
    uint32_t runs, tensors, data_frames, retransmissions, timeouts, undecodable, lost, answers;
    uint32_t data_lost; /* DATA frames the channel lost (each must be resent) */
} totals_t;

/* Three tensors in a row over a bad channel; each must arrive once, intact, in order. */
static void reliable_run(uint16_t window, uint16_t frame_bytes, size_t bytes, uint64_t seed,
                         const lc_params_t *ch, int stream, totals_t *tot)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, window, frame_bytes);
    cfg.stream = (uint8_t)stream;
    if (pair_init(&cfg, ch, ch, seed, 0) != TS_OK) {
        TS_CHECK(!"pair_init");
        return;
    }
    uint16_t first = (uint16_t)(65534u + seed % 3u); /* crosses the 16-bit wrap sometimes */
    for (uint16_t k = 0; k < 3; k++) {
        uint8_t *data = TENSOR + (k * 7u) % 16u; /* different content per tensor */
        size_t n = bytes;
        if (n + (k * 7u) % 16u > sizeof TENSOR) {
            n = sizeof TENSOR - (k * 7u) % 16u;
        }
        uint32_t before = P.completed;
        ts_sender_state_t st = transfer(data, n, (uint16_t)(first + k), (int8_t)(k - 8), 60000000);
        if (st != TS_SENDER_DONE || P.completed != before + 1u || P.wrong != 0) {
            TS_CHECK_EQ_INT(st, TS_SENDER_DONE);
            TS_CHECK_EQ_INT(P.completed, before + 1u);
            TS_CHECK_EQ_INT(P.wrong, 0);
            fprintf(stderr, "    window %u frame %u bytes %zu seed %llu tensor %u\n", window,
                    frame_bytes, bytes, (unsigned long long)seed, k);
            return;
        }
    }
    drain();
    TS_CHECK_EQ_INT(P.completed, 3);
    TS_CHECK_EQ_INT(P.wrong, 0);
    TS_CHECK_EQ_INT(P.crc_errors, 0); /* every corruption is caught by the CRC-16 */
    tot->runs++;
    tot->tensors += 3;
    tot->data_frames += P.data_frames;
    tot->retransmissions += P.retransmissions;
    tot->timeouts += P.timeouts;
    tot->undecodable += P.undecodable;
    tot->lost += P.fwd.lost + P.back.lost;
    tot->data_lost += P.fwd.lost;
    tot->answers += P.answers;
}

static const lc_params_t BAD = {
    .loss = 0.10, .dup = 0.03, .corrupt = 0.03, .latency_us = 500, .jitter_us = 1500,
    .frame_us = 100};

static void test_reliable_delivers_every_tensor_under_loss_and_reordering(void)
{
    static const uint16_t windows[] = {1, 2, 3, 6, 16};
    static const uint16_t frames[] = {250, 514, 1470};
    static const size_t sizes[] = {0, 2, 3000};
    uint32_t seeds = env_seeds("TS_ARQ_SEEDS", 200);
    fill(TENSOR, sizeof TENSOR, 3);
    totals_t tot = {0};
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            for (size_t f = 0; f < sizeof frames / sizeof frames[0]; f++) {
                for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                    reliable_run(windows[w], frames[f], sizes[s], seed, &BAD, 0, &tot);
                }
            }
        }
    }
    TS_CHECK_EQ_INT(tot.runs, seeds * 5u * 3u * 3u);
    printf("    small tensors, 10%% loss, 3%% dup, 3%% corrupt, reordering: %u runs, %u tensors, "
           "%u DATA frames, %u retransmissions, %u timeouts, %u undecodable, %u answers\n",
           tot.runs, tot.tensors, tot.data_frames, tot.retransmissions, tot.timeouts,
           tot.undecodable, tot.answers);
}


static void test_reliable_delivers_a_100kb_tensor_under_loss(void)
{
    static const uint16_t windows[] = {1, 6, 16};
    static const uint16_t frames[] = {250, 514, 1470};
    /* 12 seeds by default (about a second); TS_ARQ_BIG_SEEDS=200 for a soak. */
    uint32_t seeds = env_seeds("TS_ARQ_BIG_SEEDS", 12);
    fill(TENSOR, sizeof TENSOR, 4);
    for (size_t f = 0; f < sizeof frames / sizeof frames[0]; f++) {
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            totals_t tot = {0};
            for (uint64_t seed = 1; seed <= seeds; seed++) {
                reliable_run(windows[w], frames[f], BIG_TENSOR_BYTES - 16u, seed, &BAD, 0, &tot);
            }
            TS_CHECK_EQ_INT(tot.runs, seeds);
            uint32_t clean = tot.tensors * (uint32_t)ts_frames_for_tensor(BIG_TENSOR_BYTES - 16u,
                                                                         frames[f], 1);
            printf("    100 KB x %u, frame %4u window %2u: %u DATA frames for %u needed, "
                   "%u retransmissions (%.1f %%), %u timeouts\n",
                   tot.tensors, frames[f], windows[w], tot.data_frames, clean,
                   tot.retransmissions, 100.0 * tot.retransmissions / tot.data_frames,
                   tot.timeouts);
        }
    }
}

static void test_reliable_retransmits_about_the_lost_share_in_order(void)
{
    /* 10 % loss each way, no reordering (BLE and ESP-NOW keep order). Every lost DATA frame is
     * resent; a timeout (a lost tail, a lost final ACK) resends every unacknowledged chunk. */
    static const uint16_t windows[] = {1, 6, 16};
    const lc_params_t lossy = {.loss = 0.10, .latency_us = 500, .frame_us = 100};
    fill(TENSOR, sizeof TENSOR, 40);
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        totals_t tot = {0};
        for (uint64_t seed = 1; seed <= 12; seed++) {
            reliable_run(windows[w], 514, BIG_TENSOR_BYTES - 16u, seed, &lossy, 0, &tot);
        }
        TS_CHECK_EQ_INT(tot.runs, 12);
        uint32_t clean = 36u * (uint32_t)ts_frames_for_tensor(BIG_TENSOR_BYTES - 16u, 514, 1);
        double share = (double)tot.retransmissions / clean;
        TS_CHECK(tot.retransmissions >= tot.data_lost);
        TS_CHECK(share < 0.5);
        printf("    100 KB x 36, 10%% loss in order, frame 514 window %2u: %u DATA frames for %u "
               "needed, %u lost, %u retransmissions (%.1f %% of needed), %u timeouts, "
               "%u answers\n",
               windows[w], tot.data_frames, clean, tot.data_lost, tot.retransmissions,
               100.0 * share, tot.timeouts, tot.answers);
    }
}

static void test_stream_mode_sends_everything_without_answers(void)
{
    static const uint16_t frames[] = {250, 1470};
    fill(TENSOR, sizeof TENSOR, 5);
    for (int mode = 0; mode <= 1; mode++) {
        for (size_t f = 0; f < 2; f++) {
            ts_arq_config_t cfg = link_config((ts_mode_t)mode, 4, frames[f]);
            cfg.stream = 1;
            cfg.ack_timeout_us = 0; /* a stream needs none */
            TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 5, 5000) == TS_OK);
            ts_sender_state_t st = transfer(TENSOR, 5000, 9, -2, 1000000);
            TS_CHECK_EQ_INT(st, TS_SENDER_DONE);
            TS_CHECK_EQ_INT(P.data_frames, ts_frames_for_tensor(5000, frames[f], mode));
            TS_CHECK_EQ_INT(P.answers, 0);
            drain();
            TS_CHECK_EQ_INT(P.completed, 1);
            TS_CHECK_EQ_INT(P.wrong, 0);
        }
    }
}

static void test_stream_refused_frame_fails_the_tensor(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    cfg.stream = 1;
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 6, 0) == TS_OK);
    fill(TENSOR, 1000, 6);
    TS_REQUIRE(ts_sender_start(&P.tx, TENSOR, 1000, 1, 0, 0) == TS_OK);
    ts_sender_frame_info_t info;
    TS_CHECK(ts_sender_next_frame(&P.tx, 0, &info) > 0);
    ts_sender_sent(&P.tx, 0, 0);
    TS_CHECK_EQ_INT(ts_sender_state(&P.tx), TS_SENDER_FAILED);
    TS_CHECK_EQ_INT(ts_sender_fail_reason(&P.tx), TS_SEND_FAIL_REFUSED);
}

/* --- paper mode under loss: fails, counts, never delivers a corrupt tensor --------------- */

static void test_paper_mode_fails_on_loss_and_never_delivers_garbage(void)
{
    lc_params_t lossy = {.loss = 0.02, .latency_us = 500, .frame_us = 100};
    fill(TENSOR, sizeof TENSOR, 7);
    uint32_t done = 0, failed = 0, dropped = 0, completed = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        ts_arq_config_t cfg = link_config(TS_MODE_PAPER, 6, 512);
        TS_REQUIRE(pair_init(&cfg, &lossy, &lossy, seed, 5040) == TS_OK);
        for (uint16_t k = 0; k < 3; k++) {
            ts_sender_state_t st = transfer(TENSOR + k, 5040, k, 0, 1000000);
            TS_CHECK(st == TS_SENDER_DONE || st == TS_SENDER_FAILED);
            done += st == TS_SENDER_DONE;
            failed += st == TS_SENDER_FAILED;
        }
        drain();
        TS_CHECK_EQ_INT(P.wrong, 0);
        TS_CHECK_EQ_INT(P.retransmissions, 0); /* the paper never resends */
        completed += P.completed;
        dropped += P.dropped;
    }
    TS_CHECK(failed > 0);
    TS_CHECK(done > 0);
    /* Every success is a delivery; a loss of the last response fails a delivered tensor. */
    TS_CHECK(completed >= done);
    TS_CHECK(completed <= done + failed);
    printf("    paper, 2%% loss, 10 frames x 600 tensors: %u delivered, %u failed, %u receiver "
           "drops\n", done, failed, dropped);
}

/* --- NACKs and failures -------------------------------------------------------------------- */

static void test_nack_busy_then_retry(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 8, 0) == TS_OK);
    fill(TENSOR, 4000, 8);
    P.hold = 1; /* the receiver keeps tensor 1: its stage has not run inference yet */
    TS_CHECK_EQ_INT(transfer(TENSOR, 2000, 1, 0, 1000000), TS_SENDER_DONE);
    TS_REQUIRE(ts_sender_start(&P.tx, TENSOR + 2000, 2000, 2, 0, P.now) == TS_OK);
    P.expect = TENSOR + 2000;
    P.expect_bytes = 2000;
    P.expect_inference = 2;
    P.expect_exponent = 0;
    int64_t release_at = P.now + 12000;
    int released = 0;
    for (int i = 0; i < 100000 && ts_sender_state(&P.tx) == TS_SENDER_ACTIVE; i++) {
        pump();
        int64_t t = lc_next_time(&P.net);
        int64_t d = ts_sender_deadline_us(&P.tx, P.now);
        t = d < t ? d : t;
        if (!released) {
            t = release_at < t ? release_at : t;
        }
        P.now = t > P.now ? t : P.now;
        if (!released && P.now >= release_at) {
            ts_receiver_release(&P.rx); /* inference ran: the buffer is free */
            P.hold = 0;
            released = 1;
        }
        deliver_due();
        P.timeouts += (uint32_t)ts_sender_poll(&P.tx, P.now);
    }
    TS_CHECK_EQ_INT(ts_sender_state(&P.tx), TS_SENDER_DONE);
    TS_CHECK(P.busy >= 1);
    TS_CHECK_EQ_INT(P.completed, 2);
    TS_CHECK_EQ_INT(P.wrong, 0);
    TS_CHECK(P.retransmissions > 0); /* the whole tensor again after the retry */
    TS_CHECK_EQ_INT(P.timeouts, 0);
}

static void test_nack_tensor_crc_restarts_the_tensor(void)
{
    /* The sender's buffer changes while chunk 3 is built (after the tensor CRC-32 was taken):
     * every frame has a valid CRC-16, the tensor CRC-32 fails, the sender starts over. */
    static uint8_t data[3000];
    fill(data, sizeof data, 9);
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 9, 0) == TS_OK);
    uint8_t *victim = data + 3u * 234u + 5u; /* inside chunk 3 */
    P.tamper_data = victim;
    P.tamper_index = 3;
    ts_sender_state_t st = transfer(data, sizeof data, 11, 0, 1000000);
    TS_CHECK_EQ_INT(st, TS_SENDER_DONE);
    TS_CHECK_EQ_INT(P.crc_errors, 1);
    TS_CHECK_EQ_INT(P.completed, 1);
    TS_CHECK_EQ_INT(P.wrong, 0);
    uint32_t chunks = (uint32_t)ts_frames_for_tensor(sizeof data, 250, 1);
    TS_CHECK_EQ_INT(P.data_frames, 2u * chunks);
    TS_CHECK_EQ_INT(P.retransmissions, chunks);
}

static void test_nack_too_large_fails_the_tensor(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 10, 0) == TS_OK);
    P.rx.capacity = 1000; /* a receiver sized for a smaller slice input */
    fill(TENSOR, 2000, 10);
    TS_CHECK_EQ_INT(transfer(TENSOR, 2000, 1, 0, 1000000), TS_SENDER_FAILED);
    TS_CHECK(P.too_large >= 1);
    TS_CHECK_EQ_INT(P.completed, 0);
    /* One that fits still goes through afterwards. */
    TS_CHECK_EQ_INT(transfer(TENSOR, 900, 2, 0, 1000000), TS_SENDER_DONE);
    TS_CHECK_EQ_INT(P.completed, 1);
    TS_CHECK_EQ_INT(P.wrong, 0);
}

static void test_dead_link_fails_after_max_timeouts(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    cfg.max_timeouts = 5;
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 11, 0) == TS_OK);
    P.fwd.dead = 1;
    fill(TENSOR, 5000, 11);
    TS_CHECK_EQ_INT(transfer(TENSOR, 5000, 1, 0, 100000000), TS_SENDER_FAILED);
    TS_CHECK_EQ_INT(P.timeouts, 5);
    TS_CHECK_EQ_INT(P.completed, 0);
    /* 8 frames (2 x window), then the whole window again after each of 4 timeouts. */
    TS_CHECK_EQ_INT(P.data_frames, 8u * 5u);
    TS_CHECK_EQ_INT(P.retransmissions, 8u * 4u);
    TS_CHECK_EQ_INT(P.now, 5 * 20000);
}

static void test_paper_timeout_fails_without_retransmission(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_PAPER, 3, 250);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 12, 2000) == TS_OK);
    P.back.dead = 1; /* responses never come back */
    fill(TENSOR, 2000, 12);
    TS_CHECK_EQ_INT(transfer(TENSOR, 2000, 1, 0, 1000000), TS_SENDER_FAILED);
    TS_CHECK_EQ_INT(P.data_frames, 3);
    TS_CHECK_EQ_INT(P.timeouts, 1);
    TS_CHECK_EQ_INT(P.retransmissions, 0);
}

/* --- receiver details ---------------------------------------------------------------------- */

static int data_frame(uint8_t *out, uint16_t inference, uint16_t chunk, uint16_t chunks,
                      const uint8_t *payload, uint16_t len)
{
    ts_frame_header_t h = {
        .type = TS_FRAME_DATA,
        .stage = 1,
        .flags = chunk + 1u == chunks ? TS_FLAG_LAST : 0,
        .inference = inference,
        .chunk = chunk,
        .chunks = chunks,
        .length = len,
    };
    return ts_frame_encode(&h, payload, len, out, TS_MAX_FRAME_BYTES);
}

static int feed(uint16_t inference, uint16_t chunk, uint16_t chunks, const uint8_t *payload,
                uint16_t len, ts_frame_header_t *reply_h, uint32_t *bitmap, ts_rx_event_t *ev)
{
    uint8_t frame[TS_MAX_FRAME_BYTES];
    uint8_t reply[TS_ARQ_REPLY_MAX_BYTES];
    ts_frame_header_t h;
    const uint8_t *p;
    int fl = data_frame(frame, inference, chunk, chunks, payload, len);
    if (fl < 0) {
        return -100;
    }
    if (ts_frame_decode(frame, (size_t)fl, &h, &p) != TS_OK) {
        return -101;
    }
    int n = ts_receiver_on_data(&P.rx, &h, p, reply, sizeof reply, ev);
    if (n > 0) {
        const uint8_t *rp;
        if (ts_frame_decode(reply, (size_t)n, reply_h, &rp) != TS_OK) {
            return -102;
        }
        *bitmap = reply_h->type == TS_FRAME_ACK
                      ? (uint32_t)rp[0] | ((uint32_t)rp[1] << 8) | ((uint32_t)rp[2] << 16) |
                            ((uint32_t)rp[3] << 24)
                      : rp[0];
    }
    return n;
}

static void test_receiver_acks_and_selective_bitmap(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 2, 26); /* 10 B chunks */
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 13, 0) == TS_OK);
    uint8_t stream[44];
    fill(stream, 40, 13);
    uint32_t crc = ts_crc32(stream, 40);
    for (int i = 0; i < 4; i++) {
        stream[40 + i] = (uint8_t)(crc >> (8 * i));
    }
    ts_frame_header_t rh;
    uint32_t bm = 0;
    ts_rx_event_t ev;
    /* LAST first: the chunk size is unknown, ignored */
    TS_CHECK_EQ_INT(feed(5, 4, 5, stream + 40, 4, &rh, &bm, &ev), 0);
    TS_CHECK(!ev.started && !ev.accepted);
    TS_CHECK_EQ_INT(feed(5, 0, 5, stream, 10, &rh, &bm, &ev), 0); /* 1st DATA: no ACK yet */
    TS_CHECK(ev.started && ev.accepted);
    TS_CHECK(feed(5, 2, 5, stream + 20, 10, &rh, &bm, &ev) > 0); /* 2nd: ACK */
    TS_CHECK_EQ_INT(rh.type, TS_FRAME_ACK);
    TS_CHECK_EQ_INT(rh.chunk, 1); /* base */
    TS_CHECK_EQ_INT(bm, 0x2);     /* chunk 2 = base + 1 */
    TS_CHECK_EQ_INT(feed(5, 2, 5, stream + 20, 10, &rh, &bm, &ev), 0); /* duplicate */
    TS_CHECK(ev.duplicate);
    TS_CHECK(feed(5, 4, 5, stream + 40, 4, &rh, &bm, &ev) > 0); /* LAST: ACK at once */
    TS_CHECK_EQ_INT(rh.chunk, 1);
    TS_CHECK_EQ_INT(bm, 0xA);
    TS_CHECK_EQ_INT(feed(5, 1, 5, stream + 10, 10, &rh, &bm, &ev), 0);
    TS_CHECK(feed(5, 3, 5, stream + 30, 10, &rh, &bm, &ev) > 0); /* completes */
    TS_CHECK(ev.completed);
    TS_CHECK_EQ_INT(rh.chunk, 5);
    TS_CHECK_EQ_INT(rh.chunks, 5);
    size_t bytes;
    TS_CHECK(ts_receiver_tensor(&P.rx, &bytes, NULL, NULL) != NULL);
    TS_CHECK_EQ_INT(bytes, 40);
    TS_CHECK_EQ_MEM(P.rx_buf, stream, 40);
    /* another inference while the tensor is held: BUSY */
    TS_CHECK(feed(6, 0, 5, stream, 10, &rh, &bm, &ev) > 0);
    TS_CHECK_EQ_INT(rh.type, TS_FRAME_NACK);
    TS_CHECK_EQ_INT(bm, TS_NACK_BUSY);
    /* a duplicate of the held tensor: the completion ACK again */
    TS_CHECK(feed(5, 1, 5, stream + 10, 10, &rh, &bm, &ev) > 0);
    TS_CHECK_EQ_INT(rh.type, TS_FRAME_ACK);
    TS_CHECK_EQ_INT(rh.chunk, 5);
    ts_receiver_release(&P.rx);
    /* after release too (the sender may still miss it) */
    TS_CHECK(feed(5, 0, 5, stream, 10, &rh, &bm, &ev) > 0);
    TS_CHECK_EQ_INT(rh.chunk, 5);
    TS_CHECK(ev.duplicate && !ev.started);
    /* a late frame of an older inference starts nothing */
    TS_CHECK_EQ_INT(feed(3, 0, 5, stream, 10, &rh, &bm, &ev), 0);
    TS_CHECK(ev.duplicate && !ev.started);
    TS_CHECK_EQ_INT(ts_receiver_state(&P.rx), TS_RECEIVER_IDLE);
    /* a newer inference replaces a partial one (its sender gave up) */
    TS_CHECK_EQ_INT(feed(6, 0, 5, stream, 10, &rh, &bm, &ev), 0);
    TS_CHECK(ev.started);
    TS_CHECK_EQ_INT(feed(7, 0, 5, stream, 10, &rh, &bm, &ev), 0);
    TS_CHECK(ev.started && ev.dropped);
    /* CTRL ABORT drops the partial tensor */
    TS_CHECK_EQ_INT(ts_receiver_abort(&P.rx, 7), 1);
    TS_CHECK_EQ_INT(ts_receiver_state(&P.rx), TS_RECEIVER_IDLE);
}

static void test_receiver_window_bounds(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 16, 18); /* 2 B chunks */
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 14, 0) == TS_OK);
    uint8_t two[4] = {1, 2, 3, 4};
    ts_frame_header_t rh;
    uint32_t bm;
    ts_rx_event_t ev;
    TS_CHECK_EQ_INT(feed(1, 1, 100, two, 2, &rh, &bm, &ev), 0);
    TS_CHECK(ev.accepted);
    TS_CHECK_EQ_INT(feed(1, 31, 100, two, 2, &rh, &bm, &ev), 0);
    TS_CHECK(ev.accepted);
    TS_CHECK_EQ_INT(feed(1, 32, 100, two, 2, &rh, &bm, &ev), 0); /* base 0 + 32: outside */
    TS_CHECK(!ev.accepted && !ev.duplicate);
    TS_CHECK_EQ_INT(feed(1, 5, 100, two, 3, &rh, &bm, &ev), 0); /* wrong chunk size */
    TS_CHECK(ev.malformed);
}

static void test_receiver_rejects_a_tensor_that_does_not_fit(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    TS_REQUIRE(pair_init(&cfg, &PERFECT, &PERFECT, 15, 0) == TS_OK);
    P.rx.capacity = 500;
    uint8_t chunk[234] = {0};
    ts_frame_header_t rh;
    uint32_t bm;
    ts_rx_event_t ev;
    TS_CHECK_EQ_INT(feed(1, 0, 3, chunk, 234, &rh, &bm, &ev), 0); /* 2 x 234 + >= 1 fits */
    TS_CHECK(ev.started && ev.accepted);
    TS_CHECK(feed(2, 0, 4, chunk, 234, &rh, &bm, &ev) > 0); /* 3 x 234 + >= 1 > 500 */
    TS_CHECK_EQ_INT(rh.type, TS_FRAME_NACK);
    TS_CHECK_EQ_INT(bm, TS_NACK_TOO_LARGE);
    TS_CHECK(ev.too_large && !ev.started && !ev.dropped);
    TS_CHECK_EQ_INT(ts_receiver_state(&P.rx), TS_RECEIVER_RECEIVING); /* inference 1 goes on */
}

static void test_sender_argument_and_state_errors(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    ts_sender_t t;
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_OK);
    TS_CHECK_EQ_INT(ts_sender_start(&t, NULL, 10, 1, 0, 0), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_sender_start(&t, TENSOR, 100, 1, 0, 0), TS_OK);
    TS_CHECK_EQ_INT(ts_sender_start(&t, TENSOR, 100, 2, 0, 0), TS_ERR_STATE);
    ts_sender_reset(&t);
    /* 65535 chunks of 2 B at most */
    static uint8_t big[65535u * 2u];
    ts_arq_config_t tiny = link_config(TS_MODE_RELIABLE, 4, 18);
    TS_CHECK_EQ_INT(ts_sender_init(&t, &tiny), TS_OK);
    TS_CHECK_EQ_INT(ts_sender_start(&t, big, 65535u * 2u, 1, 0, 0), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_sender_start(&t, big, 65535u * 2u - 4u, 1, 0, 0), TS_OK);
    cfg.window = 0;
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_ERR_ARG);
    cfg.window = TS_MAX_WINDOW + 1;
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_ERR_ARG);
    cfg.window = 4;
    cfg.frame_bytes = 17; /* no room for one value after the header */
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_ERR_ARG);
    cfg.frame_bytes = TS_MAX_FRAME_BYTES + 1;
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_ERR_ARG);
    cfg.frame_bytes = 250;
    cfg.ack_timeout_us = 0;
    TS_CHECK_EQ_INT(ts_sender_init(&t, &cfg), TS_ERR_ARG);
}

static void test_sender_keeps_at_most_min_2w_32_unacknowledged(void)
{
    for (uint16_t w = 1; w <= TS_MAX_WINDOW; w++) {
        ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, w, 250);
        ts_sender_t t;
        TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
        TS_REQUIRE(ts_sender_start(&t, TENSOR, 50000, 1, 0, 0) == TS_OK);
        int sent = 0;
        while (ts_sender_next_frame(&t, 0, NULL) > 0) {
            sent++;
        }
        TS_CHECK_EQ_INT(sent, 2 * w < 32 ? 2 * w : 32);
    }
}

static void test_sender_resends_only_what_was_lost(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 4, 250);
    ts_sender_t t;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_REQUIRE(ts_sender_start(&t, TENSOR, 20000, 3, 0, 0) == TS_OK);
    ts_sender_frame_info_t info;
    for (int i = 0; i < 8; i++) {
        TS_CHECK(ts_sender_next_frame(&t, 0, &info) > 0);
        TS_CHECK(!info.retransmission);
    }
    /* The receiver holds 0, 1 and 3: chunk 2 was sent before 3, so it is lost. */
    uint8_t bitmap[4] = {0x2, 0, 0, 0}; /* base 2: bit 1 = chunk 3 */
    ts_frame_header_t ack = {.type = TS_FRAME_ACK, .inference = 3, .chunk = 2,
                             .chunks = (uint16_t)ts_frames_for_tensor(20000, 250, 1),
                             .length = 4};
    TS_CHECK_EQ_INT(ts_sender_on_answer(&t, &ack, bitmap, 10), TS_OK);
    TS_CHECK(ts_sender_next_frame(&t, 10, &info) > 0);
    TS_CHECK(info.retransmission);
    TS_CHECK_EQ_INT(info.index, 2);
    /* then new chunks: 8 .. 10 (3 acked -> 5 unacked of at most 8 before) */
    TS_CHECK(ts_sender_next_frame(&t, 10, &info) > 0);
    TS_CHECK(!info.retransmission);
    TS_CHECK_EQ_INT(info.index, 8);
    /* an ACK of another inference changes nothing */
    ack.inference = 4;
    TS_CHECK_EQ_INT(ts_sender_on_answer(&t, &ack, bitmap, 10), TS_ERR_STATE);
}

/* Every chunk sent so far is acknowledged and more remain: nothing waits for an answer, so a
 * late poll (the caller was busy past ack_timeout_us) is no timeout; the next chunk goes out. */
static void test_sender_no_timeout_while_nothing_is_outstanding(void)
{
    ts_arq_config_t cfg = link_config(TS_MODE_RELIABLE, 1, 250);
    ts_sender_t t;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_REQUIRE(ts_sender_start(&t, TENSOR, 20000, 5, 0, 0) == TS_OK);
    ts_sender_frame_info_t info;
    TS_CHECK(ts_sender_next_frame(&t, 0, &info) > 0);
    TS_CHECK(ts_sender_next_frame(&t, 0, &info) > 0);
    uint8_t bitmap[4] = {0, 0, 0, 0};
    ts_frame_header_t ack = {.type = TS_FRAME_ACK, .inference = 5, .chunk = 2,
                             .chunks = (uint16_t)ts_frames_for_tensor(20000, 250, 1),
                             .length = 4};
    TS_CHECK_EQ_INT(ts_sender_on_answer(&t, &ack, bitmap, 10), TS_OK);
    int64_t late = 10 + (int64_t)cfg.ack_timeout_us + 1;
    TS_CHECK(ts_sender_deadline_us(&t, late) <= late); /* the window is open */
    TS_CHECK_EQ_INT(ts_sender_poll(&t, late), 0);
    TS_CHECK(ts_sender_next_frame(&t, late, &info) > 0);
    TS_CHECK(!info.retransmission);
    TS_CHECK_EQ_INT(info.index, 2);
}

int main(void)
{
    TS_RUN(test_zero_loss_counts_match_the_simulator);
    TS_RUN(test_paper_frames_reproduce_the_paper_layout);
    TS_RUN(test_reliable_delivers_every_tensor_under_loss_and_reordering);
    TS_RUN(test_reliable_delivers_a_100kb_tensor_under_loss);
    TS_RUN(test_reliable_retransmits_about_the_lost_share_in_order);
    TS_RUN(test_stream_mode_sends_everything_without_answers);
    TS_RUN(test_stream_refused_frame_fails_the_tensor);
    TS_RUN(test_paper_mode_fails_on_loss_and_never_delivers_garbage);
    TS_RUN(test_nack_busy_then_retry);
    TS_RUN(test_nack_tensor_crc_restarts_the_tensor);
    TS_RUN(test_nack_too_large_fails_the_tensor);
    TS_RUN(test_dead_link_fails_after_max_timeouts);
    TS_RUN(test_paper_timeout_fails_without_retransmission);
    TS_RUN(test_receiver_acks_and_selective_bitmap);
    TS_RUN(test_receiver_window_bounds);
    TS_RUN(test_receiver_rejects_a_tensor_that_does_not_fit);
    TS_RUN(test_sender_argument_and_state_errors);
    TS_RUN(test_sender_keeps_at_most_min_2w_32_unacknowledged);
    TS_RUN(test_sender_resends_only_what_was_lost);
    TS_RUN(test_sender_no_timeout_while_nothing_is_outstanding);
    return TS_RESULT();
}
