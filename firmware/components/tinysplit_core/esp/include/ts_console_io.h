/*
 * Byte I/O of the USB-serial console on the boards: the channel chosen in Kconfig
 * (TINYSPLIT_CONSOLE_USB_SERIAL_JTAG or TINYSPLIT_CONSOLE_UART0). Used by the pipeline boards
 * (ts_app.c) and by the scribe, which share the console line protocol (ts_console.h).
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

/** Write whole protocol lines (a ts_console_write_t; `ctx` is unused). One call is never
 *  interleaved with log output. Blocks while the output buffer is full; on USB-Serial-JTAG with
 *  no host reading, the line is dropped after about 100 ms (50 ms per byte through the log
 *  console's driver-mode VFS) instead of blocking the caller for good. */
void ts_console_io_write(void *ctx, const char *text, size_t len);

/** Wait (at most `timeout_ms` milliseconds) until queued output has left, e.g. before a
 *  reboot. */
void ts_console_io_flush(uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif
