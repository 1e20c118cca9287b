/*
 * BLE transport (NimBLE host, ESP-IDF >= 5.3): moves tinysplit frames, nothing else. Framing,
 * windows, retransmission and timeouts live in the portable core; this transport connects the
 * links, copies frames in and out of NimBLE mbufs and reports link state and RSSI.
 *
 * Topology (../README.md): stage i advertises as "tinysplit-<i>" and serves the tinysplit GATT
 * service to stage i-1 (UP link, ble_server.c); it scans for stage i+1 and is a GATT client of it
 * (DOWN link, ble_client.c). This file starts NimBLE, restarts advertising / scanning when a link
 * drops, and implements the ts_transport_t functions.
 */
#include "ble_transport.h"

#include <stdio.h>

#include "ble_internal.h"
#include "esp_err.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/task.h"
#include "host/util/util.h"
#include "nimble/nimble_port.h"
#include "nimble/nimble_port_freertos.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

#if ESP_IDF_VERSION < ESP_IDF_VERSION_VAL(5, 3, 0)
#error "the tinysplit BLE firmware needs ESP-IDF >= 5.3"
#endif
#if !CONFIG_BT_NIMBLE_ENABLED
#error "enable the NimBLE host (CONFIG_BT_NIMBLE_ENABLED), see sdkconfig.defaults"
#endif
#if !CONFIG_BT_NIMBLE_ROLE_CENTRAL || !CONFIG_BT_NIMBLE_ROLE_PERIPHERAL || \
    !CONFIG_BT_NIMBLE_ROLE_OBSERVER || !CONFIG_BT_NIMBLE_ROLE_BROADCASTER
#error "every stage is both central and peripheral: enable all four CONFIG_BT_NIMBLE_ROLE_*"
#endif
#if CONFIG_BT_NIMBLE_MAX_CONNECTIONS < 2
#error "a stage holds two connections (UP and DOWN): CONFIG_BT_NIMBLE_MAX_CONNECTIONS >= 2"
#endif
#if CONFIG_BT_NIMBLE_EXT_ADV
/* NimBLE compiles ble_gap_adv_start() and legacy scan reports only without extended advertising. */
#error "the BLE transport uses legacy advertising: disable CONFIG_BT_NIMBLE_EXT_ADV"
#endif

static const char *TAG = "ts_ble";

/* Disabled bool options are absent from sdkconfig.h, so name them once here for the log. */
#if CONFIG_TINYSPLIT_BLE_DLE
#define TS_BLE_DLE_STATE "on"
#else
#define TS_BLE_DLE_STATE "off"
#endif
#if CONFIG_TINYSPLIT_BLE_2M_PHY
#define TS_BLE_2M_STATE "on"
#else
#define TS_BLE_2M_STATE "off"
#endif

#define TS_BLE_KICK_RETRY_MS 1000 /* retry a failed advertise / scan start this much later */
#define TS_BLE_WAIT_LOG_S 10      /* start(): "waiting for links" log period */

static bool s_started;
static struct ble_npl_callout s_kick_timer;
static uint32_t s_dropped[2]; /* app task only: frames refused on full buffers, for the log */

/* ---------------------------------------------------------------- host task, sync, kick */

void ts_ble_kick(void)
{
    if (!ts_ble_node.synced) {
        return; /* the sync callback kicks */
    }
    bool retry = false;
    if (ts_ble_node.needs_up && ts_ble_link_get(TS_LINK_UP).conn == BLE_HS_CONN_HANDLE_NONE &&
        !ble_gap_adv_active()) {
        int rc = ts_ble_server_advertise();
        if (rc != 0) {
            ESP_LOGW(TAG, "UP link: advertising failed to start: rc=%d", rc);
            retry = true;
        } else {
            ESP_LOGI(TAG, "UP link: advertising as %s", ts_ble_node.name);
        }
    }
    if (ts_ble_node.needs_down && ts_ble_link_get(TS_LINK_DOWN).conn == BLE_HS_CONN_HANDLE_NONE &&
        !ble_gap_conn_active() && !ble_gap_disc_active()) {
        int rc = ts_ble_client_scan();
        if (rc != 0) {
            ESP_LOGW(TAG, "DOWN link: scanning failed to start: rc=%d", rc);
            retry = true;
        } else {
            ESP_LOGI(TAG, "DOWN link: scanning for tinysplit-%u",
                     (unsigned)(ts_ble_node.stage + 1u));
        }
    }
    if (retry) {
        (void)ble_npl_callout_reset(&s_kick_timer,
                                    ble_npl_time_ms_to_ticks32(TS_BLE_KICK_RETRY_MS));
    }
}

