/*
 * Wi-Fi bring-up for the SoftAP + TCP transport: the AP stage runs the SoftAP (192.168.4.1, the
 * esp_netif default), every other stage is a station with a static IP, so each stage's address
 * follows from its index and no DHCP round trip delays the links. Power save is off on every
 * board: modem sleep adds up to a beacon interval of latency to each frame.
 */
#include <string.h>

#include "esp_check.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_netif_net_stack.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "lwip/etharp.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

#include "wifi_transport.h"

static const char *TAG = "ts_wifi_radio";

#define IP_READY_BIT ((EventBits_t)1)
#define PEER_CACHE 2 /* the AP stage has at most two neighbours */

typedef struct {
    uint32_t ip; /* network byte order, 0: empty slot */
    uint8_t mac[6];
} peer_mac_t;

static esp_netif_t *s_netif;
static EventGroupHandle_t s_events;
static bool s_is_ap;
static peer_mac_t s_peer_macs[PEER_CACHE];

uint32_t ts_wifi_stage_ip(uint8_t stage)
{
    if (stage == CONFIG_TINYSPLIT_WIFI_AP_STAGE) {
        return ESP_IP4TOADDR(192, 168, 4, 1);
    }
    return ESP_IP4TOADDR(192, 168, 4, 10 + stage);
}

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        esp_wifi_connect();
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        const wifi_event_sta_disconnected_t *ev = data;
        xEventGroupClearBits(s_events, IP_READY_BIT);
        ESP_LOGW(TAG, "not associated with SSID \"%s\" (reason %d), retrying",
                 CONFIG_TINYSPLIT_WIFI_SSID, (int)ev->reason);
        esp_wifi_connect();
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_AP_STACONNECTED) {
        const wifi_event_ap_staconnected_t *ev = data;
        ESP_LOGI(TAG, "station " MACSTR " joined", MAC2STR(ev->mac));
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_AP_STADISCONNECTED) {
        const wifi_event_ap_stadisconnected_t *ev = data;
        ESP_LOGW(TAG, "station " MACSTR " left (reason %d)", MAC2STR(ev->mac), (int)ev->reason);
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *ev = data;
        ESP_LOGI(TAG, "joined the SoftAP as " IPSTR, IP2STR(&ev->ip_info.ip));
        xEventGroupSetBits(s_events, IP_READY_BIT);
    }
}

/* NVS (Wi-Fi calibration data), lwIP and the default event loop may already be up: the shared
 * component owns NVS, so every step here tolerates an earlier init. */
static esp_err_t init_system(void)
{
    ESP_RETURN_ON_ERROR(nvs_flash_init(), TAG, "nvs_flash_init");
    ESP_RETURN_ON_ERROR(esp_netif_init(), TAG, "esp_netif_init");
    esp_err_t err = esp_event_loop_create_default();
    if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) {
        ESP_LOGE(TAG, "esp_event_loop_create_default: %s", esp_err_to_name(err));
        return err;
    }
    return ESP_OK;
}

/* Stop the DHCP client before the interface starts: esp_netif then announces the static address
 * with IP_EVENT_STA_GOT_IP on every association (esp_netif_action_connected). */
static esp_err_t set_static_ip(uint8_t stage)
{
    esp_err_t err = esp_netif_dhcpc_stop(s_netif);
    if (err != ESP_OK && err != ESP_ERR_ESP_NETIF_DHCP_ALREADY_STOPPED) {
        ESP_LOGE(TAG, "esp_netif_dhcpc_stop: %s", esp_err_to_name(err));
        return err;
    }
    esp_netif_ip_info_t ip;
    memset(&ip, 0, sizeof(ip));
    ip.ip.addr = ts_wifi_stage_ip(stage);
    ip.netmask.addr = ESP_IP4TOADDR(255, 255, 255, 0);
    ip.gw.addr = ESP_IP4TOADDR(192, 168, 4, 1);
    ESP_RETURN_ON_ERROR(esp_netif_set_ip_info(s_netif, &ip), TAG, "esp_netif_set_ip_info");
    ESP_LOGI(TAG, "station static IP " IPSTR, IP2STR(&ip.ip));
    return ESP_OK;
}

