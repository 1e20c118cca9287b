/*
 * The console port: USB Serial/JTAG (default) or UART0, chosen in Kconfig. Its driver is
 * installed; protocol lines are written to the driver with a timeout, so a host that stops
 * reading costs counted drops, not a stalled decoder.
 *
 * When the port is also the ESP-IDF log console (SHARED), the VFS is switched to the driver
 * (two writers must not poke the same FIFO) and every protocol line is written while holding
 * the stdout lock after flushing stdout, so a log line cannot land in the middle of it. The
 * *_vfs_use_driver() functions exist only then: esp_driver_usb_serial_jtag and esp_driver_uart
 * compile their VFS parts under CONFIG_VFS_SUPPORT_IO and the matching console options.
 */
#include <stdio.h>
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "scribe.h"
#include "sdkconfig.h"

#if CONFIG_TINYSPLIT_SCRIBE_CONSOLE_UART0
#include "driver/uart.h"
#define SCRIBE_UART UART_NUM_0
#if defined(CONFIG_ESP_CONSOLE_UART) && CONFIG_ESP_CONSOLE_UART_NUM == 0 && \
    defined(CONFIG_VFS_SUPPORT_IO)
#include "driver/uart_vfs.h"
#define SHARED 1
#else
#define SHARED 0
#endif
#else
#include "driver/usb_serial_jtag.h"
#if defined(CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG_ENABLED) && defined(CONFIG_VFS_SUPPORT_IO)
#include "driver/usb_serial_jtag_vfs.h"
#define SHARED 1
#else
#define SHARED 0
#endif
#endif

static const char *TAG = "scribe_io";

/* A line the host does not take within this time is dropped (and counted) so that a closed
 * port cannot stall the decoding task for long. */
#define WRITE_TIMEOUT_MS 100
#define TX_BUFFER_BYTES 8192 /* holds several full lines (TS_CONSOLE_LINE_MAX + prefix) */
#define RX_BUFFER_BYTES 2048

static SemaphoreHandle_t s_write_lock;
static volatile uint32_t s_drops;

esp_err_t scribe_io_init(void)
{
    s_write_lock = xSemaphoreCreateMutex();
    ESP_RETURN_ON_FALSE(s_write_lock != NULL, ESP_ERR_NO_MEM, TAG, "write lock");
#if CONFIG_TINYSPLIT_SCRIBE_CONSOLE_UART0
    ESP_RETURN_ON_ERROR(uart_driver_install(SCRIBE_UART, RX_BUFFER_BYTES, TX_BUFFER_BYTES, 0,
                                            NULL, 0),
                        TAG, "UART driver");
#if SHARED
    uart_vfs_dev_use_driver(SCRIBE_UART);
#endif
#else
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    cfg.tx_buffer_size = TX_BUFFER_BYTES;
    cfg.rx_buffer_size = RX_BUFFER_BYTES;
    ESP_RETURN_ON_ERROR(usb_serial_jtag_driver_install(&cfg), TAG, "USB Serial/JTAG driver");
#if SHARED
    usb_serial_jtag_vfs_use_driver();
#endif
#endif
    return ESP_OK;
}

size_t scribe_io_read(char *buf, size_t cap)
{
    for (;;) {
#if CONFIG_TINYSPLIT_SCRIBE_CONSOLE_UART0
        int n = uart_read_bytes(SCRIBE_UART, buf, (uint32_t)cap, pdMS_TO_TICKS(20));
#else
        int n = usb_serial_jtag_read_bytes(buf, (uint32_t)cap, portMAX_DELAY);
#endif
        if (n > 0) {
            return (size_t)n;
        }
    }
}

void scribe_io_write(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    if (len == 0) {
        return;
    }
    /* Lines from the decoding, power and console tasks must not interleave. */
    xSemaphoreTake(s_write_lock, portMAX_DELAY);
#if SHARED
    flockfile(stdout);
    fflush(stdout);
#endif
#if CONFIG_TINYSPLIT_SCRIBE_CONSOLE_UART0
    /* uart_write_bytes blocks until the line is in the TX ring buffer. */
    int n = uart_write_bytes(SCRIBE_UART, text, len);
#else
    int n = usb_serial_jtag_write_bytes(text, len, pdMS_TO_TICKS(WRITE_TIMEOUT_MS));
#endif
#if SHARED
    funlockfile(stdout);
#endif
    xSemaphoreGive(s_write_lock);
    if (n != (int)len) {
        s_drops++;
    }
}

uint32_t scribe_io_drops(void)
{
    return s_drops;
}