static void ts_ble_kick_event(struct ble_npl_event *ev)
{
    (void)ev;
    ts_ble_kick();
}

static void ts_ble_on_sync(void)
{
    int rc = ble_hs_util_ensure_addr(0);
    if (rc == 0) {
        rc = ble_hs_id_infer_auto(0, &ts_ble_node.own_addr_type);
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "no usable BLE address: rc=%d", rc);
        return;
    }
    rc = ble_att_set_preferred_mtu(CONFIG_TINYSPLIT_BLE_MTU);
    if (rc != 0) {
        ESP_LOGW(TAG, "preferred MTU %d refused: rc=%d", CONFIG_TINYSPLIT_BLE_MTU, rc);
    }
    ts_ble_node.synced = true;
    ts_ble_kick();
}

static void ts_ble_on_reset(int reason)
{
    ts_ble_node.synced = false;
    ts_ble_link_clear(TS_LINK_UP);
    ts_ble_link_clear(TS_LINK_DOWN);
    ts_ble_client_reset();
    ESP_LOGE(TAG, "NimBLE host reset (reason=%d): links dropped, reconnecting after resync",
             reason);
}

static void ts_ble_host_task(void *param)
{
    (void)param;
    nimble_port_run(); /* returns only after nimble_port_stop() */
    nimble_port_freertos_deinit();
}

/* ---------------------------------------------------------------- ts_transport_t */

static esp_err_t ts_ble_wait_links(void)
{
    const EventBits_t want = (ts_ble_node.needs_up ? TS_BLE_BIT_UP : 0u) |
                             (ts_ble_node.needs_down ? TS_BLE_BIT_DOWN : 0u);
    const unsigned stage = ts_ble_node.stage;
    const int timeout_s = CONFIG_TINYSPLIT_BLE_LINK_TIMEOUT_S;
    const int64_t t0_us = esp_timer_get_time();
    int next_log_s = TS_BLE_WAIT_LOG_S;
    for (;;) {
        EventBits_t got =
            xEventGroupWaitBits(ts_ble_node.events, want, pdFALSE, pdTRUE, pdMS_TO_TICKS(1000));
        if ((got & want) == want) {
            ESP_LOGI(TAG, "links up after %lld ms",
                     (long long)((esp_timer_get_time() - t0_us) / 1000));
            return ESP_OK;
        }
        const int waited_s = (int)((esp_timer_get_time() - t0_us) / 1000000);
        const char *up = (want & TS_BLE_BIT_UP) == 0      ? "none"
                         : (got & TS_BLE_BIT_UP) != 0     ? "ready"
                                                          : "no subscribed central";
        const char *down = (want & TS_BLE_BIT_DOWN) == 0  ? "none"
                           : (got & TS_BLE_BIT_DOWN) != 0 ? "ready"
                                                          : "not connected";
        if (timeout_s > 0 && waited_s >= timeout_s) {
            ESP_LOGE(TAG, "stage %u: links not up after %d s (UP from tinysplit-%u: %s; DOWN to "
                     "tinysplit-%u: %s); are both neighbours powered, in range and configured "
                     "with the same stage count?",
                     stage, waited_s, stage - 1u, up, stage + 1u, down);
            return ESP_ERR_TIMEOUT;
        }
        if (waited_s >= next_log_s) {
            ESP_LOGI(TAG, "stage %u: waiting for links, %d s (UP from tinysplit-%u: %s; DOWN to "
                     "tinysplit-%u: %s)",
                     stage, waited_s, stage - 1u, up, stage + 1u, down);
            next_log_s += TS_BLE_WAIT_LOG_S;
        }
    }
}