/* Lengths were checked in ts_wifi_radio_start; the clamps keep the copies in bounds anyway. */
static void fill_config(wifi_config_t *wc, uint8_t stages)
{
    const char *ssid = CONFIG_TINYSPLIT_WIFI_SSID;
    const char *pass = CONFIG_TINYSPLIT_WIFI_PASSWORD;
    size_t ssid_len = strnlen(ssid, sizeof(wc->ap.ssid));
    size_t pass_len = strnlen(pass, sizeof(wc->ap.password) - 1);
    memset(wc, 0, sizeof(*wc));
    if (s_is_ap) {
        memcpy(wc->ap.ssid, ssid, ssid_len);
        wc->ap.ssid_len = (uint8_t)ssid_len;
        memcpy(wc->ap.password, pass, pass_len);
        wc->ap.channel = CONFIG_TINYSPLIT_WIFI_CHANNEL;
        wc->ap.authmode = WIFI_AUTH_WPA2_PSK;
        /* One slot per stage (one more than the stations need) so a rebooted station can
         * rejoin before the AP has timed out its old association. */
        wc->ap.max_connection = stages < ESP_WIFI_MAX_CONN_NUM ? stages : ESP_WIFI_MAX_CONN_NUM;
    } else {
        memcpy(wc->sta.ssid, ssid, ssid_len);
        memcpy(wc->sta.password, pass, pass_len);
        wc->sta.channel = CONFIG_TINYSPLIT_WIFI_CHANNEL; /* scan this channel first */
        wc->sta.threshold.authmode = WIFI_AUTH_WPA2_PSK;
    }
}

esp_err_t ts_wifi_radio_start(uint8_t stage, uint8_t stages)
{
    size_t ssid_len = strlen(CONFIG_TINYSPLIT_WIFI_SSID);
    size_t pass_len = strlen(CONFIG_TINYSPLIT_WIFI_PASSWORD);
    ESP_RETURN_ON_FALSE(ssid_len >= 1 && ssid_len <= 32, ESP_ERR_INVALID_ARG, TAG,
                        "TINYSPLIT_WIFI_SSID must have 1..32 bytes, has %u", (unsigned)ssid_len);
    ESP_RETURN_ON_FALSE(pass_len >= 8 && pass_len <= 63, ESP_ERR_INVALID_ARG, TAG,
                        "TINYSPLIT_WIFI_PASSWORD must have 8..63 characters (WPA2), has %u",
                        (unsigned)pass_len);
    s_is_ap = stage == CONFIG_TINYSPLIT_WIFI_AP_STAGE;
    s_events = xEventGroupCreate();
    ESP_RETURN_ON_FALSE(s_events != NULL, ESP_ERR_NO_MEM, TAG, "event group");
    ESP_RETURN_ON_ERROR(init_system(), TAG, "system init");

    s_netif = s_is_ap ? esp_netif_create_default_wifi_ap() : esp_netif_create_default_wifi_sta();
    ESP_RETURN_ON_FALSE(s_netif != NULL, ESP_FAIL, TAG, "default Wi-Fi netif");
    if (!s_is_ap) {
        ESP_RETURN_ON_ERROR(set_static_ip(stage), TAG, "static IP");
    }

    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_RETURN_ON_ERROR(esp_wifi_init(&init), TAG, "esp_wifi_init");
    ESP_RETURN_ON_ERROR(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_event,
                                                            NULL, NULL),
                        TAG, "Wi-Fi event handler");
    ESP_RETURN_ON_ERROR(esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP,
                                                            on_event, NULL, NULL),
                        TAG, "IP event handler");
    /* Configuration from Kconfig only: nothing stale from an earlier firmware in NVS. */
    ESP_RETURN_ON_ERROR(esp_wifi_set_storage(WIFI_STORAGE_RAM), TAG, "esp_wifi_set_storage");

    wifi_interface_t ifx = s_is_ap ? WIFI_IF_AP : WIFI_IF_STA;
    wifi_config_t wc;
    fill_config(&wc, stages);
    ESP_RETURN_ON_ERROR(esp_wifi_set_mode(s_is_ap ? WIFI_MODE_AP : WIFI_MODE_STA), TAG,
                        "esp_wifi_set_mode");
    ESP_RETURN_ON_ERROR(esp_wifi_set_config(ifx, &wc), TAG, "esp_wifi_set_config");
    /* HT20 as the simulator's link model assumes; a refusal only costs that match. */
    esp_err_t err = esp_wifi_set_bandwidth(ifx, WIFI_BW_HT20);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_wifi_set_bandwidth(HT20): %s", esp_err_to_name(err));
    }
    ESP_RETURN_ON_ERROR(esp_wifi_start(), TAG, "esp_wifi_start");
    ESP_RETURN_ON_ERROR(esp_wifi_set_ps(WIFI_PS_NONE), TAG, "esp_wifi_set_ps");
    if (s_is_ap) {
        ESP_LOGI(TAG, "SoftAP \"%s\" on channel %d, 192.168.4.1, up to %d stations",
                 CONFIG_TINYSPLIT_WIFI_SSID, CONFIG_TINYSPLIT_WIFI_CHANNEL,
                 (int)wc.ap.max_connection);
    }
    return ESP_OK;
}

