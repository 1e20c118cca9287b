/*
 * BLE transport: the state both links share (identifiers, per-link snapshot for the app task) and
 * small helpers used by the server (UP) and client (DOWN) sides.
 */
#include <string.h>

#include "ble_internal.h"
#include "esp_err.h"
#include "esp_log.h"
#include "sdkconfig.h"

static const char *TAG = "ts_ble";

#define TS_BLE_DLE_TX_OCTETS 251u   /* largest LL PDU payload (Core 5.x Vol 6 Part B 4.5.10) */
#define TS_BLE_DLE_TX_TIME_US 2120u /* the spec's PDU time for 251 octets on the 1M PHY */

/* NimBLE keeps 128-bit UUIDs little-endian, so 5453000N-0000-4000-8000-74696e797370 ("TS" ...
 * "tinysp") reads backwards here. */
#define TS_BLE_UUID128(n)                                                                  \
    BLE_UUID128_INIT(0x70, 0x73, 0x79, 0x6e, 0x69, 0x74, 0x00, 0x80, 0x00, 0x40, 0x00, 0x00, \
                     (n), 0x00, 0x53, 0x54)

const ble_uuid128_t ts_ble_svc_uuid = TS_BLE_UUID128(0x01);
const ble_uuid128_t ts_ble_data_uuid = TS_BLE_UUID128(0x02);
const ble_uuid128_t ts_ble_ack_uuid = TS_BLE_UUID128(0x03);
const uint8_t ts_ble_mfg_prefix[TS_BLE_MFG_LEN - 1] = {0xFF, 0xFF, 't', 's'};

ts_ble_node_t ts_ble_node;

static ts_ble_link_t s_links[2] = {
    [TS_LINK_UP] = {.conn = BLE_HS_CONN_HANDLE_NONE},
    [TS_LINK_DOWN] = {.conn = BLE_HS_CONN_HANDLE_NONE},
};
static portMUX_TYPE s_lock = portMUX_INITIALIZER_UNLOCKED;
static uint8_t s_rx_buf[BLE_ATT_MTU_MAX]; /* host task only: one frame at a time is copied out */

ts_ble_link_t ts_ble_link_get(ts_link_t link)
{
    portENTER_CRITICAL(&s_lock);
    ts_ble_link_t copy = s_links[link];
    portEXIT_CRITICAL(&s_lock);
    return copy;
}

void ts_ble_link_set(ts_link_t link, uint16_t conn, uint16_t val_handle, uint16_t mtu, bool ready)
{
    portENTER_CRITICAL(&s_lock);
    s_links[link] = (ts_ble_link_t){
        .conn = conn, .val_handle = val_handle, .mtu = mtu, .ready = ready};
    portEXIT_CRITICAL(&s_lock);
    const EventBits_t bit = link == TS_LINK_UP ? TS_BLE_BIT_UP : TS_BLE_BIT_DOWN;
    if (ready) {
        xEventGroupSetBits(ts_ble_node.events, bit);
    } else {
        xEventGroupClearBits(ts_ble_node.events, bit);
    }
}

void ts_ble_link_set_mtu(ts_link_t link, uint16_t conn, uint16_t mtu)
{
    portENTER_CRITICAL(&s_lock);
    if (s_links[link].conn == conn) {
        s_links[link].mtu = mtu;
    }
    portEXIT_CRITICAL(&s_lock);
}

void ts_ble_link_clear(ts_link_t link)
{
    ts_ble_link_set(link, BLE_HS_CONN_HANDLE_NONE, 0, 0, false);
}

const char *ts_ble_link_name(ts_link_t link)
{
    return link == TS_LINK_UP ? "UP" : "DOWN";
}

/* MTU - 3, but at most the 512 bytes the Core Specification allows an attribute value (Vol 3
 * Part F 3.2.9; NimBLE's BLE_ATT_ATTR_MAX_LEN). NimBLE would send 514 at MTU 517, other stacks
 * may refuse that, and the simulator's BLE profile uses min(512, MTU - 3) (docs/protocol.md). */
size_t ts_ble_value_max(uint16_t mtu)
{
    if (mtu <= TS_BLE_ATT_OVERHEAD) {
        return 0;
    }
    const size_t value = (size_t)mtu - TS_BLE_ATT_OVERHEAD;
    return value < BLE_ATT_ATTR_MAX_LEN ? value : BLE_ATT_ATTR_MAX_LEN;
}

void ts_ble_deliver(ts_link_t from, const struct os_mbuf *om)
{
    uint16_t len = 0;
    int rc = ble_hs_mbuf_to_flat(om, s_rx_buf, sizeof s_rx_buf, &len);
    if (rc != 0) {
        ESP_LOGW(TAG, "%s link: dropped an oversized value (rc=%d)", ts_ble_link_name(from), rc);
        return;
    }
    esp_err_t err = ts_app_receive(from, s_rx_buf, len);
    if (err != ESP_OK) {
        /* The app counts queue overflows itself (stats rx_queue_drops). */
        ESP_LOGD(TAG, "%s link: frame not queued: %s", ts_ble_link_name(from),
                 esp_err_to_name(err));
    }
}

void ts_ble_log_conn(ts_link_t link, uint16_t conn, const char *what)
{
    struct ble_gap_conn_desc desc;
    if (ble_gap_conn_find(conn, &desc) != 0) {
        ESP_LOGI(TAG, "%s link %s: conn=%u", ts_ble_link_name(link), what, (unsigned)conn);
        return;
    }
    const unsigned centi_ms = (unsigned)desc.conn_itvl * 125u; /* 1.25 ms units */
    ESP_LOGI(TAG, "%s link %s: conn=%u interval=%u.%02u ms latency=%u timeout=%u ms",
             ts_ble_link_name(link), what, (unsigned)conn, centi_ms / 100u, centi_ms % 100u,
             (unsigned)desc.conn_latency, (unsigned)desc.supervision_timeout * 10u);
}

/* Each side sets its own TX direction, so both ask (as Espressif's throughput examples do). */
void ts_ble_request_dle(uint16_t conn)
{
#if CONFIG_TINYSPLIT_BLE_DLE
    int rc = ble_gap_set_data_len(conn, TS_BLE_DLE_TX_OCTETS, TS_BLE_DLE_TX_TIME_US);
    if (rc != 0) {
        ESP_LOGW(TAG, "data length extension request failed on conn=%u: rc=%d", (unsigned)conn,
                 rc);
    }
#else
    (void)conn;
#endif
}
