/*
 * ESP-NOW transport. Send-callback pacing: send() hands one frame to esp_now_send and waits for
 * the send callback, so exactly one frame is in flight (the ESP-NOW guide's advice; it also keeps
 * the callbacks in order). ESP_NOW_SEND_FAIL (no MAC ACK after the driver's retries) is returned
 * as an error: paper mode sees the loss, reliable mode's ARQ repairs it. The receive callback
 * runs in the Wi-Fi task: it only records the RSSI and queues a copy with ts_app_receive().
 */
#include <stdbool.h>
#include <string.h>

#include "esp_check.h"
#include "esp_event.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_now.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "sdkconfig.h"
#include "ts_frame.h"

#include "espnow_peers.h"
#include "espnow_transport.h"

static const char *TAG = "ts_espnow";

/* Kconfig rate choice -> PHY mode and rate of esp_now_set_peer_rate_config(). */
#if defined(CONFIG_TINYSPLIT_ESPNOW_RATE_11M)
#define RATE_PHYMODE WIFI_PHY_MODE_11B
#define RATE_PHY WIFI_PHY_RATE_11M_L
#define RATE_NAME "11 Mbps CCK"
#elif defined(CONFIG_TINYSPLIT_ESPNOW_RATE_6M)
#define RATE_PHYMODE WIFI_PHY_MODE_11G
#define RATE_PHY WIFI_PHY_RATE_6M
#define RATE_NAME "6 Mbps OFDM"
#elif defined(CONFIG_TINYSPLIT_ESPNOW_RATE_24M)
#define RATE_PHYMODE WIFI_PHY_MODE_11G
#define RATE_PHY WIFI_PHY_RATE_24M
#define RATE_NAME "24 Mbps OFDM"
#elif defined(CONFIG_TINYSPLIT_ESPNOW_RATE_54M)
#define RATE_PHYMODE WIFI_PHY_MODE_11G
#define RATE_PHY WIFI_PHY_RATE_54M
#define RATE_NAME "54 Mbps OFDM"
#elif defined(CONFIG_TINYSPLIT_ESPNOW_RATE_MCS7)
#define RATE_PHYMODE WIFI_PHY_MODE_HT20
#define RATE_PHY WIFI_PHY_RATE_MCS7_LGI
#define RATE_NAME "MCS7 HT20 (65 Mbps)"
#else
#define RATE_PHYMODE WIFI_PHY_MODE_11B
#define RATE_PHY WIFI_PHY_RATE_1M_L
#define RATE_NAME "1 Mbps DSSS"
#define RATE_IS_DEFAULT 1 /* ESP-NOW's own default rate */
#endif

typedef struct {
    bool exists[2];
    uint8_t peer[2][ESP_NOW_ETH_ALEN]; /* MAC of the previous (UP) and next (DOWN) stage */
    volatile int8_t rssi[2];           /* last received frame per link, dBm */
    volatile bool rssi_valid[2];
    size_t frame_bytes;
    SemaphoreHandle_t sent;                /* given by the send callback */
    volatile esp_now_send_status_t status; /* written before `sent` is given */
} espnow_t;

static espnow_t s_now;

static void on_recv(const esp_now_recv_info_t *info, const uint8_t *data, int len)
{
    if (info == NULL || info->src_addr == NULL || data == NULL || len <= 0) {
        return;
    }
    for (int link = TS_LINK_UP; link <= TS_LINK_DOWN; link++) {
        if (s_now.exists[link] && memcmp(info->src_addr, s_now.peer[link], ESP_NOW_ETH_ALEN) == 0) {
            if (info->rx_ctrl != NULL) {
                s_now.rssi[link] = (int8_t)info->rx_ctrl->rssi;
                s_now.rssi_valid[link] = true;
            }
            /* Copies and queues without blocking; a full queue drops and counts the frame. */
            (void)ts_app_receive((ts_link_t)link, data, (size_t)len);
            return;
        }
    }
}

