/*
 * The BLE transport of tinysplit (NimBLE GATT): stage i is a GATT server (peripheral) towards
 * stage i-1 and a GATT client (central) of stage i+1. Link layout and UUIDs: ../README.md.
 */
#pragma once

#include "ts_app.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The BLE transport, ready to hand to ts_app_run(); one static instance per firmware. */
ts_transport_t *ts_ble_transport(void);

#ifdef __cplusplus
}
#endif
