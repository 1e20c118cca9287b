/*
 * tinysplit pipeline stage over BLE: everything but the radio lives in the tinysplit_core
 * component (configuration, model, console, stage loop); this firmware only supplies the transport.
 */
#include "ble_transport.h"
#include "ts_app.h"

void app_main(void)
{
    ts_app_run(ts_ble_transport());
}