/* The send callback's first argument changed in ESP-IDF v5.5 (esp_now.h). One frame is in flight,
 * so the outcome belongs to it whatever the address. */
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0)
static void on_sent(const esp_now_send_info_t *info, esp_now_send_status_t status)
#else
static void on_sent(const uint8_t *mac, esp_now_send_status_t status)
#endif
{
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0)
    (void)info;
#else
    (void)mac;
#endif
    s_now.status = status;
    xSemaphoreGive(s_now.sent);
}

static const char *parse_error(int err)
{
    switch (err) {
    case TS_ERR_NOSPACE:
        return "too many entries";
    case TS_ERR_FIELD:
        return "a broadcast/multicast or repeated MAC";
    default:
        return "syntax error";
    }
}

/* Find this board's neighbours in the peer list and check the list names this board. */
static esp_err_t load_peers(const ts_app_config_t *cfg)
{
    static uint8_t macs[TS_ESPNOW_MAX_PEERS][TS_ESPNOW_MAC_BYTES];
    const char *text = CONFIG_TINYSPLIT_ESPNOW_PEERS;
    size_t at = 0;
    int n = ts_espnow_parse_peers(text, macs, TS_ESPNOW_MAX_PEERS, &at);
    if (n < 0) {
        ESP_LOGE(TAG, "TINYSPLIT_ESPNOW_PEERS=\"%s\": %s at character %u; expected the station "
                      "MACs of stages 1..N in order, \"aa:bb:cc:dd:ee:ff,11:22:33:44:55:66,...\"",
                 text, parse_error(n), (unsigned)at + 1);
        return ESP_ERR_INVALID_ARG;
    }
    ESP_RETURN_ON_FALSE(n >= cfg->stages, ESP_ERR_INVALID_ARG, TAG,
                        "TINYSPLIT_ESPNOW_PEERS lists %d MACs but the pipeline has %d stages", n,
                        cfg->stages);
    if (n > cfg->stages) {
        ESP_LOGW(TAG, "TINYSPLIT_ESPNOW_PEERS lists %d MACs; stages %d.. are not used", n,
                 cfg->stages + 1);
    }
    uint8_t own[ESP_NOW_ETH_ALEN];
    ESP_RETURN_ON_ERROR(esp_wifi_get_mac(WIFI_IF_STA, own), TAG, "esp_wifi_get_mac");
    const uint8_t *listed = macs[cfg->stage - 1];
    ESP_RETURN_ON_FALSE(memcmp(own, listed, ESP_NOW_ETH_ALEN) == 0, ESP_ERR_INVALID_ARG, TAG,
                        "this board's station MAC is " MACSTR " but TINYSPLIT_ESPNOW_PEERS lists "
                        MACSTR " for stage %d: the neighbours would address another board",
                        MAC2STR(own), MAC2STR(listed), cfg->stage);
    s_now.exists[TS_LINK_UP] = cfg->stage > 1;
    s_now.exists[TS_LINK_DOWN] = cfg->stage < cfg->stages;
    if (s_now.exists[TS_LINK_UP]) {
        memcpy(s_now.peer[TS_LINK_UP], macs[cfg->stage - 2], ESP_NOW_ETH_ALEN);
    }
    if (s_now.exists[TS_LINK_DOWN]) {
        memcpy(s_now.peer[TS_LINK_DOWN], macs[cfg->stage], ESP_NOW_ETH_ALEN);
    }
    return ESP_OK;
}

/* Station mode without a connection on a fixed channel; NVS, lwIP and the default event loop may
 * already be up (the shared component owns NVS), so every init step tolerates that. */