void ts_wifi_radio_wait_ip(void)
{
    if (s_is_ap) {
        return;
    }
    while ((xEventGroupWaitBits(s_events, IP_READY_BIT, pdFALSE, pdTRUE, pdMS_TO_TICKS(10000)) &
            IP_READY_BIT) == 0) {
        ESP_LOGI(TAG, "waiting to join SSID \"%s\"", CONFIG_TINYSPLIT_WIFI_SSID);
    }
}

typedef struct {
    uint32_t ip;
    uint8_t mac[6];
    bool found;
} arp_query_t;

/* Runs in the lwIP thread (esp_netif_tcpip_exec): the ARP table is not thread safe. */
static esp_err_t arp_lookup(void *arg)
{
    arp_query_t *q = arg;
    struct netif *nif = esp_netif_get_netif_impl(s_netif);
    ip4_addr_t ip = {.addr = q->ip};
    struct eth_addr *eth = NULL;
    const ip4_addr_t *ip_ret = NULL;
    if (nif != NULL && etharp_find_addr(nif, &ip, &eth, &ip_ret) >= 0 && eth != NULL) {
        memcpy(q->mac, eth->addr, sizeof(q->mac));
        q->found = true;
    }
    return ESP_OK;
}

/* The AP knows its stations by MAC, the links by IP: static IPs leave no DHCP lease to map one to
 * the other (esp_wifi_ap_get_sta_list_with_ip reads the leases), so the ARP entry TCP traffic
 * creates provides the MAC. A station keeps its MAC, so it is looked up once. */
static const uint8_t *peer_mac(uint32_t ip)
{
    for (int i = 0; i < PEER_CACHE; i++) {
        if (s_peer_macs[i].ip == ip) {
            return s_peer_macs[i].mac;
        }
    }
    arp_query_t q = {.ip = ip, .found = false};
    if (esp_netif_tcpip_exec(arp_lookup, &q) != ESP_OK || !q.found) {
        return NULL;
    }
    for (int i = 0; i < PEER_CACHE; i++) {
        if (s_peer_macs[i].ip == 0) {
            s_peer_macs[i].ip = ip;
            memcpy(s_peer_macs[i].mac, q.mac, sizeof(q.mac));
            return s_peer_macs[i].mac;
        }
    }
    return NULL;
}

esp_err_t ts_wifi_radio_rssi(uint32_t peer_ip, int8_t *out_dbm)
{
    if (!s_is_ap) {
        int rssi = 0;
        esp_err_t err = esp_wifi_sta_get_rssi(&rssi); /* fails while not associated */
        if (err == ESP_OK) {
            *out_dbm = (int8_t)rssi;
        }
        return err;
    }
    const uint8_t *mac = peer_mac(peer_ip);
    if (mac == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    wifi_sta_list_t list;
    esp_err_t err = esp_wifi_ap_get_sta_list(&list);
    if (err != ESP_OK) {
        return err;
    }
    for (int i = 0; i < list.num; i++) {
        if (memcmp(list.sta[i].mac, mac, 6) == 0) {
            *out_dbm = list.sta[i].rssi;
            return ESP_OK;
        }
    }
    return ESP_ERR_NOT_FOUND;
}
