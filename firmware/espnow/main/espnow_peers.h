/*
 * Parser of the ESP-NOW peer list (portable, no ESP-IDF): CONFIG_TINYSPLIT_ESPNOW_PEERS holds the
 * Wi-Fi station MACs of stages 1..N in pipeline order, "aa:bb:cc:dd:ee:ff,11:22:33:44:55:66,...".
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_ESPNOW_MAC_BYTES 6
#define TS_ESPNOW_MAX_PEERS 32 /* stages one peer list can name */

/**
 * Parse `text`: MACs of six two-digit hex octets (either case) separated by ':', entries separated
 * by ',' with optional spaces around them. Fills macs[0..count) and returns count (>= 1), or a
 * negative ts_err_t with *error_at set to the 0-based offset of the offending character:
 * TS_ERR_ARG (syntax, including an empty list), TS_ERR_NOSPACE (more than `max` entries),
 * TS_ERR_FIELD (a multicast / broadcast MAC, or a MAC listed twice; offset of that entry).
 */
int ts_espnow_parse_peers(const char *text, uint8_t (*macs)[TS_ESPNOW_MAC_BYTES], size_t max,
                          size_t *error_at);

#ifdef __cplusplus
}
#endif
