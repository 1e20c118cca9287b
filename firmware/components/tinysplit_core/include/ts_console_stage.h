/*
 * The console command set of a pipeline board, version 1 (portable, no ESP-IDF): `hello`,
 * `status`, `config`, `reset`, `start`, `stop`, `inject` / `data` / `end`, `read`, `stats`,
 * `rssi`, `ping`, `marks`, and the events `output`, `mark`, `rtt`, `error`. Grammar, replies and
 * transcripts: docs/protocol.md ("Console").
 *
 * It sits on ts_console (lines, replies) and drives one ts_stage. Everything the board itself
 * must do (store settings, reboot, RSSI, clock) goes through ts_console_stage_platform_t, so the
 * host tests run this file unchanged against a fake platform.
 *
 * Threading: not thread-safe. Feed console bytes, frames and polls from one task (the ESP-IDF
 * glue runs them all in its stage task).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ts_console.h"
#include "ts_stage.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TS_CONSOLE_STAGE_MAX_STAGES 16          /* pipeline length limit */
#define TS_CONSOLE_STAGE_ACK_TIMEOUT_MS_MAX 60000u
#define TS_CONSOLE_STAGE_MAX_TIMEOUTS_MAX 1000u
#define TS_CONSOLE_STAGE_DATA_MAX 512u          /* tensor bytes per `data` line / `read` reply */
#define TS_CONSOLE_STAGE_SETTING_COUNT 6

/** The settings a board stores (NVS on the boards). `config` changes the stored copy; the board
 *  runs with them after `reset`. Ranges are checked by ts_console_stage_settings_check. */
typedef struct {
    uint8_t stage;           /* 1..stages */
    uint8_t stages;          /* 1..TS_CONSOLE_STAGE_MAX_STAGES */
    ts_mode_t mode;          /* TS_MODE_PAPER or TS_MODE_RELIABLE */
    uint16_t window;         /* DATA frames per answer, 1..TS_MAX_WINDOW */
    uint32_t ack_timeout_ms; /* 1..TS_CONSOLE_STAGE_ACK_TIMEOUT_MS_MAX milliseconds */
    uint16_t max_timeouts;   /* 0..TS_CONSOLE_STAGE_MAX_TIMEOUTS_MAX, 0: never give up */
} ts_console_stage_settings_t;

/** Setting names, in `config` order: "stage", "stages", "mode", "window", "ack_timeout_ms",
 *  "max_timeouts". The ESP-IDF glue uses them as NVS keys too. */
extern const char *const ts_console_stage_setting_keys[TS_CONSOLE_STAGE_SETTING_COUNT];

/** TS_OK when every field is in range and stage <= stages, else TS_ERR_ARG. */
int ts_console_stage_settings_check(const ts_console_stage_settings_t *s);

/** Read one setting as a number (mode: 0 paper, 1 reliable). TS_ERR_ARG for an unknown key. */
int ts_console_stage_settings_get(const ts_console_stage_settings_t *s, const char *key,
                                  uint32_t *value);

/** Set one setting from a number, range-checked alone (stage <= stages is not: check the whole
 *  struct afterwards). TS_ERR_ARG for an unknown key or a value out of range. */
int ts_console_stage_settings_put(ts_console_stage_settings_t *s, const char *key,
                                  uint32_t value);

/** What the board provides. Every callback gets the `ctx` given to ts_console_stage_init. */
typedef struct {
    /* Persist validated settings (they apply after reboot). TS_OK or a negative code. */
    int (*store)(void *ctx, const ts_console_stage_settings_t *settings);
    /* Restart the board; called after the `reset` reply was written. May return (host tests). */
    void (*reboot)(void *ctx);
    /* Optional: latest RSSI of `link` in dBm; TS_OK, or negative when the link has none. */
    int (*rssi)(void *ctx, ts_link_t link, int8_t *out_dbm);
    /* Monotonic time in microseconds (timestamps of `mark` events and inject). */
    int64_t (*now_us)(void *ctx);
    /* Optional: append platform counters to the `stats` reply as " key=value" pairs into
     * buf[cap]; return the characters written (0 if none). */
    size_t (*extra_stats)(void *ctx, char *buf, size_t cap);
} ts_console_stage_platform_t;

