/*
 * The adaptive window (ts_window.c) on its own, and inside the reliable sender (ts_sender.c):
 * growth, decrease, the delay guard, and a loss / duplication / reordering soak with the window
 * changing mid-tensor: every tensor delivered intact and in order, never more than
 * min(2 w, 32) chunks unacknowledged, the ACK bitmap's 32 chunks never exceeded.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lossy_channel.h"
#include "ts_arq.h"
#include "ts_frame.h"
#include "ts_test.h"
#include "ts_window.h"

/* --- the controller ---------------------------------------------------------------------- */

static void test_init_rejects_bad_bounds(void)
{
    ts_window_t w;
    TS_CHECK_EQ_INT(ts_window_init(&w, 6, 1, 16), TS_OK);
    TS_CHECK_EQ_INT(ts_window_current(&w), 6);
    TS_CHECK_EQ_INT(ts_window_init(&w, 6, 0, 16), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_window_init(&w, 6, 7, 16), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_window_init(&w, 17, 1, 17), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_window_init(&w, 9, 1, 8), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_window_init(NULL, 6, 1, 16), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_window_min_for_cadence(1), 1);
    TS_CHECK_EQ_INT(ts_window_min_for_cadence(2), 2);
    TS_CHECK_EQ_INT(ts_window_min_for_cadence(6), 4);
    TS_CHECK_EQ_INT(ts_window_min_for_cadence(16), 9);
}

static void test_steady_acks_grow_to_the_maximum(void)
{
    ts_window_t w;
    TS_REQUIRE(ts_window_init(&w, 2, 1, 16) == TS_OK);
    ts_window_on_ack(&w, 2, 2000); /* slow start: + acknowledged frames */
    TS_CHECK_EQ_INT(ts_window_current(&w), 4);
    ts_window_on_ack(&w, 4, 4000);
    TS_CHECK_EQ_INT(ts_window_current(&w), 8);
    for (int i = 0; i < 10; i++) {
        ts_window_on_ack(&w, 8, 8000);
    }
    TS_CHECK_EQ_INT(ts_window_current(&w), 16);
    ts_window_on_ack(&w, 0, 1000000); /* nothing new: no sample */
    TS_CHECK_EQ_INT(ts_window_current(&w), 16);
}

static void test_congestion_avoidance_adds_one_per_window(void)
{
    ts_window_t w;
    TS_REQUIRE(ts_window_init(&w, 8, 1, 16) == TS_OK);
    ts_window_on_loss(&w); /* ssthresh = w = 4 */
    TS_CHECK_EQ_INT(ts_window_current(&w), 4);
    ts_window_on_ack(&w, 2, 2000);
    ts_window_on_ack(&w, 2, 2000);
    TS_CHECK_EQ_INT(ts_window_current(&w), 5); /* 4 frames acknowledged at w = 4 */
    ts_window_on_ack(&w, 4, 4000);
    TS_CHECK_EQ_INT(ts_window_current(&w), 5);
    ts_window_on_ack(&w, 1, 1000);
    TS_CHECK_EQ_INT(ts_window_current(&w), 6);
}

static void test_loss_halves_once_per_window_and_timeout_resets(void)
{
    ts_window_t w;
    TS_REQUIRE(ts_window_init(&w, 16, 3, 16) == TS_OK);
    ts_window_on_loss(&w);
    TS_CHECK_EQ_INT(ts_window_current(&w), 8);
    ts_window_on_loss(&w); /* same burst: ignored */
    TS_CHECK_EQ_INT(ts_window_current(&w), 8);
    ts_window_on_ack(&w, 8, 8000); /* a window acknowledged: the next loss counts */
    ts_window_on_loss(&w);
    TS_CHECK_EQ_INT(ts_window_current(&w), 4);
    ts_window_on_ack(&w, 4, 4000);
    ts_window_on_loss(&w);
    TS_CHECK_EQ_INT(ts_window_current(&w), 3); /* never below min_window */
    ts_window_on_timeout(&w);
    TS_CHECK_EQ_INT(ts_window_current(&w), 3);
    TS_CHECK_EQ_INT(w.losses, 4);
    TS_CHECK_EQ_INT(w.timeouts, 1);
}

static void test_slower_frames_hold_the_window(void)
{
    ts_window_t w;
    TS_REQUIRE(ts_window_init(&w, 4, 1, 16) == TS_OK);
    ts_window_on_ack(&w, 4, 4000); /* 1 ms per frame: the reference */
    TS_CHECK_EQ_INT(ts_window_current(&w), 8);
    for (int i = 0; i < 4; i++) {
        ts_window_on_ack(&w, 4, 40000); /* 10 ms per frame: the link got slower */
    }
    uint16_t held = ts_window_current(&w);
    TS_CHECK(held <= 12); /* at most the first ACK grew it before the average caught up */
    for (int i = 0; i < 3; i++) {
        ts_window_on_ack(&w, 4, 40000);
    }
    TS_CHECK_EQ_INT(ts_window_current(&w), held);
    /* The reference forgets: a lasting slowdown becomes the new normal and growth resumes. */
    for (int i = 0; i < 200; i++) {
        ts_window_on_ack(&w, 4, 40000);
    }
    TS_CHECK_EQ_INT(ts_window_current(&w), 16);
}

