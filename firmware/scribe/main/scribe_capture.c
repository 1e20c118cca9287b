/*
 * Edge capture on the scribe lines: MCPWM capture channels (12.5 ns, hardware-latched) or GPIO
 * any-edge interrupts reading esp_timer (1 µs). Interrupt code only queues edges: no logging,
 * no decoding (that is ts_mark in the decoding task).
 *
 * MCPWM layout on the ESP32-S3: 2 groups, each with one capture timer and 3 capture channels
 * (SOC_MCPWM_CAPTURE_TIMERS_PER_GROUP, SOC_MCPWM_CAPTURE_CHANNELS_PER_TIMER). Line i uses
 * group i / 3. The capture timer runs from the APB clock, 80 MHz; its resolution_hz setting is
 * not adjustable on this target, so the driver is asked for the default and the real rate read
 * back with mcpwm_capture_timer_get_resolution().
 */
#include <string.h>

#include "driver/gpio.h"
#include "driver/mcpwm_cap.h"
#include "driver/mcpwm_sync.h"
#include "esp_attr.h"
#include "esp_check.h"
#include "esp_intr_alloc.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "scribe.h"
#include "soc/soc_caps.h"

static const char *TAG = "scribe_capture";

#define LINES_PER_GROUP SOC_MCPWM_CAPTURE_CHANNELS_PER_TIMER

/* The GPIO interrupt reads the line level; that call must be in IRAM for an IRAM interrupt. */
#if CONFIG_GPIO_CTRL_FUNC_IN_IRAM
#define GPIO_ISR_FLAGS ESP_INTR_FLAG_IRAM
#else
#define GPIO_ISR_FLAGS 0
#endif

typedef struct {
    uint8_t line;
    int gpio;
    volatile uint32_t overflows; /* written by this line's interrupt only */
} line_ctx_t;

static line_ctx_t s_line[SCRIBE_MAX_LINES];
static int s_lines;
static QueueHandle_t s_queue;
static volatile bool s_enabled;
static scribe_capture_kind_t s_kind = SCRIBE_CAPTURE_GPIO;
static uint32_t s_resolution_hz = 1000000;

static int s_groups;
static mcpwm_cap_timer_handle_t s_timer[SOC_MCPWM_GROUPS];
static mcpwm_cap_channel_handle_t s_chan[SCRIBE_MAX_LINES];
static mcpwm_sync_handle_t s_sync[SOC_MCPWM_GROUPS];
static int s_sync_gpio = -1;
static portMUX_TYPE s_zero_lock = portMUX_INITIALIZER_UNLOCKED;

static void IRAM_ATTR queue_edge(line_ctx_t *l, int level, uint32_t ticks, int64_t us,
                                 BaseType_t *woken)
{
    const scribe_edge_t e = {
        .line = l->line,
        .level = (uint8_t)(level ? 1 : 0),
        .ticks = ticks,
        .us = us,
    };
    if (xQueueSendFromISR(s_queue, &e, woken) != pdTRUE) {
        l->overflows++;
    }
}

static bool IRAM_ATTR on_capture(mcpwm_cap_channel_handle_t chan,
                                 const mcpwm_capture_event_data_t *edata, void *user_ctx)
{
    (void)chan;
    /* Read the coarse clock first: it must stay close to the latched edge. */
    const int64_t us = esp_timer_get_time();
    if (!s_enabled) {
        return false;
    }
    BaseType_t woken = pdFALSE;
    queue_edge((line_ctx_t *)user_ctx, edata->cap_edge == MCPWM_CAP_EDGE_POS, edata->cap_value,
               us, &woken);
    return woken == pdTRUE;
}

static void IRAM_ATTR on_gpio(void *arg)
{
    const int64_t us = esp_timer_get_time();
    line_ctx_t *l = (line_ctx_t *)arg;
    if (!s_enabled) {
        return;
    }
    /* The level now, not the edge that fired: a pulse shorter than the interrupt latency can
     * read wrong; the decoder counts the resulting sequence as a glitch. */
    BaseType_t woken = pdFALSE;
    queue_edge(l, gpio_get_level((gpio_num_t)l->gpio), 0, us, &woken);
    if (woken == pdTRUE) {
        portYIELD_FROM_ISR();
    }
}

static void mcpwm_teardown(void)
{
    for (int i = 0; i < SCRIBE_MAX_LINES; i++) {
        if (s_chan[i] != NULL) {
            mcpwm_capture_channel_disable(s_chan[i]); /* fails harmlessly if not enabled */
            mcpwm_del_capture_channel(s_chan[i]);
            s_chan[i] = NULL;
        }
    }
    for (int g = 0; g < SOC_MCPWM_GROUPS; g++) {
        if (s_timer[g] != NULL) {
            mcpwm_capture_timer_stop(s_timer[g]);
            mcpwm_capture_timer_disable(s_timer[g]);
            mcpwm_del_capture_timer(s_timer[g]);
            s_timer[g] = NULL;
        }
        if (s_sync[g] != NULL) {
            mcpwm_del_sync_src(s_sync[g]);
            s_sync[g] = NULL;
        }
    }
}

