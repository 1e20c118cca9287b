/*
 * Hybrid transport state machine (ts_hybrid): two boards wired back to back. Board A (stage 1)
 * wakes board B (stage 2) over a fake BLE link that can lose writes; B answers READY over a
 * fake data radio. Time is a plain millisecond counter.
 */
#include <stdint.h>
#include <string.h>

#include "ts_frame.h"
#include "ts_hybrid.h"
#include "ts_test.h"

typedef struct board board_t;

struct board {
    ts_hybrid_t h;
    board_t *peer;       /* A -> B (BLE writes), B -> A (data frames) */
    int radio_starts;
    int radio_stops;
    int ble_drop;        /* writes still to lose */
    int ble_fail;        /* writes whose callback fails */
    int radio_fail;      /* radio_start calls still to fail */
    uint32_t now;        /* delivery time of forwarded frames */
    uint8_t last_ble[64];
    size_t last_ble_len;
    int forwarded_ready; /* READY frames delivered to the peer */
};

static int radio_start(void *ctx)
{
    board_t *b = ctx;
    if (b->radio_fail > 0) {
        b->radio_fail--;
        return TS_ERR_STATE;
    }
    b->radio_starts++;
    return TS_OK;
}

static void radio_stop(void *ctx)
{
    board_t *b = ctx;
    b->radio_stops++;
}

static int ble_send(void *ctx, const uint8_t *frame, size_t len)
{
    board_t *b = ctx;
    if (b->ble_fail > 0) {
        b->ble_fail--;
        return TS_ERR_STATE;
    }
    memcpy(b->last_ble, frame, len);
    b->last_ble_len = len;
    if (b->ble_drop > 0) {
        b->ble_drop--;
        return TS_OK; /* lost on the air */
    }
    return ts_hybrid_on_ble_frame(&b->peer->h, b->now, frame, len);
}

static int data_send(void *ctx, const uint8_t *frame, size_t len)
{
    board_t *b = ctx;
    int rc = ts_hybrid_on_data_frame(&b->peer->h, b->now, frame, len);
    if (rc == 1) {
        b->forwarded_ready++;
    }
    return rc < 0 ? rc : TS_OK;
}

static const ts_hybrid_ops_t OPS = {radio_start, radio_stop, ble_send, data_send};

static void pair(board_t *a, board_t *b, uint8_t retries)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    a->peer = b;
    b->peer = a;
    ts_hybrid_config_t ca = {.stage = 1, .wake_timeout_ms = 500, .wake_retries = retries,
                             .idle_timeout_ms = 100};
    ts_hybrid_config_t cb = ca;
    cb.stage = 2;
    TS_CHECK_EQ_INT(ts_hybrid_init(&a->h, &ca, &OPS, a), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_init(&b->h, &cb, &OPS, b), TS_OK);
}

static void test_init_rejects_bad_arguments(void)
{
    ts_hybrid_t h;
    ts_hybrid_config_t cfg = {.stage = 1, .wake_timeout_ms = 10, .idle_timeout_ms = 10};
    ts_hybrid_ops_t ops = OPS;
    TS_CHECK_EQ_INT(ts_hybrid_init(NULL, &cfg, &ops, NULL), TS_ERR_ARG);
    TS_CHECK_EQ_INT(ts_hybrid_init(&h, &cfg, NULL, NULL), TS_ERR_ARG);
    cfg.stage = 0;
    TS_CHECK_EQ_INT(ts_hybrid_init(&h, &cfg, &ops, NULL), TS_ERR_ARG);
    cfg.stage = 1;
    cfg.idle_timeout_ms = 0;
    TS_CHECK_EQ_INT(ts_hybrid_init(&h, &cfg, &ops, NULL), TS_ERR_ARG);
    cfg.idle_timeout_ms = 10;
    ops.ble_send = NULL;
    TS_CHECK_EQ_INT(ts_hybrid_init(&h, &cfg, &ops, NULL), TS_ERR_ARG);
    ops = OPS;
    ops.data_send = NULL; /* optional: Wi-Fi reports readiness itself */
    TS_CHECK_EQ_INT(ts_hybrid_init(&h, &cfg, &ops, NULL), TS_OK);
    TS_CHECK(h.state == TS_HYBRID_SLEEP);
    TS_CHECK(strcmp(ts_hybrid_state_name(h.state), "sleep") == 0);
    TS_CHECK(strcmp(ts_hybrid_state_name(TS_HYBRID_WAKING), "waking") == 0);
    TS_CHECK(strcmp(ts_hybrid_state_name(TS_HYBRID_AWAKE), "awake") == 0);
}

