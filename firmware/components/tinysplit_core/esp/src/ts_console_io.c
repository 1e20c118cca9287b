/*
 * Console byte I/O over USB-Serial-JTAG or UART0 (ESP-IDF v5.3-v5.5), for the pipeline boards
 * and the scribe.
 *
 * Reads and writes go straight to the driver, a whole line per write, so a line is either sent
 * whole or dropped and counted (the log console's driver-mode VFS would drop single characters of
 * a line the host does not take). Writes are serialised by a mutex: the scribe writes from several
 * tasks, and before v5.4 two concurrent usb_serial_jtag_write_bytes calls can interleave (one may
 * fill the FIFO directly while the other queues). When the channel is also the ESP-IDF log
 * console (CONFIG_ESP_CONSOLE_*), a line is written after flushing stdout and under its lock,
 * which ESP_LOG output takes too, so log text never lands inside a protocol line.
 */
#include <stdio.h>

#include "esp_check.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "ts_console_io.h"

/* TS_IO_SHARED: the channel is also the ESP-IDF log console. The VFS driver hooks exist only
 * then (esp_driver_usb_serial_jtag / esp_driver_uart CMakeLists.txt compile the *_vfs.c files
 * under CONFIG_VFS_SUPPORT_IO and the console options). */
#if defined(CONFIG_TINYSPLIT_CONSOLE_USB_SERIAL_JTAG)
#include "driver/usb_serial_jtag.h"
#define TS_IO_NAME "USB-Serial-JTAG"
#if defined(CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG) && defined(CONFIG_VFS_SUPPORT_IO)
#include "driver/usb_serial_jtag_vfs.h"
#define TS_IO_SHARED 1
#else
#define TS_IO_SHARED 0
#endif
#else
#include "driver/uart.h"
#define TS_IO_UART UART_NUM_0
#define TS_IO_NAME "UART0"
#if defined(CONFIG_ESP_CONSOLE_UART) && CONFIG_ESP_CONSOLE_UART_NUM == 0 && \
    defined(CONFIG_VFS_SUPPORT_IO)
#include "driver/uart_vfs.h"
#define TS_IO_SHARED 1
#else
#define TS_IO_SHARED 0
#endif
#endif

/* Driver ring buffers. TX must hold a whole protocol line (TS_CONSOLE_LINE_MAX + "\r\n"), which
 * the Kconfig range guarantees: the USB-Serial-JTAG driver hands a write to xRingbufferSend as one
 * item, which fails outright when the item is larger than the buffer
 * (components/esp_driver_usb_serial_jtag/src/usb_serial_jtag.c, usb_serial_jtag_write_bytes). */
#define TS_IO_RX_BUFFER_BYTES 2048
#define TS_IO_TX_BUFFER_BYTES CONFIG_TINYSPLIT_CONSOLE_TX_BUFFER_BYTES
#define TS_IO_WRITE_TIMEOUT_MS 100

static const char *TAG = "ts_console_io";

static SemaphoreHandle_t s_write_lock; /* one line at a time on the driver */
static volatile uint32_t s_drops;      /* lines the channel did not take (under the lock) */