/* --- inside the sender: a lossy soak ------------------------------------------------------ */

#define TENSOR_BYTES 20000u
enum { TO_SENDER = 0, TO_RECEIVER = 1 };

typedef struct {
    ts_sender_t tx;
    ts_receiver_t rx;
    lc_net_t net;
    lc_channel_t fwd, back;
    int64_t now;
    uint8_t rx_buf[TENSOR_BYTES + TS_TENSOR_CRC_BYTES];
    uint16_t expect_inference;
    const uint8_t *expect;
    size_t expect_bytes;
    uint32_t completed, wrong, over_limit, over_bitmap;
    uint16_t w_min_seen, w_max_seen;
} soak_t;

static soak_t S;
static uint8_t DATA[TENSOR_BYTES];

static uint32_t unacked(const ts_sender_t *t)
{
    uint32_t n = t->next - t->base;
    uint32_t sent = n >= 32u ? UINT32_MAX : (((uint32_t)1u << n) - 1u);
    uint32_t v = sent & ~t->acked, c = 0;
    while (v != 0) {
        v &= v - 1u;
        c++;
    }
    return c;
}

static void soak_rx(const lc_frame_t *f)
{
    ts_frame_header_t h;
    const uint8_t *payload;
    uint8_t reply[TS_ARQ_REPLY_MAX_BYTES];
    ts_rx_event_t ev;
    if (ts_frame_decode(f->data, f->len, &h, &payload) != TS_OK) {
        return;
    }
    int n = ts_receiver_on_data(&S.rx, &h, payload, reply, sizeof reply, &ev);
    if (ev.completed) {
        size_t bytes;
        uint16_t inference;
        const uint8_t *t = ts_receiver_tensor(&S.rx, &bytes, &inference, NULL);
        S.completed++;
        if (t == NULL || S.expect == NULL || inference != S.expect_inference ||
            bytes != S.expect_bytes || memcmp(t, S.expect, bytes) != 0) {
            S.wrong++;
        }
        S.expect = NULL;
        ts_receiver_release(&S.rx);
    }
    if (n > 0) {
        lc_send(&S.net, &S.back, S.now, TO_SENDER, 0, reply, (size_t)n);
    }
}

static void soak_step_checks(void)
{
    uint16_t w = ts_sender_window(&S.tx);
    S.w_min_seen = w < S.w_min_seen ? w : S.w_min_seen;
    S.w_max_seen = w > S.w_max_seen ? w : S.w_max_seen;
    S.over_bitmap += S.tx.next - S.tx.base > 32u;
}

static void soak_pump(void)
{
    ts_sender_frame_info_t info;
    int n;
    while ((n = ts_sender_next_frame(&S.tx, S.now, &info)) > 0) {
        /* A new chunk is only sent within the window's budget (resends fill holes only). */
        uint16_t w = ts_sender_window(&S.tx);
        uint32_t lim = 2u * w < 32u ? 2u * w : 32u;
        if (!info.retransmission && unacked(&S.tx) > lim) {
            S.over_limit++;
        }
        lc_send(&S.net, &S.fwd, S.now, TO_RECEIVER, 0, ts_sender_frame(&S.tx), (size_t)n);
        ts_sender_sent(&S.tx, 1, S.now);
        soak_step_checks();
    }
}

static int soak_tensor(uint16_t inference, size_t bytes)
{
    S.expect = DATA;
    S.expect_bytes = bytes;
    S.expect_inference = inference;
    if (ts_sender_start(&S.tx, DATA, bytes, inference, -3, S.now) != TS_OK) {
        return 0;
    }
    int64_t end = S.now + 600000000;
    for (;;) {
        soak_pump();
        ts_sender_state_t st = ts_sender_state(&S.tx);
        if (st != TS_SENDER_ACTIVE) {
            ts_sender_reset(&S.tx);
            return st == TS_SENDER_DONE;
        }
        int64_t t = lc_next_time(&S.net);
        int64_t d = ts_sender_deadline_us(&S.tx, S.now);
        t = d < t ? d : t;
        if (t == INT64_MAX || t > end) {
            return 0;
        }
        S.now = t > S.now ? t : S.now;
        while (lc_next_time(&S.net) <= S.now) {
            static lc_frame_t f;
            lc_pop(&S.net, &f);
            if (f.dst == TO_RECEIVER) {
                soak_rx(&f);
            } else {
                ts_frame_header_t h;
                const uint8_t *payload;
                if (ts_frame_decode(f.data, f.len, &h, &payload) == TS_OK) {
                    ts_sender_on_answer(&S.tx, &h, payload, S.now);
                }
            }
            soak_step_checks();
        }
        ts_sender_poll(&S.tx, S.now);
        soak_step_checks();
    }
}

