/*
 * Scribe marks on the boards: one high pulse per stage event on the scribe GPIO, `mark` units of
 * CONFIG_TINYSPLIT_SCRIBE_PULSE_UNIT_US wide (encoding: ts_mark.h).
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"
#include "ts_stage.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Configure `gpio` as a push-pull output, idle low; -1 disables marks (ts_scribe_mark does
 *  nothing). `unit_us` is the pulse unit in microseconds (ts_mark.h: 1..10000). */
esp_err_t ts_scribe_mark_init(int gpio, uint32_t unit_us);

/** Emit one mark: rising edge now, or once the line has been low for one unit since the
 *  previous pulse (the scribe must see every falling edge), falling edge
 *  ts_mark_pulse_us(mark, unit) microseconds later. Busy-waits for the pulse width (60 us for
 *  tx_end at the default 10 us unit) and that gap. */
void ts_scribe_mark(ts_mark_t mark);

#ifdef __cplusplus
}
#endif
