/*
 * Byte I/O of the USB-serial console on the boards: the channel chosen in Kconfig
 * (TINYSPLIT_CONSOLE_USB_SERIAL_JTAG or TINYSPLIT_CONSOLE_UART0). Used by the pipeline boards
 * (ts_app.c) and by the scribe (firmware/scribe), which share the console line protocol
 * (ts_console.h).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Install the channel's driver with interrupt-driven reads. When the channel is also the
 *  ESP-IDF log console, stdout is routed through the same driver so logs and protocol lines do
 *  not fight over the hardware FIFO. Call once, before any read or write. */
esp_err_t ts_console_io_init(void);

/** Wait up to `timeout_ms` milliseconds for input; return the bytes read into buf[cap] (at least
 *  1), 0 on timeout, or -1 on a driver error. Returns as soon as some bytes are there. */
int ts_console_io_read(char *buf, size_t cap, uint32_t timeout_ms);

/** Write whole protocol lines (a ts_console_write_t; `ctx` is unused). Safe from several tasks:
 *  one call is never interleaved with another or with log output, and a line goes out whole or
 *  not at all. Blocks while the output buffer (TINYSPLIT_CONSOLE_TX_BUFFER_BYTES) is full; on
 *  USB-Serial-JTAG with no host reading, the line is dropped and counted after about 100 ms
 *  instead of blocking the caller for good. */
void ts_console_io_write(void *ctx, const char *text, size_t len);

/** Lines the channel did not take (dropped), since boot. */
uint32_t ts_console_io_drops(void);

/** Wait (at most `timeout_ms` milliseconds) until queued output has left, e.g. before a
 *  reboot. */
void ts_console_io_flush(uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif
