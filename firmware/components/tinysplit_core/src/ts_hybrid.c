/*
 * Hybrid transport mode: BLE wake-up, data radio while awake (see ts_hybrid.h, docs/hybrid.md).
 */
#include "ts_hybrid.h"

#include <string.h>

#include "ts_frame.h"

#define CTRL_BYTES 5u /* opcode + u32 token */

/* Deadlines compare modulo 2^32, so a millisecond clock may wrap. */
static bool due(uint32_t now_ms, uint32_t deadline_ms)
{
    return (int32_t)(now_ms - deadline_ms) >= 0;
}

static int encode_ctrl(const ts_hybrid_t *h, uint8_t op, uint32_t token, uint8_t *out,
                       size_t cap)
{
    uint8_t payload[CTRL_BYTES] = {op, (uint8_t)(token & 0xFFu), (uint8_t)((token >> 8) & 0xFFu),
                                   (uint8_t)((token >> 16) & 0xFFu), (uint8_t)(token >> 24)};
    ts_frame_header_t hdr = {
        .type = TS_FRAME_CTRL,
        .stage = h->cfg.stage,
        .inference = h->inference,
        .length = CTRL_BYTES,
    };
    return ts_frame_encode(&hdr, payload, sizeof payload, out, cap);
}

static uint32_t token_of(const uint8_t *payload)
{
    return (uint32_t)payload[1] | ((uint32_t)payload[2] << 8) | ((uint32_t)payload[3] << 16) |
           ((uint32_t)payload[4] << 24);
}

static int send_wake(ts_hybrid_t *h, uint32_t now_ms)
{
    uint8_t frame[TS_HEADER_BYTES + CTRL_BYTES];
    int n = encode_ctrl(h, TS_CTRL_PING, h->token, frame, sizeof frame);
    h->attempts++;
    h->wake_deadline_ms = now_ms + h->cfg.wake_timeout_ms;
    if (n < 0) {
        return n;
    }
    h->stats.wakes_sent++;
    return h->ops.ble_send(h->ctx, frame, (size_t)n);
}

static int send_ready(ts_hybrid_t *h)
{
    if (h->ops.data_send == NULL) {
        return TS_OK; /* the data radio tells the peer itself (Wi-Fi association) */
    }
    uint8_t frame[TS_HEADER_BYTES + CTRL_BYTES];
    int n = encode_ctrl(h, TS_CTRL_PONG, h->answer, frame, sizeof frame);
    if (n < 0) {
        return n;
    }
    return h->ops.data_send(h->ctx, frame, (size_t)n);
}

static void go_sleep(ts_hybrid_t *h)
{
    h->ops.radio_stop(h->ctx);
    h->state = TS_HYBRID_SLEEP;
    h->radio_up = false;
    h->peer_ready = false;
    h->waking_peer = false;
    h->answer_pending = false;
}

static int start_radio(ts_hybrid_t *h, uint32_t now_ms)
{
    int rc = h->ops.radio_start(h->ctx);
    if (rc < 0) {
        return rc;
    }
    h->state = TS_HYBRID_WAKING;
    h->radio_up = false;
    h->wake_deadline_ms = now_ms + h->cfg.wake_timeout_ms;
    return TS_OK;
}

/* WAKING becomes AWAKE once the radio is up and nothing is outstanding. */
static void settle(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h->state == TS_HYBRID_WAKING && h->radio_up && !h->waking_peer && !h->answer_pending) {
        h->state = TS_HYBRID_AWAKE;
        h->idle_deadline_ms = now_ms + h->cfg.idle_timeout_ms;
    }
}

/* The peer sleeps after its own idle timeout: stop trusting its readiness then. */
static void expire_peer(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h->peer_ready && due(now_ms, h->peer_until_ms)) {
        h->peer_ready = false;
    }
}

int ts_hybrid_init(ts_hybrid_t *h, const ts_hybrid_config_t *cfg, const ts_hybrid_ops_t *ops,
                   void *ctx)
{
    if (h == NULL || cfg == NULL || ops == NULL || ops->radio_start == NULL ||
        ops->radio_stop == NULL || ops->ble_send == NULL || cfg->stage == 0 ||
        cfg->wake_timeout_ms == 0 || cfg->idle_timeout_ms == 0) {
        return TS_ERR_ARG;
    }
    memset(h, 0, sizeof *h);
    h->cfg = *cfg;
    h->ops = *ops;
    h->ctx = ctx;
    h->state = TS_HYBRID_SLEEP;
    return TS_OK;
}

int ts_hybrid_request(ts_hybrid_t *h, uint32_t now_ms, uint16_t inference)
{
    if (h == NULL) {
        return TS_ERR_ARG;
    }
    expire_peer(h, now_ms);
    if (h->state == TS_HYBRID_AWAKE && h->peer_ready) {
        return 1;
    }
    if (h->waking_peer) {
        return 0; /* under way */
    }
    if (h->state == TS_HYBRID_SLEEP) {
        int rc = start_radio(h, now_ms);
        if (rc < 0) {
            return rc;
        }
    }
    h->counter++;
    h->token = ((uint32_t)h->cfg.stage << 16) | h->counter;
    h->inference = inference;
    h->attempts = 0;
    h->waking_peer = true;
    int rc = send_wake(h, now_ms);
    /* A failed BLE write is retried by ts_hybrid_poll like a lost one. */
    return rc < 0 ? rc : 0;
}