/* NVS, controller + host, GATT service, host task; then wait for the links. */
static esp_err_t ts_ble_bring_up(void)
{
    ts_ble_node.events = xEventGroupCreate();
    if (ts_ble_node.events == NULL) {
        return ESP_ERR_NO_MEM;
    }
    /* The PHY keeps its calibration in NVS; nvs_flash_init() is a no-op when already done. */
    esp_err_t err = nvs_flash_init();
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "NVS unavailable (%s): radio calibration is not cached",
                 esp_err_to_name(err));
    }
    err = nimble_port_init(); /* also initialises and enables the BLE controller */
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nimble_port_init failed: %s", esp_err_to_name(err));
        return err;
    }
    ble_hs_cfg.sync_cb = ts_ble_on_sync;
    ble_hs_cfg.reset_cb = ts_ble_on_reset;
    int rc = ts_ble_server_register();
    if (rc != 0) {
        ESP_LOGE(TAG, "GATT service registration failed: rc=%d", rc);
        return ESP_FAIL;
    }
    ble_npl_callout_init(&s_kick_timer, nimble_port_get_dflt_eventq(), ts_ble_kick_event, NULL);
    nimble_port_freertos_init(ts_ble_host_task);
    return ts_ble_wait_links();
}

static esp_err_t ts_ble_start(ts_transport_t *self, const ts_app_config_t *cfg)
{
    if (self == NULL || cfg == NULL || cfg->stage < 1 || cfg->stage > cfg->stages) {
        return ESP_ERR_INVALID_ARG;
    }
    if (s_started) {
        return ESP_ERR_INVALID_STATE;
    }
    s_started = true;
    ts_ble_node.stage = cfg->stage;
    ts_ble_node.needs_up = cfg->stage > 1;
    ts_ble_node.needs_down = cfg->stage < cfg->stages;
    snprintf(ts_ble_node.name, sizeof ts_ble_node.name, "tinysplit-%u", (unsigned)cfg->stage);
    ESP_LOGI(TAG, "stage %u of %u: UP %s, DOWN %s; MTU %d, interval %d x 1.25 ms, DLE %s, "
             "2M PHY %s, write retry %d ms",
             (unsigned)cfg->stage, (unsigned)cfg->stages,
             ts_ble_node.needs_up ? "peripheral" : "none",
             ts_ble_node.needs_down ? "central" : "none", CONFIG_TINYSPLIT_BLE_MTU,
             CONFIG_TINYSPLIT_BLE_CONN_INTERVAL, TS_BLE_DLE_STATE, TS_BLE_2M_STATE,
             CONFIG_TINYSPLIT_BLE_WRITE_RETRY_MS);
    if (!ts_ble_node.needs_up && !ts_ble_node.needs_down) {
        ESP_LOGI(TAG, "single-stage pipeline: no BLE links to bring up");
        self->frame_bytes = ts_ble_value_max(CONFIG_TINYSPLIT_BLE_MTU);
        return ESP_OK;
    }
    esp_err_t err = ts_ble_bring_up();
    if (err != ESP_OK) {
        return err; /* ts_app_run logs it and restarts the board */
    }
    /* frame_bytes: the largest value one write (DOWN) or notification (last stage: UP) carries. */
    const ts_ble_link_t up = ts_ble_link_get(TS_LINK_UP);
    const ts_ble_link_t down = ts_ble_link_get(TS_LINK_DOWN);
    const uint16_t mtu = ts_ble_node.needs_down ? down.mtu : up.mtu;
    self->frame_bytes = ts_ble_value_max(mtu);
    if (mtu < CONFIG_TINYSPLIT_BLE_MTU) {
        ESP_LOGW(TAG, "negotiated MTU %u is below the configured %d", (unsigned)mtu,
                 CONFIG_TINYSPLIT_BLE_MTU);
    }
    ESP_LOGI(TAG, "stage %u ready: UP mtu=%u, DOWN mtu=%u, frame_bytes=%u",
             (unsigned)ts_ble_node.stage, (unsigned)up.mtu, (unsigned)down.mtu,
             (unsigned)self->frame_bytes);
    return ESP_OK;
}

