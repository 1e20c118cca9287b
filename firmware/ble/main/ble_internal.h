/*
 * Internals shared by the files of the BLE transport (not a public header):
 *   ble_link.c       link state as send() / rssi() see it, frame hand-off, log helpers
 *   ble_server.c     GATT service and advertising: the UP link (stage i-1 writes to us)
 *   ble_client.c     scanning and GATT client: the DOWN link (we write to stage i+1)
 *   ble_transport.c  NimBLE start-up, host task, the ts_transport_t functions
 * Threads: GAP / GATT callbacks run in the NimBLE host task and own the link state machines;
 * send() and rssi() run in the app task and read link snapshots (ts_ble_link_get).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h" /* before NimBLE: nimble/transport.h uses esp_err_t without including it */
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "host/ble_hs.h"
#include "ts_app.h"

#define TS_BLE_ATT_OVERHEAD 3u /* opcode + handle before a write command / notification */

#define TS_BLE_BIT_UP (1u << 0)   /* UP link ready (stage i-1 subscribed to our notifications) */
#define TS_BLE_BIT_DOWN (1u << 1) /* DOWN link ready (discovered and subscribed) */

/* Manufacturer data in the advertisement: company id 0xFFFF (the SIG's id for tests, not for
 * products), "ts", then the advertiser's 1-based stage. A central looks for its stage + 1. */
#define TS_BLE_MFG_LEN 5
extern const uint8_t ts_ble_mfg_prefix[TS_BLE_MFG_LEN - 1];

/* 5453000N-0000-4000-8000-74696e797370: N = 1 service, 2 data characteristic, 3 ack. */
extern const ble_uuid128_t ts_ble_svc_uuid;
extern const ble_uuid128_t ts_ble_data_uuid;
extern const ble_uuid128_t ts_ble_ack_uuid;

/** This board's place in the pipeline; written by start() before the host task runs. */
typedef struct {
    uint8_t stage;     /* 1-based */
    bool needs_up;     /* stage > 1 */
    bool needs_down;   /* stage < stages */
    bool synced;       /* host and controller in sync (host task only) */
    uint8_t own_addr_type;
    char name[16];     /* "tinysplit-<stage>" */
    EventGroupHandle_t events; /* TS_BLE_BIT_* */
} ts_ble_node_t;

extern ts_ble_node_t ts_ble_node;

/** One link as send() / rssi() see it. */
typedef struct {
    uint16_t conn;       /* BLE_HS_CONN_HANDLE_NONE while down */
    uint16_t val_handle; /* what send() targets: the peer's data value (DOWN), our ack value (UP) */
    uint16_t mtu;        /* ATT MTU of the connection, bytes */
    bool ready;          /* send() may use it */
} ts_ble_link_t;

/* ble_link.c ---------------------------------------------------------------------------------- */

/** A consistent copy of `link` (any task). */
ts_ble_link_t ts_ble_link_get(ts_link_t link);

/** Replace `link` and set or clear its ready bit in ts_ble_node.events (host task). */
void ts_ble_link_set(ts_link_t link, uint16_t conn, uint16_t val_handle, uint16_t mtu, bool ready);

/** Update the MTU of `link` if it still is connection `conn` (host task). */
void ts_ble_link_set_mtu(ts_link_t link, uint16_t conn, uint16_t mtu);

/** Mark `link` down (host task). */
void ts_ble_link_clear(ts_link_t link);

/** "UP" or "DOWN". */
const char *ts_ble_link_name(ts_link_t link);

/** Largest value, in bytes, one write or notification carries at ATT MTU `mtu`. */
size_t ts_ble_value_max(uint16_t mtu);

/** Copy a received value out of its mbuf and queue it for the stage loop (host task). */
void ts_ble_deliver(ts_link_t from, const struct os_mbuf *om);

/** Log the parameters of connection `conn` with `what` happened. */
void ts_ble_log_conn(ts_link_t link, uint16_t conn, const char *what);

/** Ask for 251-byte link-layer packets on `conn` if TINYSPLIT_BLE_DLE is set. */
void ts_ble_request_dle(uint16_t conn);

/* ble_server.c -------------------------------------------------------------------------------- */

/** Register the tinysplit GATT service (after nimble_port_init, before the host task). */
int ts_ble_server_register(void);

/** Start advertising as ts_ble_node.name; 0 or a NimBLE error code. */
int ts_ble_server_advertise(void);

/* ble_client.c -------------------------------------------------------------------------------- */

/** Start scanning for stage + 1; 0 or a NimBLE error code. */
int ts_ble_client_scan(void);

/** Forget the discovery state of a lost DOWN link (host task). */
void ts_ble_client_reset(void);

/* ble_transport.c ----------------------------------------------------------------------------- */

/** Start whatever the stage misses: advertising for UP, scanning for DOWN (host task). */
void ts_ble_kick(void);