static esp_err_t start_wifi(void)
{
    ESP_RETURN_ON_ERROR(nvs_flash_init(), TAG, "nvs_flash_init");
    ESP_RETURN_ON_ERROR(esp_netif_init(), TAG, "esp_netif_init");
    esp_err_t err = esp_event_loop_create_default();
    ESP_RETURN_ON_FALSE(err == ESP_OK || err == ESP_ERR_INVALID_STATE, err, TAG,
                        "esp_event_loop_create_default: %s", esp_err_to_name(err));
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_RETURN_ON_ERROR(esp_wifi_init(&init), TAG, "esp_wifi_init");
    ESP_RETURN_ON_ERROR(esp_wifi_set_storage(WIFI_STORAGE_RAM), TAG, "esp_wifi_set_storage");
    ESP_RETURN_ON_ERROR(esp_wifi_set_mode(WIFI_MODE_STA), TAG, "esp_wifi_set_mode");
    ESP_RETURN_ON_ERROR(esp_wifi_start(), TAG, "esp_wifi_start");
    ESP_RETURN_ON_ERROR(esp_wifi_set_channel(CONFIG_TINYSPLIT_ESPNOW_CHANNEL, WIFI_SECOND_CHAN_NONE),
                        TAG, "esp_wifi_set_channel(%d)", CONFIG_TINYSPLIT_ESPNOW_CHANNEL);
    /* Modem sleep would let the radio miss frames between beacons. */
    ESP_RETURN_ON_ERROR(esp_wifi_set_ps(WIFI_PS_NONE), TAG, "esp_wifi_set_ps");
    return ESP_OK;
}

/* v2 payloads (1470 B) need ESP-IDF >= 5.4 (ESP_NOW_MAX_DATA_LEN_V2) and every board on v2: a
 * v1 receiver truncates or drops frames over 250 B. v5.4.0 and v5.4.1 define the limit as 1490;
 * the protocol's largest frame is TS_MAX_FRAME_BYTES. */
static size_t choose_frame_bytes(void)
{
#if defined(ESP_NOW_MAX_DATA_LEN_V2) && defined(CONFIG_TINYSPLIT_ESPNOW_V2)
    uint32_t version = 0;
    if (esp_now_get_version(&version) == ESP_OK && version >= 2) {
        return ESP_NOW_MAX_DATA_LEN_V2 < TS_MAX_FRAME_BYTES ? ESP_NOW_MAX_DATA_LEN_V2
                                                            : TS_MAX_FRAME_BYTES;
    }
    ESP_LOGW(TAG, "ESP-NOW reports version %u: v1 frames of %d B", (unsigned)version,
             ESP_NOW_MAX_DATA_LEN);
#elif defined(CONFIG_TINYSPLIT_ESPNOW_V2)
    ESP_LOGW(TAG, "this ESP-IDF has no ESP-NOW v2 (needs >= 5.4): v1 frames of %d B",
             ESP_NOW_MAX_DATA_LEN);
#endif
    return ESP_NOW_MAX_DATA_LEN;
}

static esp_err_t add_peer(const uint8_t mac[ESP_NOW_ETH_ALEN])
{
    esp_now_peer_info_t peer;
    memset(&peer, 0, sizeof(peer));
    memcpy(peer.peer_addr, mac, ESP_NOW_ETH_ALEN);
    peer.channel = CONFIG_TINYSPLIT_ESPNOW_CHANNEL;
    peer.ifidx = WIFI_IF_STA;
    peer.encrypt = false;
    ESP_RETURN_ON_ERROR(esp_now_add_peer(&peer), TAG, "esp_now_add_peer " MACSTR, MAC2STR(mac));

    esp_now_rate_config_t rate = {
        .phymode = RATE_PHYMODE,
        .rate = RATE_PHY,
        .ersu = false,
        .dcm = false,
    };
    esp_err_t err = esp_now_set_peer_rate_config(mac, &rate);
#ifdef RATE_IS_DEFAULT
    if (err != ESP_OK) { /* the driver sends at 1 Mbps anyway */
        ESP_LOGW(TAG, "esp_now_set_peer_rate_config(" MACSTR ", %s): %s", MAC2STR(mac), RATE_NAME,
                 esp_err_to_name(err));
        err = ESP_OK;
    }
#endif
    ESP_RETURN_ON_ERROR(err, TAG, "esp_now_set_peer_rate_config(" MACSTR ", %s)", MAC2STR(mac),
                        RATE_NAME);
    return ESP_OK;
}