/* One attempt: 0 or a NimBLE host error code. Both calls consume their mbuf whatever happens. */
static int ts_ble_send_once(ts_link_t link, const ts_ble_link_t *l, const uint8_t *frame,
                            uint16_t len)
{
    if (link == TS_LINK_DOWN) {
        return ble_gattc_write_no_rsp_flat(l->conn, l->val_handle, frame, len);
    }
    struct os_mbuf *om = ble_hs_mbuf_from_flat(frame, len);
    if (om == NULL) {
        return BLE_HS_ENOMEM;
    }
    return ble_gatts_notify_custom(l->conn, l->val_handle, om);
}

static esp_err_t ts_ble_send(ts_transport_t *self, ts_link_t link, const uint8_t *frame,
                             size_t len)
{
    (void)self;
    if ((link != TS_LINK_UP && link != TS_LINK_DOWN) || frame == NULL || len == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    const ts_ble_link_t l = ts_ble_link_get(link);
    if (!l.ready) {
        return ESP_ERR_INVALID_STATE;
    }
    if (len > ts_ble_value_max(l.mtu)) {
        return ESP_ERR_INVALID_SIZE; /* beyond the MTU NimBLE would silently truncate it */
    }
    /* BLE_HS_ENOMEM: the host's mbuf pool is full of queued packets. Back off a tick and retry for
     * at most CONFIG_TINYSPLIT_BLE_WRITE_RETRY_MS, then report the drop (the paper's boards lost
     * such frames silently). */
    const int64_t deadline_us =
        esp_timer_get_time() + (int64_t)CONFIG_TINYSPLIT_BLE_WRITE_RETRY_MS * 1000;
    int rc;
    for (;;) {
        rc = ts_ble_send_once(link, &l, frame, (uint16_t)len);
        if (rc != BLE_HS_ENOMEM || esp_timer_get_time() >= deadline_us) {
            break;
        }
        vTaskDelay(1);
    }
    switch (rc) {
    case 0:
        return ESP_OK;
    case BLE_HS_ENOMEM:
        s_dropped[link]++;
        ESP_LOGD(TAG, "%s link: frame refused after %d ms of full buffers (%lu so far)",
                 ts_ble_link_name(link), CONFIG_TINYSPLIT_BLE_WRITE_RETRY_MS,
                 (unsigned long)s_dropped[link]);
        return ESP_ERR_NO_MEM;
    case BLE_HS_ENOTCONN:
        return ESP_ERR_INVALID_STATE;
    default:
        ESP_LOGW(TAG, "%s link: send failed: rc=%d", ts_ble_link_name(link), rc);
        return ESP_FAIL;
    }
}

static esp_err_t ts_ble_rssi(ts_transport_t *self, ts_link_t link, int8_t *out_dbm)
{
    (void)self;
    if ((link != TS_LINK_UP && link != TS_LINK_DOWN) || out_dbm == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    const ts_ble_link_t l = ts_ble_link_get(link);
    if (l.conn == BLE_HS_CONN_HANDLE_NONE) {
        return ESP_ERR_INVALID_STATE;
    }
    /* The controller refreshes it on every received data-channel PDU of the connection. */
    int rc = ble_gap_conn_rssi(l.conn, out_dbm);
    if (rc == BLE_HS_ENOTCONN) {
        return ESP_ERR_INVALID_STATE;
    }
    return rc == 0 ? ESP_OK : ESP_FAIL;
}

static ts_transport_t s_transport = {
    .name = "ble",
    /* The configured value until start() replaces it with the negotiated one. */
    .frame_bytes = CONFIG_TINYSPLIT_BLE_MTU - TS_BLE_ATT_OVERHEAD < BLE_ATT_ATTR_MAX_LEN
                       ? CONFIG_TINYSPLIT_BLE_MTU - TS_BLE_ATT_OVERHEAD
                       : BLE_ATT_ATTR_MAX_LEN,
    .stream = false,
    .start = ts_ble_start,
    .send = ts_ble_send,
    .rssi = ts_ble_rssi,
    .ctx = &ts_ble_node,
};

ts_transport_t *ts_ble_transport(void)
{
    return &s_transport;
}
