/*
 * The pipeline board's settings in NVS (contract: ts_app_settings.h).
 */
#include <inttypes.h>

#include "esp_log.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"
#include "ts_app_settings.h"

#define TS_APP_NVS_NAMESPACE "tinysplit"

static const char *TAG = "ts_app_settings";

static esp_err_t nvs_init(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "erasing the NVS partition (%s)", esp_err_to_name(err));
        err = nvs_flash_erase();
        if (err == ESP_OK) {
            err = nvs_flash_init();
        }
    }
    return err;
}

/* Kconfig, then every stored key that is in range, if the result is consistent. */
static void load(ts_console_stage_settings_t *out)
{
    ts_console_stage_settings_t s = {
        .stage = CONFIG_TINYSPLIT_STAGE_INDEX,
        .stages = CONFIG_TINYSPLIT_STAGE_COUNT,
#if defined(CONFIG_TINYSPLIT_MODE_PAPER)
        .mode = TS_MODE_PAPER,
#else
        .mode = TS_MODE_RELIABLE,
#endif
        .window = CONFIG_TINYSPLIT_WINDOW,
        .ack_timeout_ms = CONFIG_TINYSPLIT_ACK_TIMEOUT_MS,
        .max_timeouts = CONFIG_TINYSPLIT_MAX_TIMEOUTS,
    };
    if (s.stage > s.stages) {
        /* Kconfig ranges cannot relate two symbols; keep the board usable over the console. */
        ESP_LOGE(TAG, "TINYSPLIT_STAGE_INDEX %u > TINYSPLIT_STAGE_COUNT %u: using stages=%u",
                 (unsigned)s.stage, (unsigned)s.stages, (unsigned)s.stage);
        s.stages = s.stage;
    }
    nvs_handle_t h;
    esp_err_t err = nvs_open(TS_APP_NVS_NAMESPACE, NVS_READONLY, &h);
    if (err == ESP_OK) {
        ts_console_stage_settings_t merged = s;
        for (size_t i = 0; i < TS_CONSOLE_STAGE_SETTING_COUNT; i++) {
            const char *key = ts_console_stage_setting_keys[i];
            uint32_t v = 0;
            if (nvs_get_u32(h, key, &v) == ESP_OK &&
                ts_console_stage_settings_put(&merged, key, v) != TS_OK) {
                ESP_LOGW(TAG, "NVS %s=%" PRIu32 " out of range: ignored", key, v);
            }
        }
        nvs_close(h);
        if (ts_console_stage_settings_check(&merged) == TS_OK) {
            s = merged;
        } else {
            ESP_LOGW(TAG, "NVS settings inconsistent (stage %u of %u): using Kconfig",
                     (unsigned)merged.stage, (unsigned)merged.stages);
        }
    } else if (err != ESP_ERR_NVS_NOT_FOUND) {
        ESP_LOGW(TAG, "NVS namespace \"%s\": %s; using Kconfig", TS_APP_NVS_NAMESPACE,
                 esp_err_to_name(err));
    }
    *out = s;
}

esp_err_t ts_app_settings_load(ts_console_stage_settings_t *settings, ts_app_config_t *cfg)
{
    esp_err_t err = nvs_init();
    if (err != ESP_OK) {
        return err;
    }
    load(settings);
    const ts_console_stage_settings_t *s = settings;
    *cfg = (ts_app_config_t){
        .stage = s->stage,
        .stages = s->stages,
        .mode = s->mode,
        .window = s->window,
        .ack_timeout_ms = s->ack_timeout_ms,
        .max_timeouts = s->max_timeouts,
        .scribe_gpio = CONFIG_TINYSPLIT_SCRIBE_GPIO,
    };
    return ESP_OK;
}

int ts_app_settings_store(void *ctx, const ts_console_stage_settings_t *settings)
{
    (void)ctx;
    nvs_handle_t h;
    esp_err_t err = nvs_open(TS_APP_NVS_NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS open: %s", esp_err_to_name(err));
        return TS_ERR_STATE;
    }
    for (size_t i = 0; i < TS_CONSOLE_STAGE_SETTING_COUNT && err == ESP_OK; i++) {
        uint32_t v = 0;
        ts_console_stage_settings_get(settings, ts_console_stage_setting_keys[i], &v);
        err = nvs_set_u32(h, ts_console_stage_setting_keys[i], v);
    }
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS write: %s", esp_err_to_name(err));
        return TS_ERR_STATE;
    }
    return TS_OK;
}
