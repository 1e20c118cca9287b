/*
 * The pipeline board's settings in NVS (namespace "tinysplit", keys ts_console_stage_setting_keys):
 * Kconfig defaults overridden by what the console `config` stored. Private to ts_app.c.
 */
#pragma once

#include "esp_err.h"
#include "ts_app.h"
#include "ts_console_stage.h"

/** Bring up NVS (erasing a full or newer-format partition), then load the settings the board runs
 *  with into `settings` and the transports' view of them into `cfg`. Bad stored values are
 *  logged and replaced by the Kconfig defaults. Returns the NVS initialisation error, if any. */
esp_err_t ts_app_settings_load(ts_console_stage_settings_t *settings, ts_app_config_t *cfg);

/** Store validated settings (ts_console_stage_platform_t.store; `ctx` is unused): TS_OK, or
 *  TS_ERR_STATE when NVS fails. They apply after the next reset. */
int ts_app_settings_store(void *ctx, const ts_console_stage_settings_t *settings);