/** Fixed facts of a board and the buffers it lends; times in the settings are milliseconds. */
typedef struct {
    const char *firmware;   /* firmware version, one word (no spaces) */
    const char *transport;  /* transport name: "ble", "wifi", "espnow", "sim", ... */
    ts_console_stage_settings_t settings; /* the settings the board runs with */
    size_t input_values;    /* the slice's input tensor, int16 values */
    int8_t input_exponent;  /* the slice's input exponent */
    size_t output_values;   /* the slice's output tensor, int16 values */
    int16_t *inject_buf;    /* stage 1: input_values values for `inject`; else may be NULL */
    int16_t *output_buf;    /* last stage: output_values values kept for `read`; else NULL */
} ts_console_stage_config_t;

/** A board's console; allocate statically, fields are private. */
typedef struct {
    ts_console_t con;
    ts_console_stage_config_t cfg;
    ts_console_stage_settings_t stored;  /* what `config` stored (applies after reset) */
    const ts_console_stage_platform_t *platform;
    void *ctx;
    ts_console_write_t write;
    void *write_ctx;
    ts_stage_t *stage;         /* NULL until ts_console_stage_attach (links not up yet) */
    uint8_t running;           /* `start` given: frames are fed and inject is allowed */
    uint8_t marks;             /* `marks on`: emit `evt mark` */
    /* inject in progress */
    uint8_t inj_active;
    uint16_t inj_inference;
    int8_t inj_exponent;
    uint32_t inj_bytes;
    uint32_t inj_crc32;
    uint32_t inj_received;
    /* latest output (last stage) */
    uint8_t out_valid;
    uint16_t out_inference;
    int8_t out_exponent;
    uint32_t out_bytes;
    uint32_t out_crc32;
    /* events derived from the stage counters */
    uint32_t rx_ignored;       /* frames received while stopped (dropped) */
    uint32_t seen_inference_errors;
    uint32_t seen_send_failures;
    uint32_t seen_rx_dropped_tensors;
    uint32_t seen_tx_refused;
    uint8_t ping_pending[2];
    uint32_t ping_rtt_before[2];
    uint32_t ping_token;
} ts_console_stage_t;

/** Set up (the board starts stopped, links down). `write` receives every protocol line.
 *  TS_ERR_ARG on invalid settings or a missing buffer. */
int ts_console_stage_init(ts_console_stage_t *cs, const ts_console_stage_config_t *cfg,
                          const ts_console_stage_platform_t *platform, void *ctx,
                          ts_console_write_t write, void *write_ctx);

/** The links are up and `stage` is initialised (ts_stage_init) with the board's settings. Until
 *  then the stage commands answer `err state links down`. */
void ts_console_stage_attach(ts_console_stage_t *cs, ts_stage_t *stage);

/** Console bytes from the host; each complete line is executed and answered. */
void ts_console_stage_feed(ts_console_stage_t *cs, const char *bytes, size_t len);

/** A frame received on `from`: fed to the stage while running, else dropped and counted. */
void ts_console_stage_on_frame(ts_console_stage_t *cs, ts_link_t from, const uint8_t *frame,
                               size_t len, int64_t now_us);

/** Whether a frame from `from` may be fed now (ts_stage_accepts while running, else 1: a frame
 *  fed while stopped is dropped anyway). A stream transport keeps the frames it may not feed. */
int ts_console_stage_accepts(const ts_console_stage_t *cs, ts_link_t from);

/** Do due stage work (ts_stage_poll while running) and emit `evt error` / `evt rtt` for what
 *  changed. Call after every fed line or frame and at ts_console_stage_next_deadline_us. */
void ts_console_stage_poll(ts_console_stage_t *cs, int64_t now_us);

/** When ts_console_stage_poll must run next (INT64_MAX: only after new input). */
int64_t ts_console_stage_next_deadline_us(const ts_console_stage_t *cs);

/** Call from the stage's ops.output: keeps the output for `read`, emits `evt output`. */
void ts_console_stage_on_output(ts_console_stage_t *cs, uint16_t inference,
                                const int16_t *values, size_t count, int8_t exponent);

/** Call from the stage's ops.mark: emits `evt mark` when marks are on. */
void ts_console_stage_on_mark(ts_console_stage_t *cs, ts_mark_t mark, uint16_t inference);

/** Report a platform failure as `evt error what=<what> total=<total>` (e.g. receive-queue
 *  drops; `what` is one word). */
void ts_console_stage_report(ts_console_stage_t *cs, const char *what, uint32_t total);

#ifdef __cplusplus
}
#endif
