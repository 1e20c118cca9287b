/*
 * ESP-NOW peer list parser (see espnow_peers.h). Free of ESP-IDF so it can be checked on the host.
 */
#include "espnow_peers.h"

#include <string.h>

#include "ts_frame.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static size_t skip_spaces(const char *text, size_t i)
{
    while (text[i] == ' ') {
        i++;
    }
    return i;
}

/* One MAC at text[*i]; on success *i is just past it. */
static int parse_mac(const char *text, size_t *i, uint8_t mac[TS_ESPNOW_MAC_BYTES],
                     size_t *error_at)
{
    size_t at = *i;
    for (int octet = 0; octet < TS_ESPNOW_MAC_BYTES; octet++) {
        int hi = hex_digit(text[at]);
        if (hi < 0) {
            *error_at = at;
            return TS_ERR_ARG;
        }
        int lo = hex_digit(text[at + 1]); /* text[at] is a digit, so text[at + 1] exists */
        if (lo < 0) {
            *error_at = at + 1;
            return TS_ERR_ARG;
        }
        mac[octet] = (uint8_t)((hi << 4) | lo);
        at += 2;
        if (octet < TS_ESPNOW_MAC_BYTES - 1) {
            if (text[at] != ':') {
                *error_at = at;
                return TS_ERR_ARG;
            }
            at++;
        }
    }
    *i = at;
    return TS_OK;
}

int ts_espnow_parse_peers(const char *text, uint8_t (*macs)[TS_ESPNOW_MAC_BYTES], size_t max,
                          size_t *error_at)
{
    size_t i = 0;
    size_t count = 0;
    *error_at = 0;
    for (;;) {
        i = skip_spaces(text, i);
        size_t start = i;
        if (count == max) {
            *error_at = start;
            return TS_ERR_NOSPACE;
        }
        int err = parse_mac(text, &i, macs[count], error_at);
        if (err != TS_OK) {
            return err;
        }
        if (macs[count][0] & 0x01u) { /* group bit: broadcast or multicast, never one board */
            *error_at = start;
            return TS_ERR_FIELD;
        }
        for (size_t k = 0; k < count; k++) {
            if (memcmp(macs[k], macs[count], TS_ESPNOW_MAC_BYTES) == 0) {
                *error_at = start;
                return TS_ERR_FIELD;
            }
        }
        count++;
        i = skip_spaces(text, i);
        if (text[i] == '\0') {
            return (int)count;
        }
        if (text[i] != ',') {
            *error_at = i;
            return TS_ERR_ARG;
        }
        i++;
    }
}