static void test_full_cycle_sleep_wake_transfer_sleep(void)
{
    board_t a, b;
    pair(&a, &b, 2);
    /* t=0: A has a tensor. It starts its radio and writes the wake PING on BLE. */
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 7), 0);
    TS_CHECK(a.h.state == TS_HYBRID_WAKING && a.radio_starts == 1);
    TS_CHECK(b.h.state == TS_HYBRID_WAKING && b.radio_starts == 1);
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 1);
    TS_CHECK_EQ_INT(b.h.stats.wakes_received, 1);
    /* The wake frame is a valid CTRL PING with the token (stage << 16) | counter. */
    ts_frame_header_t hdr;
    const uint8_t *payload;
    TS_REQUIRE(ts_frame_decode(a.last_ble, a.last_ble_len, &hdr, &payload) == TS_OK);
    TS_CHECK_EQ_INT(hdr.type, TS_FRAME_CTRL);
    TS_CHECK_EQ_INT(hdr.stage, 1);
    TS_CHECK_EQ_INT(hdr.inference, 7);
    TS_CHECK_EQ_INT(payload[0], TS_CTRL_PING);
    TS_CHECK_EQ_INT(payload[1] | (payload[2] << 8) | (payload[3] << 16), 0x10001);
    /* Asking again while waking changes nothing. */
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 10, 7), 0);
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 1);
    /* A's radio is up first: still waiting for B. */
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, 50), TS_OK);
    TS_CHECK(a.h.state == TS_HYBRID_WAKING);
    TS_CHECK(!ts_hybrid_can_send(&a.h, 50));
    /* B's radio is up: it answers READY on the data radio; both are awake. */
    b.now = 200;
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, 200), TS_OK);
    TS_CHECK_EQ_INT(b.forwarded_ready, 1);
    TS_CHECK(b.h.state == TS_HYBRID_AWAKE);
    TS_CHECK(a.h.state == TS_HYBRID_AWAKE);
    TS_CHECK(ts_hybrid_can_send(&a.h, 200));
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 200, 7), 1);
    /* The transfer keeps both up past the idle timeout of 100 ms. */
    for (uint32_t t = 220; t <= 400; t += 20) {
        ts_hybrid_sent(&a.h, t);
        ts_hybrid_activity(&b.h, t);
        TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, t), TS_OK);
        TS_CHECK_EQ_INT(ts_hybrid_poll(&b.h, t), TS_OK);
    }
    TS_CHECK(a.h.state == TS_HYBRID_AWAKE && b.h.state == TS_HYBRID_AWAKE);
    /* Idle: both sleep 100 ms after the last frame and stop their radios. */
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 499), TS_OK);
    TS_CHECK(a.h.state == TS_HYBRID_AWAKE);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 500), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&b.h, 500), TS_OK);
    TS_CHECK(a.h.state == TS_HYBRID_SLEEP && b.h.state == TS_HYBRID_SLEEP);
    TS_CHECK_EQ_INT(a.radio_stops, 1);
    TS_CHECK_EQ_INT(b.radio_stops, 1);
    TS_CHECK_EQ_INT(a.h.stats.sleeps, 1);
    TS_CHECK(!ts_hybrid_can_send(&a.h, 500));
    /* The next tensor wakes B again with a new token. */
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 10000, 8), 0);
    TS_CHECK_EQ_INT(a.h.token, 0x10002u);
    TS_CHECK(b.h.state == TS_HYBRID_WAKING);
}

static void test_lost_wake_writes_are_retried_then_given_up(void)
{
    board_t a, b;
    pair(&a, &b, 2);
    a.ble_drop = 2; /* the first two wake writes are lost */
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), 0);
    TS_CHECK(b.h.state == TS_HYBRID_SLEEP);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 499), TS_OK);
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 1);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 500), TS_OK); /* retry 1: lost */
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 1000), TS_OK); /* retry 2: arrives */
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 3);
    TS_CHECK(b.h.state == TS_HYBRID_WAKING);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, 1010), TS_OK);
    b.now = 1100;
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, 1100), TS_OK);
    TS_CHECK(ts_hybrid_can_send(&a.h, 1100));

    /* Every write lost: after 1 + retries attempts the wake-up fails and A sleeps again. */
    pair(&a, &b, 1);
    a.ble_drop = 100;
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), 0);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, 20), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 500), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 1000), TS_ERR_TIMEOUT);
    TS_CHECK(a.h.state == TS_HYBRID_SLEEP);
    TS_CHECK_EQ_INT(a.radio_stops, 1);
    TS_CHECK_EQ_INT(a.h.stats.wake_timeouts, 1);
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 2);
    /* A failing BLE write counts as an attempt and is retried too. */
    pair(&a, &b, 1);
    a.ble_fail = 1;
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), TS_ERR_STATE);
    TS_CHECK(a.h.state == TS_HYBRID_WAKING);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 500), TS_OK);
    TS_CHECK(b.h.state == TS_HYBRID_WAKING);
}

