/*
 * The stored settings of a pipeline board and the `config` command (contract:
 * ts_console_stage.h; grammar: docs/protocol.md, "Console"). Portable: no ESP-IDF, no allocation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ts_console_stage_internal.h"

const char *const ts_console_stage_setting_keys[TS_CONSOLE_STAGE_SETTING_COUNT] = {
    "stage", "stages", "mode", "window", "ack_timeout_ms", "max_timeouts",
};

int ts_console_stage_settings_get(const ts_console_stage_settings_t *s, const char *key,
                                  uint32_t *value)
{
    if (strcmp(key, "stage") == 0) {
        *value = s->stage;
    } else if (strcmp(key, "stages") == 0) {
        *value = s->stages;
    } else if (strcmp(key, "mode") == 0) {
        *value = (uint32_t)s->mode;
    } else if (strcmp(key, "window") == 0) {
        *value = s->window;
    } else if (strcmp(key, "ack_timeout_ms") == 0) {
        *value = s->ack_timeout_ms;
    } else if (strcmp(key, "max_timeouts") == 0) {
        *value = s->max_timeouts;
    } else {
        return TS_ERR_ARG;
    }
    return TS_OK;
}

int ts_console_stage_settings_put(ts_console_stage_settings_t *s, const char *key,
                                  uint32_t value)
{
    if (strcmp(key, "stage") == 0 || strcmp(key, "stages") == 0) {
        if (value < 1 || value > TS_CONSOLE_STAGE_MAX_STAGES) {
            return TS_ERR_ARG;
        }
        if (key[5] == 's') {
            s->stages = (uint8_t)value;
        } else {
            s->stage = (uint8_t)value;
        }
    } else if (strcmp(key, "mode") == 0) {
        if (value != (uint32_t)TS_MODE_PAPER && value != (uint32_t)TS_MODE_RELIABLE) {
            return TS_ERR_ARG;
        }
        s->mode = (ts_mode_t)value;
    } else if (strcmp(key, "window") == 0) {
        if (value < 1 || value > TS_MAX_WINDOW) {
            return TS_ERR_ARG;
        }
        s->window = (uint16_t)value;
    } else if (strcmp(key, "ack_timeout_ms") == 0) {
        if (value < 1 || value > TS_CONSOLE_STAGE_ACK_TIMEOUT_MS_MAX) {
            return TS_ERR_ARG;
        }
        s->ack_timeout_ms = value;
    } else if (strcmp(key, "max_timeouts") == 0) {
        if (value > TS_CONSOLE_STAGE_MAX_TIMEOUTS_MAX) {
            return TS_ERR_ARG;
        }
        s->max_timeouts = (uint16_t)value;
    } else {
        return TS_ERR_ARG;
    }
    return TS_OK;
}

int ts_console_stage_settings_check(const ts_console_stage_settings_t *s)
{
    ts_console_stage_settings_t copy = *s;
    for (size_t i = 0; i < TS_CONSOLE_STAGE_SETTING_COUNT; i++) {
        uint32_t v = 0;
        if (ts_console_stage_settings_get(s, ts_console_stage_setting_keys[i], &v) != TS_OK ||
            ts_console_stage_settings_put(&copy, ts_console_stage_setting_keys[i], v) != TS_OK) {
            return TS_ERR_ARG;
        }
    }
    return s->stage <= s->stages ? TS_OK : TS_ERR_ARG;
}

const char *ts_cs_mode_name(ts_mode_t mode)
{
    return mode == TS_MODE_PAPER ? "paper" : "reliable";
}

/* Field by field: memcmp would compare the struct's padding too. */
static int settings_equal(const ts_console_stage_settings_t *a,
                          const ts_console_stage_settings_t *b)
{
    return a->stage == b->stage && a->stages == b->stages && a->mode == b->mode &&
           a->window == b->window && a->ack_timeout_ms == b->ack_timeout_ms &&
           a->max_timeouts == b->max_timeouts;
}

/* `ok <stored settings> pending=<0|1>`: pending when they differ from the running ones. */
static void reply_settings(ts_console_stage_t *cs)
{
    const ts_console_stage_settings_t *s = &cs->stored;
    ts_console_ok(&cs->con,
                  "stage=%u stages=%u mode=%s window=%u ack_timeout_ms=%" PRIu32
                  " max_timeouts=%u pending=%d",
                  (unsigned)s->stage, (unsigned)s->stages, ts_cs_mode_name(s->mode),
                  (unsigned)s->window, s->ack_timeout_ms, (unsigned)s->max_timeouts,
                  !settings_equal(s, &cs->cfg.settings));
}

void ts_cs_cmd_config(ts_console_t *con, void *ctx, int argc, char **argv)
{
    ts_console_stage_t *cs = ctx;
    ts_console_stage_settings_t next = cs->stored;
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i]) {
            ts_console_usage(con);
            return;
        }
        *eq = '\0';
        const char *key = argv[i];
        const char *value = eq + 1;
        uint32_t v = 0;
        uint32_t probe = 0;
        if (ts_console_stage_settings_get(&next, key, &probe) != TS_OK) {
            ts_console_err(con, "usage", "unknown key %s", key);
            return;
        }
        int ok;
        if (strcmp(key, "mode") == 0) {
            ok = 1;
            if (strcmp(value, "paper") == 0) {
                v = (uint32_t)TS_MODE_PAPER;
            } else if (strcmp(value, "reliable") == 0) {
                v = (uint32_t)TS_MODE_RELIABLE;
            } else {
                ok = 0;
            }
        } else {
            ok = ts_console_parse_u32(value, UINT32_MAX, &v);
        }
        if (!ok || ts_console_stage_settings_put(&next, key, v) != TS_OK) {
            ts_console_err(con, "range", "bad value %s for %s", value, key);
            return;
        }
    }
    if (argc > 1) {
        if (ts_console_stage_settings_check(&next) != TS_OK) {
            ts_console_err(con, "range", "stage %u is past stages %u", (unsigned)next.stage,
                           (unsigned)next.stages);
            return;
        }
        int rc = cs->platform->store(cs->ctx, &next);
        if (rc != TS_OK) {
            ts_console_err(con, "io", "storing the settings failed (%s)", ts_err_name(rc));
            return;
        }
        cs->stored = next;
    }
    reply_settings(cs);
}