int ts_hybrid_on_ble_frame(ts_hybrid_t *h, uint32_t now_ms, const uint8_t *frame, size_t len)
{
    if (h == NULL || frame == NULL) {
        return TS_ERR_ARG;
    }
    ts_frame_header_t hdr;
    const uint8_t *payload;
    int rc = ts_frame_decode(frame, len, &hdr, &payload);
    if (rc < 0) {
        return rc;
    }
    if (hdr.type != TS_FRAME_CTRL || payload[0] != TS_CTRL_PING) {
        return TS_ERR_TYPE;
    }
    h->stats.wakes_received++;
    h->answer = token_of(payload);
    if (h->state == TS_HYBRID_SLEEP) {
        h->answer_pending = true;
        rc = start_radio(h, now_ms);
        if (rc < 0) {
            h->answer_pending = false;
        }
        return rc;
    }
    if (!h->radio_up) {
        h->answer_pending = true; /* READY goes out once the radio is up */
        return TS_OK;
    }
    /* Awake already (the peer missed our READY, or woke us while we were up): answer again. */
    ts_hybrid_activity(h, now_ms);
    return send_ready(h);
}

int ts_hybrid_radio_ready(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h == NULL) {
        return TS_ERR_ARG;
    }
    if (h->state == TS_HYBRID_SLEEP) {
        return TS_ERR_STATE; /* a late callback after the radio was stopped */
    }
    h->radio_up = true;
    int rc = TS_OK;
    if (h->answer_pending) {
        h->answer_pending = false;
        rc = send_ready(h);
    }
    settle(h, now_ms);
    return rc;
}

int ts_hybrid_peer_ready(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h == NULL) {
        return TS_ERR_ARG;
    }
    if (!h->waking_peer) {
        return TS_ERR_STATE;
    }
    h->waking_peer = false;
    h->peer_ready = true;
    h->peer_until_ms = now_ms + h->cfg.idle_timeout_ms;
    settle(h, now_ms);
    if (h->state == TS_HYBRID_AWAKE) {
        h->idle_deadline_ms = now_ms + h->cfg.idle_timeout_ms;
    }
    return TS_OK;
}

int ts_hybrid_on_data_frame(ts_hybrid_t *h, uint32_t now_ms, const uint8_t *frame, size_t len)
{
    if (h == NULL || frame == NULL) {
        return TS_ERR_ARG;
    }
    ts_frame_header_t hdr;
    const uint8_t *payload;
    int rc = ts_frame_decode(frame, len, &hdr, &payload);
    if (rc < 0) {
        return rc;
    }
    if (hdr.type == TS_FRAME_CTRL && payload[0] == TS_CTRL_PONG && h->waking_peer &&
        token_of(payload) == h->token) {
        return ts_hybrid_peer_ready(h, now_ms) < 0 ? TS_ERR_STATE : 1;
    }
    ts_hybrid_activity(h, now_ms);
    if (h->peer_ready && hdr.stage == (uint8_t)(h->cfg.stage + 1u)) {
        h->peer_until_ms = now_ms + h->cfg.idle_timeout_ms; /* the peer answered: it is up */
    }
    return 0;
}

void ts_hybrid_activity(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h != NULL && h->state == TS_HYBRID_AWAKE) {
        h->idle_deadline_ms = now_ms + h->cfg.idle_timeout_ms;
    }
}

void ts_hybrid_sent(ts_hybrid_t *h, uint32_t now_ms)
{
    ts_hybrid_activity(h, now_ms);
    if (h != NULL && h->peer_ready) {
        h->peer_until_ms = now_ms + h->cfg.idle_timeout_ms; /* the peer stays up for it too */
    }
}

int ts_hybrid_poll(ts_hybrid_t *h, uint32_t now_ms)
{
    if (h == NULL) {
        return TS_ERR_ARG;
    }
    expire_peer(h, now_ms);
    bool waiting = h->waking_peer || h->state == TS_HYBRID_WAKING;
    if (waiting && due(now_ms, h->wake_deadline_ms)) {
        if (h->waking_peer && h->attempts <= h->cfg.wake_retries) {
            (void)send_wake(h, now_ms); /* a failed write counts as an attempt */
            return TS_OK;
        }
        h->stats.wake_timeouts++;
        if (h->state == TS_HYBRID_WAKING) {
            go_sleep(h);
        } else {
            h->waking_peer = false; /* awake for upstream: the idle timer decides */
        }
        return TS_ERR_TIMEOUT;
    }
    if (h->state == TS_HYBRID_AWAKE && !h->waking_peer && due(now_ms, h->idle_deadline_ms)) {
        go_sleep(h);
        h->stats.sleeps++;
    }
    return TS_OK;
}

bool ts_hybrid_can_send(const ts_hybrid_t *h, uint32_t now_ms)
{
    return h != NULL && h->state == TS_HYBRID_AWAKE && h->peer_ready &&
           !due(now_ms, h->peer_until_ms);
}

const char *ts_hybrid_state_name(ts_hybrid_state_t state)
{
    switch (state) {
    case TS_HYBRID_SLEEP:
        return "sleep";
    case TS_HYBRID_WAKING:
        return "waking";
    case TS_HYBRID_AWAKE:
        return "awake";
    }
    return "?";
}
