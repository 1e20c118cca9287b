/*
 * tinysplit pipeline stage over ESP-NOW. The transport is espnow_transport.c; configuration,
 * model, console and the stage loop are the shared component's.
 */
#include "espnow_transport.h"
#include "ts_app.h"

static ts_transport_t s_transport = {
    .name = "espnow",
    .frame_bytes = 0, /* set by ts_espnow_start: 250 B (v1) or 1470 B (v2) */
    .stream = false,
    .start = ts_espnow_start,
    .send = ts_espnow_send,
    .rssi = ts_espnow_rssi,
    .ctx = NULL,
};

void app_main(void)
{
    ts_app_run(&s_transport);
}