static void test_woken_board_whose_radio_never_starts_sleeps_again(void)
{
    board_t a, b;
    pair(&a, &b, 0);
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), 0);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&b.h, 499), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&b.h, 500), TS_ERR_TIMEOUT);
    TS_CHECK(b.h.state == TS_HYBRID_SLEEP && b.radio_stops == 1);
    /* A late radio callback is refused. */
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, 600), TS_ERR_STATE);
    /* A radio that cannot start leaves the board asleep and reports the error. */
    pair(&a, &b, 0);
    b.radio_fail = 1;
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), TS_ERR_STATE);
    TS_CHECK(b.h.state == TS_HYBRID_SLEEP);
}

static void test_repeated_wake_while_awake_is_answered_again(void)
{
    board_t a, b;
    pair(&a, &b, 3);
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), 0);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, 10), TS_OK);
    /* B's READY is lost: B is awake, A still waiting. */
    b.h.ops.data_send = NULL;
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, 100), TS_OK);
    TS_CHECK(b.h.state == TS_HYBRID_AWAKE && a.h.state == TS_HYBRID_WAKING);
    b.h.ops.data_send = data_send;
    b.now = 500;
    /* A resends the PING; B, awake, answers at once. */
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, 500), TS_OK);
    TS_CHECK_EQ_INT(b.h.stats.wakes_received, 2);
    TS_CHECK(ts_hybrid_can_send(&a.h, 500));
    /* A stale or foreign PONG is passed on to the stage runner (returns 0). */
    uint8_t frame[TS_HEADER_BYTES + 5];
    uint8_t pong[5] = {TS_CTRL_PONG, 1, 2, 3, 4};
    ts_frame_header_t hdr = {.type = TS_FRAME_CTRL, .stage = 2, .length = 5};
    int n = ts_frame_encode(&hdr, pong, sizeof pong, frame, sizeof frame);
    TS_REQUIRE(n > 0);
    TS_CHECK_EQ_INT(ts_hybrid_on_data_frame(&a.h, 510, frame, (size_t)n), 0);
    /* Garbage is a decode error; a DATA frame on BLE is no wake frame. */
    TS_CHECK(ts_hybrid_on_data_frame(&a.h, 510, frame, 3) < 0);
    TS_CHECK_EQ_INT(ts_hybrid_on_ble_frame(&b.h, 510, frame, (size_t)n), TS_ERR_TYPE);
}

static void test_peer_readiness_expires_and_wifi_reports_it_itself(void)
{
    board_t a, b;
    pair(&a, &b, 0);
    a.h.ops.data_send = NULL;
    b.h.ops.data_send = NULL; /* Wi-Fi: the glue reports association + TCP */
    TS_CHECK_EQ_INT(ts_hybrid_peer_ready(&a.h, 0), TS_ERR_STATE); /* nothing outstanding */
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 0, 1), 0);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, 150), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, 150), TS_OK);
    TS_CHECK(a.h.state == TS_HYBRID_WAKING);
    TS_CHECK_EQ_INT(ts_hybrid_peer_ready(&a.h, 200), TS_OK);
    TS_CHECK(ts_hybrid_can_send(&a.h, 200));
    /* A kept awake by upstream traffic no longer trusts B after B's idle timeout. */
    ts_hybrid_activity(&a.h, 290);
    TS_CHECK(!ts_hybrid_can_send(&a.h, 300));
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, 300, 2), 0); /* wakes B again */
    TS_CHECK_EQ_INT(a.h.stats.wakes_sent, 2);
}

static void test_clock_wraps(void)
{
    board_t a, b;
    pair(&a, &b, 0);
    uint32_t t0 = UINT32_MAX - 50u;
    a.now = b.now = t0;
    TS_CHECK_EQ_INT(ts_hybrid_request(&a.h, t0, 1), 0);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&a.h, t0), TS_OK);
    TS_CHECK_EQ_INT(ts_hybrid_radio_ready(&b.h, t0 + 10u), TS_OK);
    TS_CHECK(ts_hybrid_can_send(&a.h, t0 + 20u));
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, t0 + 60u), TS_OK); /* wrapped, still < 100 ms idle */
    TS_CHECK(a.h.state == TS_HYBRID_AWAKE);
    TS_CHECK_EQ_INT(ts_hybrid_poll(&a.h, t0 + 110u), TS_OK);
    TS_CHECK(a.h.state == TS_HYBRID_SLEEP);
}

int main(void)
{
    TS_RUN(test_init_rejects_bad_arguments);
    TS_RUN(test_full_cycle_sleep_wake_transfer_sleep);
    TS_RUN(test_lost_wake_writes_are_retried_then_given_up);
    TS_RUN(test_woken_board_whose_radio_never_starts_sleeps_again);
    TS_RUN(test_repeated_wake_while_awake_is_answered_again);
    TS_RUN(test_peer_readiness_expires_and_wifi_reports_it_itself);
    TS_RUN(test_clock_wraps);
    return TS_RESULT();
}