esp_err_t ts_console_io_init(void)
{
    s_write_lock = xSemaphoreCreateMutex();
    ESP_RETURN_ON_FALSE(s_write_lock != NULL, ESP_ERR_NO_MEM, TAG, "write lock");
    /* Drain what the ROM-mode console path buffered before the driver takes over. */
    fflush(stdout);
#if defined(CONFIG_TINYSPLIT_CONSOLE_USB_SERIAL_JTAG)
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    cfg.rx_buffer_size = TS_IO_RX_BUFFER_BYTES;
    cfg.tx_buffer_size = TS_IO_TX_BUFFER_BYTES;
    ESP_RETURN_ON_ERROR(usb_serial_jtag_driver_install(&cfg), TAG, "USB-Serial-JTAG driver");
#if TS_IO_SHARED
    usb_serial_jtag_vfs_use_driver();
#endif
#else
    if (!TS_IO_SHARED) {
        /* Not the log console: nobody configured UART0 for us. */
        const uart_config_t ucfg = {
            .baud_rate = CONFIG_TINYSPLIT_CONSOLE_UART_BAUD,
            .data_bits = UART_DATA_8_BITS,
            .parity = UART_PARITY_DISABLE,
            .stop_bits = UART_STOP_BITS_1,
            .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
            .source_clk = UART_SCLK_DEFAULT,
        };
        ESP_RETURN_ON_ERROR(uart_param_config(TS_IO_UART, &ucfg), TAG, "UART0 parameters");
        ESP_RETURN_ON_ERROR(uart_set_pin(TS_IO_UART, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE,
                                         UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE),
                            TAG, "UART0 pins");
    }
    ESP_RETURN_ON_ERROR(uart_driver_install(TS_IO_UART, TS_IO_RX_BUFFER_BYTES,
                                            TS_IO_TX_BUFFER_BYTES, 0, NULL, 0),
                        TAG, "UART0 driver");
#if TS_IO_SHARED
    uart_vfs_dev_use_driver(TS_IO_UART);
#endif
#endif
    ESP_LOGI(TAG, "console on %s%s", TS_IO_NAME, TS_IO_SHARED ? " (shared with the log)" : "");
    return ESP_OK;
}

int ts_console_io_read(char *buf, size_t cap, uint32_t timeout_ms)
{
    if (cap == 0) {
        return 0;
    }
    TickType_t wait = pdMS_TO_TICKS(timeout_ms);
#if defined(CONFIG_TINYSPLIT_CONSOLE_USB_SERIAL_JTAG)
    /* Returns as soon as the ring buffer has bytes (xRingbufferReceiveUpTo). */
    return usb_serial_jtag_read_bytes(buf, (uint32_t)cap, wait);
#else
    /* uart_read_bytes waits for all `length` bytes or the timeout, so take one byte with the
     * timeout, then whatever else is already buffered. */
    int n = uart_read_bytes(TS_IO_UART, buf, 1, wait);
    if (n <= 0) {
        return n < 0 ? -1 : 0;
    }
    size_t more = 0;
    if (uart_get_buffered_data_len(TS_IO_UART, &more) == ESP_OK && more > 0) {
        if (more > cap - 1) {
            more = cap - 1;
        }
        int m = uart_read_bytes(TS_IO_UART, buf + 1, (uint32_t)more, 0);
        if (m > 0) {
            n += m;
        }
    }
    return n;
#endif
}

void ts_console_io_write(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    if (len == 0) {
        return;
    }
    xSemaphoreTake(s_write_lock, portMAX_DELAY);
    if (TS_IO_SHARED) {
        flockfile(stdout);
        fflush(stdout); /* log bytes written before this line go first */
    }
#if defined(CONFIG_TINYSPLIT_CONSOLE_USB_SERIAL_JTAG)
    /* Bounded: with no host reading the port the line is dropped instead of blocking the writer
     * forever. One ring-buffer item: all of the line or nothing. */
    int n = usb_serial_jtag_write_bytes(text, len, pdMS_TO_TICKS(TS_IO_WRITE_TIMEOUT_MS));
#else
    /* Blocks until the line is in the TX ring buffer, which the UART drains at its baud rate. */
    int n = uart_write_bytes(TS_IO_UART, text, len);
#endif
    if (TS_IO_SHARED) {
        funlockfile(stdout);
    }
    if (n != (int)len) {
        s_drops++;
    }
    xSemaphoreGive(s_write_lock);
}

uint32_t ts_console_io_drops(void)
{
    return s_drops;
}

void ts_console_io_flush(uint32_t timeout_ms)
{
    fflush(stdout);
#if defined(CONFIG_TINYSPLIT_CONSOLE_USB_SERIAL_JTAG)
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 4, 0)
    usb_serial_jtag_wait_tx_done(pdMS_TO_TICKS(timeout_ms));
#else
    /* No usb_serial_jtag_wait_tx_done before v5.4: give the host time to drain the FIFO. */
    vTaskDelay(pdMS_TO_TICKS(timeout_ms));
#endif
#else
    uart_wait_tx_done(TS_IO_UART, pdMS_TO_TICKS(timeout_ms));
#endif
}
