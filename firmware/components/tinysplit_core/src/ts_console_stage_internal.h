/*
 * Internals shared by the files of the pipeline board's console command set (not a public
 * header; the contract is ts_console_stage.h):
 *   ts_console_stage.c     the board object, state and link commands, events
 *   ts_console_settings.c  the stored settings and `config`
 *   ts_console_tensor.c    tensor transfer: `inject`, `data`, `end`, `read`, the kept output
 * Handlers get the ts_console_stage_t as ctx and the argument count the command table allows.
 */
#pragma once

#include <stdint.h>

#include "ts_console_stage.h"

/** "paper" or "reliable". */
const char *ts_cs_mode_name(ts_mode_t mode);

/** The stage exists (links up); else replies `err state links down` and returns 0. */
int ts_cs_need_stage(ts_console_stage_t *cs);

/** The stage exists and the board runs (`start`); else replies `err state` and returns 0. */
int ts_cs_need_running(ts_console_stage_t *cs);

/** The platform's clock, microseconds. */
int64_t ts_cs_now_us(const ts_console_stage_t *cs);

/** This board runs the last stage of the pipeline. */
int ts_cs_is_last_stage(const ts_console_stage_t *cs);

void ts_cs_cmd_config(ts_console_t *con, void *ctx, int argc, char **argv);
void ts_cs_cmd_inject(ts_console_t *con, void *ctx, int argc, char **argv);
void ts_cs_cmd_data(ts_console_t *con, void *ctx, int argc, char **argv);
void ts_cs_cmd_end(ts_console_t *con, void *ctx, int argc, char **argv);
void ts_cs_cmd_read(ts_console_t *con, void *ctx, int argc, char **argv);