esp_err_t ts_espnow_start(ts_transport_t *self, const ts_app_config_t *cfg)
{
    ESP_RETURN_ON_FALSE(cfg->stage >= 1 && cfg->stage <= cfg->stages, ESP_ERR_INVALID_ARG, TAG,
                        "stage %d of %d", cfg->stage, cfg->stages);
    s_now.sent = xSemaphoreCreateBinary();
    ESP_RETURN_ON_FALSE(s_now.sent != NULL, ESP_ERR_NO_MEM, TAG, "send semaphore");
    ESP_RETURN_ON_ERROR(start_wifi(), TAG, "Wi-Fi");
    ESP_RETURN_ON_ERROR(load_peers(cfg), TAG, "peers");

    ESP_RETURN_ON_ERROR(esp_now_init(), TAG, "esp_now_init");
    ESP_RETURN_ON_ERROR(esp_now_register_recv_cb(on_recv), TAG, "esp_now_register_recv_cb");
    ESP_RETURN_ON_ERROR(esp_now_register_send_cb(on_sent), TAG, "esp_now_register_send_cb");
    for (int link = TS_LINK_UP; link <= TS_LINK_DOWN; link++) {
        if (s_now.exists[link]) {
            ESP_RETURN_ON_ERROR(add_peer(s_now.peer[link]), TAG, "peer");
        }
    }
    s_now.frame_bytes = choose_frame_bytes();
    self->frame_bytes = s_now.frame_bytes;
    self->stream = false;
    self->ctx = &s_now;
    ESP_LOGI(TAG, "stage %d of %d on channel %d at %s, frames of %u B", cfg->stage, cfg->stages,
             CONFIG_TINYSPLIT_ESPNOW_CHANNEL, RATE_NAME, (unsigned)s_now.frame_bytes);
    if (s_now.exists[TS_LINK_UP]) {
        ESP_LOGI(TAG, "UP peer " MACSTR, MAC2STR(s_now.peer[TS_LINK_UP]));
    }
    if (s_now.exists[TS_LINK_DOWN]) {
        ESP_LOGI(TAG, "DOWN peer " MACSTR, MAC2STR(s_now.peer[TS_LINK_DOWN]));
    }
    return ESP_OK;
}

esp_err_t ts_espnow_send(ts_transport_t *self, ts_link_t link, const uint8_t *frame, size_t len)
{
    espnow_t *e = self->ctx;
    if (e == NULL || (link != TS_LINK_UP && link != TS_LINK_DOWN) || !e->exists[link]) {
        return ESP_ERR_INVALID_STATE;
    }
    if (len == 0 || len > e->frame_bytes) {
        return ESP_ERR_INVALID_SIZE;
    }
    /* A callback that arrived after an earlier send timed out must not answer for this frame. */
    xSemaphoreTake(e->sent, 0);
    TickType_t backoff = pdMS_TO_TICKS(CONFIG_TINYSPLIT_ESPNOW_NO_MEM_DELAY_MS);
    esp_err_t err;
    for (int retry = 0;; retry++) {
        err = esp_now_send(e->peer[link], frame, len);
        /* NO_MEM: the driver's queue is full; the API asks for a short delay, then a retry. */
        if (err != ESP_ERR_ESPNOW_NO_MEM || retry >= CONFIG_TINYSPLIT_ESPNOW_NO_MEM_RETRIES) {
            break;
        }
        vTaskDelay(backoff > 0 ? backoff : 1);
    }
    if (err != ESP_OK) {
        ESP_LOGD(TAG, "esp_now_send: %s", esp_err_to_name(err));
        return err;
    }
    if (xSemaphoreTake(e->sent, pdMS_TO_TICKS(CONFIG_TINYSPLIT_ESPNOW_SEND_TIMEOUT_MS)) != pdTRUE) {
        return ESP_ERR_TIMEOUT;
    }
    return e->status == ESP_NOW_SEND_SUCCESS ? ESP_OK : ESP_FAIL;
}

esp_err_t ts_espnow_rssi(ts_transport_t *self, ts_link_t link, int8_t *out_dbm)
{
    espnow_t *e = self->ctx;
    if (e == NULL || (link != TS_LINK_UP && link != TS_LINK_DOWN) || !e->exists[link] ||
        !e->rssi_valid[link]) {
        return ESP_ERR_INVALID_STATE;
    }
    *out_dbm = e->rssi[link];
    return ESP_OK;
}
