/*
 * Hybrid transport mode (portable, no ESP-IDF): a board light-sleeps holding BLE connections to
 * its neighbours and moves tensors over a data radio (Wi-Fi or ESP-NOW) only while awake.
 *
 * One ts_hybrid_t per board tracks its data radio and the readiness of its downstream peer:
 *
 *   SLEEP  --request (tensor to send): radio_start + wake frame on BLE-->  WAKING
 *   SLEEP  --wake frame received on BLE: radio_start------------------->  WAKING
 *   WAKING --radio up (and, when this board woke the peer, its READY)-->  AWAKE
 *   WAKING --wake_timeout_ms without that: resend the wake frame, up to
 *            wake_retries times, then radio_stop, TS_ERR_TIMEOUT-------->  SLEEP
 *   AWAKE  --idle_timeout_ms without data activity: radio_stop-------->  SLEEP
 *
 * The wake frame is a reliable-mode CTRL PING (docs/protocol.md) written on the BLE connection;
 * its token is (stage << 16) | wake counter. The woken board answers, once its data radio is up,
 * with a CTRL PONG carrying the same token on the data radio (ESP-NOW), or the glue reports the
 * peer ready itself (Wi-Fi: the station associated and the TCP connection is up). No new frame
 * type: the codec is unchanged. docs/hybrid.md describes the mode and its energy model.
 *
 * Time is passed in by the caller (milliseconds, any monotonic origin, wrapping at 2^32); the
 * core never allocates and never blocks. Callbacks run inside the calls that trigger them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Data radio state of a board. */
typedef enum {
    TS_HYBRID_SLEEP = 0,  /* data radio off, light sleep allowed, BLE connections held */
    TS_HYBRID_WAKING = 1, /* data radio starting (and / or the peer being woken) */
    TS_HYBRID_AWAKE = 2,  /* data radio up */
} ts_hybrid_state_t;

/** Glue callbacks (ESP-IDF side). Return TS_OK (0) or a negative ts_err_t. */
typedef struct {
    /* Start the data radio without blocking; call ts_hybrid_radio_ready() once it is up. */
    int (*radio_start)(void *ctx);
    /* Stop the data radio; the board may light-sleep afterwards. */
    void (*radio_stop)(void *ctx);
    /* Write `frame` (the wake PING) on the BLE connection to the downstream board. */
    int (*ble_send)(void *ctx, const uint8_t *frame, size_t len);
    /* Send `frame` (the READY PONG) to the upstream board on the data radio. NULL when the
     * data radio signals readiness itself (Wi-Fi: association + TCP connection). */
    int (*data_send)(void *ctx, const uint8_t *frame, size_t len);
} ts_hybrid_ops_t;

/** Configuration (CONFIG_TINYSPLIT_HYBRID_* in Kconfig). */
typedef struct {
    uint8_t stage;            /* this board's stage, 1-based (frames' stage field) */
    uint32_t wake_timeout_ms; /* WAKING longer than this: resend the wake frame / give up, ms */
    uint8_t wake_retries;     /* wake frames resent before giving up (0: one attempt) */
    uint32_t idle_timeout_ms; /* AWAKE without data activity this long: sleep, ms */
} ts_hybrid_config_t;

/** Counters for the console `stats` command. */
typedef struct {
    uint32_t wakes_sent;     /* wake frames written on BLE (retries included) */
    uint32_t wakes_received; /* wake frames received on BLE */
    uint32_t wake_timeouts;  /* wake-ups given up */
    uint32_t sleeps;         /* transitions to SLEEP after the idle timeout */
} ts_hybrid_stats_t;

/** State of one board; treat as opaque. */
typedef struct {
    ts_hybrid_config_t cfg;
    ts_hybrid_ops_t ops;
    void *ctx;
    ts_hybrid_state_t state;
    bool radio_up;        /* the local data radio is up */
    bool waking_peer;     /* a wake frame is outstanding (no READY yet) */
    bool peer_ready;      /* the downstream board's data radio is up */
    bool answer_pending;  /* woken by upstream: send READY once the radio is up */
    uint8_t attempts;     /* wake frames sent for the outstanding wake-up */
    uint16_t inference;   /* inference of the outstanding wake-up */
    uint16_t counter;     /* wake-ups started (low half of the token) */
    uint32_t token;       /* token of the outstanding wake-up */
    uint32_t answer;      /* token to echo in READY */
    uint32_t wake_deadline_ms;
    uint32_t idle_deadline_ms;
    uint32_t peer_until_ms; /* the peer stays up until about then (its own idle timeout) */
    ts_hybrid_stats_t stats;
} ts_hybrid_t;

/** Set up `h` asleep. TS_ERR_ARG on NULL, missing callbacks, stage 0 or zero timeouts. */
int ts_hybrid_init(ts_hybrid_t *h, const ts_hybrid_config_t *cfg, const ts_hybrid_ops_t *ops,
                   void *ctx);

/**
 * A tensor of `inference` is ready to go downstream. Returns 1 when it may be sent now (radio up
 * and the peer ready), 0 when a wake-up is under way (call again after ts_hybrid_radio_ready /
 * ts_hybrid_on_data_frame / ts_hybrid_peer_ready), or a negative error of a callback.
 */
int ts_hybrid_request(ts_hybrid_t *h, uint32_t now_ms, uint16_t inference);

/** `frame` arrived on the BLE connection from upstream: a wake PING starts the radio.
 *  Returns TS_OK, a decode error (frame ignored), or TS_ERR_TYPE for a frame that is no PING. */
int ts_hybrid_on_ble_frame(ts_hybrid_t *h, uint32_t now_ms, const uint8_t *frame, size_t len);

/** The local data radio is up (Wi-Fi started / ESP-NOW peer added). Sends READY when woken. */
int ts_hybrid_radio_ready(ts_hybrid_t *h, uint32_t now_ms);

/** The downstream board reported ready by the data radio itself (Wi-Fi: TCP connected). */
int ts_hybrid_peer_ready(ts_hybrid_t *h, uint32_t now_ms);

/**
 * `frame` arrived on the data radio. Returns 1 when it was the READY of our wake-up (consumed),
 * 0 when it belongs to the stage runner (it counts as activity), or a decode error.
 */
int ts_hybrid_on_data_frame(ts_hybrid_t *h, uint32_t now_ms, const uint8_t *frame, size_t len);

/** Data received outside ts_hybrid_on_data_frame: keeps the radio up. */
void ts_hybrid_activity(ts_hybrid_t *h, uint32_t now_ms);

/** A frame was sent downstream: keeps this radio up, and the peer's (it received it). */
void ts_hybrid_sent(ts_hybrid_t *h, uint32_t now_ms);

/** Run the timers. TS_ERR_TIMEOUT when a wake-up was given up, else TS_OK. */
int ts_hybrid_poll(ts_hybrid_t *h, uint32_t now_ms);

/** True when a tensor may be sent downstream now. */
bool ts_hybrid_can_send(const ts_hybrid_t *h, uint32_t now_ms);

/** "sleep", "waking" or "awake". */
const char *ts_hybrid_state_name(ts_hybrid_state_t state);

#ifdef __cplusplus
}
#endif
