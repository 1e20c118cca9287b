/*
 * tinysplit pipeline stage over Wi-Fi (SoftAP + TCP). The transport is wifi_links.c and
 * wifi_radio.c; configuration, model, console and the stage loop are the shared component's.
 */
#include "ts_app.h"
#include "wifi_transport.h"

static ts_transport_t s_transport = {
    .name = "wifi",
    .frame_bytes = 0, /* set by ts_wifi_start: the TCP MSS (less 2 B in paper mode) */
    .stream = true,
    .start = ts_wifi_start,
    .send = ts_wifi_send,
    .rssi = ts_wifi_rssi,
    .ctx = NULL,
};

void app_main(void)
{
    ts_app_run(&s_transport);
}
