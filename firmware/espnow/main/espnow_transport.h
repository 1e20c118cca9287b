/*
 * The ESP-NOW transport (ts_transport_t, contract in ts_app.h): Wi-Fi station mode without a
 * connection on a fixed channel, the neighbours addressed by the MACs in
 * CONFIG_TINYSPLIT_ESPNOW_PEERS, one frame in flight (send() returns when the send callback
 * reports the MAC-layer outcome).
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"
#include "ts_app.h"

#ifdef __cplusplus
extern "C" {
#endif

esp_err_t ts_espnow_start(ts_transport_t *self, const ts_app_config_t *cfg);
esp_err_t ts_espnow_send(ts_transport_t *self, ts_link_t link, const uint8_t *frame, size_t len);
esp_err_t ts_espnow_rssi(ts_transport_t *self, ts_link_t link, int8_t *out_dbm);

#ifdef __cplusplus
}
#endif
