/*
 * ESP-IDF glue shared by the transport firmwares: the transport contract and the app entry point.
 *
 * A transport firmware's app_main() fills a ts_transport_t and calls ts_app_run(). Everything
 * else (configuration from Kconfig + NVS, the ESP-DL model from the `model` partition, the
 * USB-serial console, scribe marks, the stage loop) is implemented once in this component.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "ts_stage.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Runtime configuration: Kconfig defaults, overridden by NVS keys the console `config` sets. */
typedef struct {
    uint8_t stage;          /* 1-based */
    uint8_t stages;
    ts_mode_t mode;
    uint16_t window;
    uint32_t ack_timeout_ms;
    uint16_t max_timeouts;
    int scribe_gpio;        /* -1: no scribe line */
} ts_app_config_t;

typedef struct ts_transport ts_transport_t;

/** The contract a transport implements (one instance per firmware, all calls from the app task
 *  unless noted). */
struct ts_transport {
    const char *name;       /* "ble", "wifi" or "espnow" */
    size_t frame_bytes;     /* largest frame towards the next stage; valid after start() */
    bool stream;            /* an ordered reliable byte stream (TCP): no window ACKs */
    /* Bring up the radio and the links of `cfg->stage` of `cfg->stages` (stage 1 has no UP link,
     * the last stage no DOWN link). Returns once the links are up or fails. Received frames are
     * handed to ts_app_receive() from any task. */
    esp_err_t (*start)(ts_transport_t *self, const ts_app_config_t *cfg);
    /* Send one frame on `link`; may block for pacing. ESP_OK or an error (counted refused). */
    esp_err_t (*send)(ts_transport_t *self, ts_link_t link, const uint8_t *frame, size_t len);
    /* Latest RSSI of `link` in dBm; ESP_ERR_INVALID_STATE when the link is down. */
    esp_err_t (*rssi)(ts_transport_t *self, ts_link_t link, int8_t *out_dbm);
    void *ctx;              /* the transport's own state */
};

/** Queue one received frame for the stage loop (copies it; safe from any task, not from ISRs).
 *  ESP_ERR_NO_MEM if the queue is full (the frame is dropped and counted). */
esp_err_t ts_app_receive(ts_link_t from, const uint8_t *frame, size_t len);

/** As ts_app_receive, but wait up to `timeout_ms` (UINT32_MAX: forever) for a free slot. For
 *  stream transports (TCP): their reader blocks instead of dropping, so TCP flow control holds
 *  the sender back, since nothing would repair a chunk dropped from a stream. The stage task
 *  also keeps UP frames (and their slots) while the stage's input buffer is full
 *  (ts_stage_accepts), so a reader waits here until the stage can take its frames. Not from
 *  callbacks of the radio stacks. ESP_ERR_NO_MEM when the wait expires (the frame is dropped and
 *  counted). */
esp_err_t ts_app_receive_wait(ts_link_t from, const uint8_t *frame, size_t len,
                              uint32_t timeout_ms);

/** Load the configuration (Kconfig + NVS), the model, start the console and the transport,
 *  then run the stage loop. Never returns; logs and restarts on a fatal error. */
void ts_app_run(ts_transport_t *transport);

/** The configuration in use (valid once ts_app_run has loaded it). */
const ts_app_config_t *ts_app_config(void);

#ifdef __cplusplus
}
#endif