static void test_adaptive_sender_delivers_everything_in_order_under_loss(void)
{
    static const uint16_t cadences[] = {1, 3, 6, 16};
    static const lc_params_t bad = {.loss = 0.08, .dup = 0.03, .corrupt = 0.02,
                                    .latency_us = 500, .jitter_us = 1500, .frame_us = 100};
    uint32_t runs = 0, grew = 0, shrank = 0;
    for (uint32_t seed = 1; seed <= 24; seed++) {
        for (size_t k = 0; k < sizeof cadences / sizeof cadences[0]; k++) {
            for (size_t b = 0; b < TENSOR_BYTES; b++) {
                DATA[b] = (uint8_t)(b * 31u + seed);
            }
            ts_arq_config_t cfg = {.mode = TS_MODE_RELIABLE, .stage = 1,
                                   .window = cadences[k], .frame_bytes = 250,
                                   .ack_timeout_us = 20000, .busy_retry_us = 5000};
            memset(&S, 0, sizeof S);
            TS_REQUIRE(ts_sender_init(&S.tx, &cfg) == TS_OK);
            TS_REQUIRE(ts_sender_set_adaptive(&S.tx, 1) == TS_OK);
            cfg.stage = 2;
            TS_REQUIRE(ts_receiver_init(&S.rx, &cfg, S.rx_buf, sizeof S.rx_buf, 0) == TS_OK);
            lc_net_init(&S.net);
            lc_channel_init(&S.fwd, &bad, seed * 2u + 1u);
            lc_channel_init(&S.back, &bad, seed * 2u + 2u);
            S.w_min_seen = UINT16_MAX;
            uint16_t start = ts_sender_window(&S.tx);
            for (uint16_t i = 0; i < 4; i++) {
                size_t bytes = i == 3 ? 2u : TENSOR_BYTES - 64u * i;
                TS_CHECK(soak_tensor((uint16_t)(100u + i), bytes));
            }
            TS_CHECK_EQ_INT(S.completed, 4);
            TS_CHECK_EQ_INT(S.wrong, 0);
            TS_CHECK_EQ_INT(S.over_limit, 0);
            TS_CHECK_EQ_INT(S.over_bitmap, 0);
            TS_CHECK(S.w_max_seen <= TS_MAX_WINDOW);
            TS_CHECK(S.w_min_seen >= ts_window_min_for_cadence(cadences[k]));
            grew += S.w_max_seen > start;
            shrank += S.w_min_seen < S.w_max_seen;
            runs++;
        }
    }
    printf("    %u runs: the window grew in %u, shrank mid-transfer in %u\n", runs, grew, shrank);
    TS_CHECK(grew > runs / 2);
    TS_CHECK(shrank > runs / 2);
}

static void test_paper_and_stream_keep_the_fixed_window(void)
{
    ts_arq_config_t cfg = {.mode = TS_MODE_PAPER, .stage = 1, .window = 5, .frame_bytes = 250,
                           .ack_timeout_us = 1000};
    ts_sender_t t;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(ts_sender_set_adaptive(&t, 1), TS_OK);
    TS_CHECK_EQ_INT(ts_sender_window(&t), 5);
    TS_CHECK_EQ_INT(t.adaptive, 0);
    cfg.mode = TS_MODE_RELIABLE;
    cfg.stream = 1;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_CHECK_EQ_INT(ts_sender_set_adaptive(&t, 1), TS_OK);
    TS_CHECK_EQ_INT(t.adaptive, 0);
    cfg.stream = 0;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_REQUIRE(ts_sender_start(&t, DATA, 1000, 1, 0, 0) == TS_OK);
    TS_CHECK_EQ_INT(ts_sender_set_adaptive(&t, 1), TS_ERR_STATE);
}

static void test_adaptive_sender_first_burst_is_twice_the_cadence(void)
{
    ts_arq_config_t cfg = {.mode = TS_MODE_RELIABLE, .stage = 1, .window = 6,
                           .frame_bytes = 250, .ack_timeout_us = 1000};
    ts_sender_t t;
    TS_REQUIRE(ts_sender_init(&t, &cfg) == TS_OK);
    TS_REQUIRE(ts_sender_set_adaptive(&t, 1) == TS_OK);
    TS_REQUIRE(ts_sender_start(&t, DATA, 10000, 1, 0, 0) == TS_OK);
    int sent = 0;
    while (ts_sender_next_frame(&t, 0, NULL) > 0) {
        sent++;
    }
    TS_CHECK_EQ_INT(sent, 12);
}

int main(void)
{
    TS_RUN(test_init_rejects_bad_bounds);
    TS_RUN(test_steady_acks_grow_to_the_maximum);
    TS_RUN(test_congestion_avoidance_adds_one_per_window);
    TS_RUN(test_loss_halves_once_per_window_and_timeout_resets);
    TS_RUN(test_slower_frames_hold_the_window);
    TS_RUN(test_adaptive_sender_delivers_everything_in_order_under_loss);
    TS_RUN(test_paper_and_stream_keep_the_fixed_window);
    TS_RUN(test_adaptive_sender_first_burst_is_twice_the_cadence);
    return TS_RESULT();
}
