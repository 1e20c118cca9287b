/*
 * The Wi-Fi SoftAP + TCP transport (ts_transport_t, contract in ts_app.h).
 *
 * Topology: stage CONFIG_TINYSPLIT_WIFI_AP_STAGE runs the SoftAP at 192.168.4.1 and is also a
 * pipeline stage; every other stage joins it as a station with the static IP 192.168.4.(10+stage).
 * Each stage listens on CONFIG_TINYSPLIT_WIFI_PORT for its UP link (the previous stage connects)
 * and connects to the next stage for its DOWN link. wifi_radio.c brings up the radio and IP,
 * wifi_links.c the TCP links.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "ts_app.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ts_transport_t callbacks (wifi_links.c). */
esp_err_t ts_wifi_start(ts_transport_t *self, const ts_app_config_t *cfg);
esp_err_t ts_wifi_send(ts_transport_t *self, ts_link_t link, const uint8_t *frame, size_t len);
esp_err_t ts_wifi_rssi(ts_transport_t *self, ts_link_t link, int8_t *out_dbm);

/** IPv4 address of `stage` (1-based) in network byte order: .1 for the AP stage, else .(10+stage). */
uint32_t ts_wifi_stage_ip(uint8_t stage);

/** Bring up Wi-Fi: the SoftAP on the AP stage, a station with its static IP elsewhere; power
 *  save off. Returns without waiting for the station to join (ts_wifi_radio_wait_ip). */
esp_err_t ts_wifi_radio_start(uint8_t stage, uint8_t stages);

/** Block until the station holds its IP (returns at once on the AP stage). */
void ts_wifi_radio_wait_ip(void);

/** RSSI in dBm of the radio hop towards the stage at `peer_ip` (network byte order): a station
 *  reports its AP's signal; the AP reports the station whose MAC its ARP table holds for
 *  `peer_ip`. ESP_ERR_NOT_FOUND while that MAC or station is unknown. */
esp_err_t ts_wifi_radio_rssi(uint32_t peer_ip, int8_t *out_dbm);

#ifdef __cplusplus
}
#endif