static esp_err_t mcpwm_setup(int sync_gpio)
{
    esp_err_t ret = ESP_OK;
    s_groups = (s_lines + LINES_PER_GROUP - 1) / LINES_PER_GROUP;
    ESP_RETURN_ON_FALSE(s_groups <= SOC_MCPWM_GROUPS, ESP_ERR_NOT_SUPPORTED, TAG,
                        "%d lines need %d MCPWM groups", s_lines, s_groups);

    for (int g = 0; g < s_groups; g++) {
        const mcpwm_capture_timer_config_t tcfg = {
            .group_id = g,
            .clk_src = MCPWM_CAPTURE_CLK_SRC_DEFAULT,
        };
        ESP_GOTO_ON_ERROR(mcpwm_new_capture_timer(&tcfg, &s_timer[g]), fail, TAG,
                          "capture timer of group %d", g);
    }

    for (int i = 0; i < s_lines; i++) {
        const mcpwm_capture_channel_config_t ccfg = {
            .gpio_num = s_line[i].gpio,
            .prescale = 1,
            .flags.pos_edge = 1,
            .flags.neg_edge = 1,
            .flags.pull_down = 1, /* idle low when a board is unplugged */
        };
        ESP_GOTO_ON_ERROR(mcpwm_new_capture_channel(s_timer[i / LINES_PER_GROUP], &ccfg,
                                                    &s_chan[i]),
                          fail, TAG, "capture channel of line %d", i + 1);
        const mcpwm_capture_event_callbacks_t cbs = {.on_cap = on_capture};
        ESP_GOTO_ON_ERROR(
            mcpwm_capture_channel_register_event_callbacks(s_chan[i], &cbs, &s_line[i]), fail,
            TAG, "callbacks of line %d", i + 1);
        ESP_GOTO_ON_ERROR(mcpwm_capture_channel_enable(s_chan[i]), fail, TAG,
                          "enable line %d", i + 1);
    }

    /* A sync source per group puts its counter to 0 on `start` (scribe_capture_zero). */
    for (int g = 0; g < s_groups; g++) {
        if (sync_gpio >= 0) {
            const mcpwm_gpio_sync_src_config_t scfg = {
                .group_id = g,
                .gpio_num = sync_gpio,
                .flags.io_loop_back = 1, /* we drive the pin ourselves */
                .flags.pull_down = 1,
            };
            ESP_GOTO_ON_ERROR(mcpwm_new_gpio_sync_src(&scfg, &s_sync[g]), fail, TAG,
                              "GPIO sync of group %d", g);
        } else {
            const mcpwm_soft_sync_config_t scfg = {};
            ESP_GOTO_ON_ERROR(mcpwm_new_soft_sync_src(&scfg, &s_sync[g]), fail, TAG,
                              "soft sync of group %d", g);
        }
        const mcpwm_capture_timer_sync_phase_config_t pcfg = {
            .sync_src = s_sync[g],
            .count_value = 0,
            .direction = MCPWM_TIMER_DIRECTION_UP,
        };
        ESP_GOTO_ON_ERROR(mcpwm_capture_timer_set_phase_on_sync(s_timer[g], &pcfg), fail, TAG,
                          "sync phase of group %d", g);
    }
    if (sync_gpio >= 0) {
        /* Drive the sync pin (its input path already feeds both groups); io_loop_back alone
         * does not route the GPIO output register to the pin on every IDF version. */
        gpio_set_level((gpio_num_t)sync_gpio, 0);
        ESP_GOTO_ON_ERROR(gpio_set_direction((gpio_num_t)sync_gpio, GPIO_MODE_INPUT_OUTPUT), fail,
                          TAG, "sync GPIO output");
    }
    s_sync_gpio = sync_gpio;

    for (int g = 0; g < s_groups; g++) {
        ESP_GOTO_ON_ERROR(mcpwm_capture_timer_enable(s_timer[g]), fail, TAG, "enable timer %d",
                          g);
        ESP_GOTO_ON_ERROR(mcpwm_capture_timer_start(s_timer[g]), fail, TAG, "start timer %d", g);
    }

    uint32_t hz[SOC_MCPWM_GROUPS] = {0};
    for (int g = 0; g < s_groups; g++) {
        ESP_GOTO_ON_ERROR(mcpwm_capture_timer_get_resolution(s_timer[g], &hz[g]), fail, TAG,
                          "resolution of group %d", g);
    }
    /* One tick length for every line, or the time bases could not be compared. */
    ESP_GOTO_ON_FALSE(hz[0] != 0 && (s_groups < 2 || hz[1] == hz[0]), ESP_ERR_INVALID_STATE,
                      fail, TAG, "capture clocks differ: %lu / %lu Hz", (unsigned long)hz[0],
                      (unsigned long)hz[1]);
    s_resolution_hz = hz[0];
    s_kind = SCRIBE_CAPTURE_MCPWM;
    return ESP_OK;

fail:
    mcpwm_teardown();
    return ret;
}

static esp_err_t gpio_setup(void)
{
    uint64_t mask = 0;
    for (int i = 0; i < s_lines; i++) {
        mask |= 1ULL << s_line[i].gpio;
    }
    const gpio_config_t cfg = {
        .pin_bit_mask = mask,
        .mode = GPIO_MODE_INPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_ENABLE,
        .intr_type = GPIO_INTR_ANYEDGE,
    };
    ESP_RETURN_ON_ERROR(gpio_config(&cfg), TAG, "configure line GPIOs");
    esp_err_t err = gpio_install_isr_service(GPIO_ISR_FLAGS);
    /* ESP_ERR_INVALID_STATE: another part of the firmware installed the service already. */
    ESP_RETURN_ON_FALSE(err == ESP_OK || err == ESP_ERR_INVALID_STATE, err, TAG,
                        "GPIO ISR service");
    for (int i = 0; i < s_lines; i++) {
        ESP_RETURN_ON_ERROR(gpio_isr_handler_add((gpio_num_t)s_line[i].gpio, on_gpio, &s_line[i]),
                            TAG, "ISR of line %d", i + 1);
    }
    s_kind = SCRIBE_CAPTURE_GPIO;
    s_resolution_hz = 1000000;
    s_groups = 1;
    return ESP_OK;
}

esp_err_t scribe_capture_init(const int *gpios, int lines, int sync_gpio, bool use_mcpwm,
                              QueueHandle_t queue)
{
    ESP_RETURN_ON_FALSE(gpios != NULL && queue != NULL && lines >= 1 && lines <= SCRIBE_MAX_LINES,
                        ESP_ERR_INVALID_ARG, TAG, "bad arguments");
    s_queue = queue;
    s_lines = lines;
    s_enabled = false;
    for (int i = 0; i < lines; i++) {
        s_line[i].line = (uint8_t)i;
        s_line[i].gpio = gpios[i];
        s_line[i].overflows = 0;
    }
    if (use_mcpwm) {
        esp_err_t err = mcpwm_setup(sync_gpio);
        if (err == ESP_OK) {
            ESP_LOGI(TAG, "MCPWM capture on %d lines at %lu Hz", lines,
                     (unsigned long)s_resolution_hz);
            return ESP_OK;
        }
        ESP_LOGW(TAG, "MCPWM capture unavailable (%s): falling back to GPIO interrupts",
                 esp_err_to_name(err));
    }
    ESP_RETURN_ON_ERROR(gpio_setup(), TAG, "GPIO capture");
    ESP_LOGI(TAG, "GPIO interrupt capture on %d lines (1 us)", lines);
    return ESP_OK;
}

scribe_capture_kind_t scribe_capture_kind(void)
{
    return s_kind;
}

const char *scribe_capture_kind_name(void)
{
    return s_kind == SCRIBE_CAPTURE_MCPWM ? "mcpwm" : "gpio";
}

uint32_t scribe_capture_resolution_hz(void)
{
    return s_resolution_hz;
}

int scribe_capture_clock(int line)
{
    return s_kind == SCRIBE_CAPTURE_MCPWM ? line / LINES_PER_GROUP : 0;
}

esp_err_t scribe_capture_zero(int64_t *zero_us)
{
    esp_err_t err = ESP_OK;
    if (s_kind == SCRIBE_CAPTURE_MCPWM) {
        if (s_sync_gpio >= 0) {
            /* One edge on the loop-back pin syncs both groups on the same clock edge. */
            gpio_set_level((gpio_num_t)s_sync_gpio, 1);
            *zero_us = esp_timer_get_time();
            gpio_set_level((gpio_num_t)s_sync_gpio, 0);
        } else {
            /* Two register writes back to back, nothing may run in between. */
            portENTER_CRITICAL(&s_zero_lock);
            for (int g = 0; g < s_groups && err == ESP_OK; g++) {
                err = mcpwm_soft_sync_activate(s_sync[g]);
            }
            *zero_us = esp_timer_get_time();
            portEXIT_CRITICAL(&s_zero_lock);
        }
    } else {
        *zero_us = esp_timer_get_time();
    }
    return err;
}

void scribe_capture_enable(bool on)
{
    s_enabled = on;
}

uint32_t scribe_capture_overflows(void)
{
    uint32_t total = 0;
    for (int i = 0; i < s_lines; i++) {
        total += s_line[i].overflows;
    }
    return total;
}

void scribe_capture_clear_overflows(void)
{
    for (int i = 0; i < s_lines; i++) {
        s_line[i].overflows = 0;
    }
}
