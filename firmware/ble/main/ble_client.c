/*
 * BLE transport, DOWN link: this stage is a GATT client (central) of stage i+1. It scans for the
 * advertisement carrying stage i+1, connects with the configured interval, then, one GATT
 * procedure at a time: MTU exchange -> service -> characteristics -> ack CCCD -> subscribe.
 * Frames go out as writes without response; answers arrive as ack notifications.
 */
#include <string.h>

#include "ble_internal.h"
#include "esp_log.h"
#include "sdkconfig.h"

static const char *TAG = "ts_ble";

#define TS_BLE_CONNECT_TIMEOUT_MS 5000 /* one connection attempt; scanning resumes afterwards */
#define TS_BLE_SCAN_CONN_UNITS 16      /* initiator scan interval = window, 0.625 ms units */

static const ble_uuid16_t s_cccd_uuid = BLE_UUID16_INIT(BLE_GATT_DSC_CLT_CFG_UUID16);

/** Handles discovered on stage i+1 (host task only). */
static struct {
    uint16_t svc_start;
    uint16_t svc_end;
    uint16_t data_val;
    uint16_t ack_val;
    uint16_t ack_end; /* last handle of the ack characteristic (its descriptors end there) */
    uint16_t cccd;
} s_peer;

static int ts_ble_client_event(struct ble_gap_event *ev, void *arg);

void ts_ble_client_reset(void)
{
    memset(&s_peer, 0, sizeof s_peer);
}

int ts_ble_client_scan(void)
{
    struct ble_gap_disc_params params;
    memset(&params, 0, sizeof params);
    params.itvl = BLE_GAP_SCAN_ITVL_MS(100);
    params.window = BLE_GAP_SCAN_WIN_MS(50);
    params.passive = 1; /* the advertisement alone identifies the next stage */
    /* Every report, not the first per device: a report skipped while a connect could not start
     * must come again. */
    params.filter_duplicates = 0;
    return ble_gap_disc(ts_ble_node.own_addr_type, BLE_HS_FOREVER, &params, ts_ble_client_event,
                        NULL);
}

static bool ts_ble_is_next_stage(const struct ble_gap_disc_desc *disc)
{
    if (disc->event_type != BLE_HCI_ADV_RPT_EVTYPE_ADV_IND) {
        return false;
    }
    struct ble_hs_adv_fields fields;
    memset(&fields, 0, sizeof fields);
    if (ble_hs_adv_parse_fields(&fields, disc->data, disc->length_data) != 0) {
        return false;
    }
    bool has_service = false;
    for (uint8_t i = 0; i < fields.num_uuids128; i++) {
        if (ble_uuid_cmp(&fields.uuids128[i].u, &ts_ble_svc_uuid.u) == 0) {
            has_service = true;
        }
    }
    return has_service && fields.mfg_data != NULL && fields.mfg_data_len == TS_BLE_MFG_LEN &&
           memcmp(fields.mfg_data, ts_ble_mfg_prefix, sizeof ts_ble_mfg_prefix) == 0 &&
           fields.mfg_data[TS_BLE_MFG_LEN - 1] == (uint8_t)(ts_ble_node.stage + 1u);
}

/* Supervision timeout in 10 ms units: six connection intervals, at least 4 s (the spec wants more
 * than two intervals; a missed interval or two must not drop the link). */
static uint16_t ts_ble_supervision_timeout(uint16_t itvl)
{
    const uint32_t six_intervals = (uint32_t)itvl * 3u / 4u + 1u;
    return (uint16_t)(six_intervals > 400u ? six_intervals : 400u);
}

static void ts_ble_connect(const ble_addr_t *addr)
{
    int rc = ble_gap_disc_cancel();
    if (rc != 0 && rc != BLE_HS_EALREADY) {
        ESP_LOGW(TAG, "DOWN link: cannot stop scanning: rc=%d", rc);
        return;
    }
    const uint16_t itvl = CONFIG_TINYSPLIT_BLE_CONN_INTERVAL;
    struct ble_gap_conn_params params;
    memset(&params, 0, sizeof params);
    params.scan_itvl = TS_BLE_SCAN_CONN_UNITS;
    params.scan_window = TS_BLE_SCAN_CONN_UNITS;
    params.itvl_min = itvl;
    params.itvl_max = itvl;
    params.latency = 0;
    params.supervision_timeout = ts_ble_supervision_timeout(itvl);
    params.min_ce_len = 0;
    params.max_ce_len = (uint16_t)(itvl * 2u); /* events may fill the whole interval (0.625 ms) */
    rc = ble_gap_connect(ts_ble_node.own_addr_type, addr, TS_BLE_CONNECT_TIMEOUT_MS, &params,
                         ts_ble_client_event, NULL);
    if (rc != 0) {
        ESP_LOGW(TAG, "DOWN link: connecting to tinysplit-%u failed to start: rc=%d",
                 (unsigned)(ts_ble_node.stage + 1u), rc);
        ts_ble_kick();
    }
}

static bool ts_ble_is_down_conn(uint16_t conn)
{
    return conn != BLE_HS_CONN_HANDLE_NONE && conn == ts_ble_link_get(TS_LINK_DOWN).conn;
}

/* A setup step failed: drop the connection; the disconnect event rescans. */
static void ts_ble_down_fail(uint16_t conn, const char *step, int rc)
{
    ESP_LOGE(TAG, "DOWN link: %s failed (rc=%d); disconnecting to retry", step, rc);
    if (ble_gap_terminate(conn, BLE_ERR_REM_USER_CONN_TERM) != 0) {
        ts_ble_link_clear(TS_LINK_DOWN);
        ts_ble_client_reset();
        ts_ble_kick();
    }
}

static int ts_ble_on_subscribed(uint16_t conn, const struct ble_gatt_error *error,
                                struct ble_gatt_attr *attr, void *arg)
{
    (void)attr;
    (void)arg;
    if (!ts_ble_is_down_conn(conn)) {
        return 0;
    }
    if (error->status != 0) {
        ts_ble_down_fail(conn, "subscribing to acknowledgments", error->status);
        return 0;
    }
    const uint16_t mtu = ble_att_mtu(conn);
    ts_ble_link_set(TS_LINK_DOWN, conn, s_peer.data_val, mtu, true);
    ESP_LOGI(TAG, "DOWN link ready: conn=%u mtu=%u data=0x%04x ack=0x%04x", (unsigned)conn,
             (unsigned)mtu, (unsigned)s_peer.data_val, (unsigned)s_peer.ack_val);
    return 0;
}

static int ts_ble_on_dsc(uint16_t conn, const struct ble_gatt_error *error,
                         uint16_t chr_val_handle, const struct ble_gatt_dsc *dsc, void *arg)
{
    (void)chr_val_handle;
    (void)arg;
    if (!ts_ble_is_down_conn(conn)) {
        return 0;
    }
    if (error->status == 0) {
        if (ble_uuid_cmp(&dsc->uuid.u, &s_cccd_uuid.u) == 0) {
            s_peer.cccd = dsc->handle;
        }
        return 0;
    }
    if (error->status != BLE_HS_EDONE || s_peer.cccd == 0) {
        ts_ble_down_fail(conn, "finding the ack CCCD", error->status);
        return 0;
    }
    static const uint8_t notify_on[2] = {0x01, 0x00}; /* CCCD bit 0: notifications */
    int rc = ble_gattc_write_flat(conn, s_peer.cccd, notify_on, sizeof notify_on,
                                  ts_ble_on_subscribed, NULL);
    if (rc != 0) {
        ts_ble_down_fail(conn, "writing the CCCD", rc);
    }
    return 0;
}

static int ts_ble_on_chr(uint16_t conn, const struct ble_gatt_error *error,
                         const struct ble_gatt_chr *chr, void *arg)
{
    (void)arg;
    if (!ts_ble_is_down_conn(conn)) {
        return 0;
    }
    if (error->status == 0) {
        if (s_peer.ack_val != 0 && s_peer.ack_end == 0) {
            s_peer.ack_end = (uint16_t)(chr->def_handle - 1u); /* the next one closes ack's range */
        }
        if (ble_uuid_cmp(&chr->uuid.u, &ts_ble_data_uuid.u) == 0) {
            s_peer.data_val = chr->val_handle;
        } else if (ble_uuid_cmp(&chr->uuid.u, &ts_ble_ack_uuid.u) == 0) {
            s_peer.ack_val = chr->val_handle;
        }
        return 0;
    }
    if (error->status != BLE_HS_EDONE || s_peer.data_val == 0 || s_peer.ack_val == 0) {
        ts_ble_down_fail(conn, "finding the data and ack characteristics", error->status);
        return 0;
    }
    if (s_peer.ack_end == 0) {
        s_peer.ack_end = s_peer.svc_end;
    }
    /* Descriptor discovery starts at the characteristic's value handle (ble_gatt.h). */
    int rc = ble_gattc_disc_all_dscs(conn, s_peer.ack_val, s_peer.ack_end, ts_ble_on_dsc, NULL);
    if (rc != 0) {
        ts_ble_down_fail(conn, "descriptor discovery", rc);
    }
    return 0;
}

static int ts_ble_on_svc(uint16_t conn, const struct ble_gatt_error *error,
                         const struct ble_gatt_svc *svc, void *arg)
{
    (void)arg;
    if (!ts_ble_is_down_conn(conn)) {
        return 0;
    }
    if (error->status == 0) {
        s_peer.svc_start = svc->start_handle;
        s_peer.svc_end = svc->end_handle;
        return 0;
    }
    if (error->status != BLE_HS_EDONE || s_peer.svc_start == 0) {
        ts_ble_down_fail(conn, "finding the tinysplit service", error->status);
        return 0;
    }
    int rc = ble_gattc_disc_all_chrs(conn, s_peer.svc_start, s_peer.svc_end, ts_ble_on_chr, NULL);
    if (rc != 0) {
        ts_ble_down_fail(conn, "characteristic discovery", rc);
    }
    return 0;
}

static void ts_ble_discover(uint16_t conn)
{
    int rc = ble_gattc_disc_svc_by_uuid(conn, &ts_ble_svc_uuid.u, ts_ble_on_svc, NULL);
    if (rc != 0) {
        ts_ble_down_fail(conn, "service discovery", rc);
    }
}

static int ts_ble_on_mtu(uint16_t conn, const struct ble_gatt_error *error, uint16_t mtu,
                         void *arg)
{
    (void)arg;
    if (!ts_ble_is_down_conn(conn)) {
        return 0;
    }
    if (error->status == 0) {
        ts_ble_link_set_mtu(TS_LINK_DOWN, conn, mtu);
        ESP_LOGI(TAG, "DOWN link: conn=%u mtu=%u", (unsigned)conn, (unsigned)mtu);
    } else {
        /* Carry on at the MTU we have; start() and send() size frames from it. */
        ESP_LOGW(TAG, "DOWN link: MTU exchange failed (status=%d), mtu=%u", error->status,
                 (unsigned)ble_att_mtu(conn));
    }
    ts_ble_discover(conn);
    return 0;
}

static void ts_ble_connected(uint16_t conn)
{
    ts_ble_client_reset();
    ts_ble_link_set(TS_LINK_DOWN, conn, 0, ble_att_mtu(conn), false);
    ts_ble_log_conn(TS_LINK_DOWN, conn, "connected");
    ts_ble_request_dle(conn);
#if CONFIG_TINYSPLIT_BLE_2M_PHY
    /* Only the central asks, so the two sides never start colliding PHY procedures. */
    int prc = ble_gap_set_prefered_le_phy(conn, BLE_GAP_LE_PHY_2M_MASK, BLE_GAP_LE_PHY_2M_MASK,
                                          BLE_GAP_LE_PHY_CODED_ANY);
    if (prc != 0) {
        ESP_LOGW(TAG, "DOWN link: 2M PHY request failed: rc=%d", prc);
    }
#endif
    int rc = ble_gattc_exchange_mtu(conn, ts_ble_on_mtu, NULL);
    if (rc != 0) {
        ESP_LOGW(TAG, "DOWN link: MTU exchange not started (rc=%d)", rc);
        ts_ble_discover(conn);
    }
}

static int ts_ble_client_event(struct ble_gap_event *ev, void *arg)
{
    (void)arg;
    switch (ev->type) {
    case BLE_GAP_EVENT_DISC:
        if (ts_ble_is_next_stage(&ev->disc)) {
            ESP_LOGI(TAG, "DOWN link: found tinysplit-%u (rssi %d dBm), connecting",
                     (unsigned)(ts_ble_node.stage + 1u), ev->disc.rssi);
            ts_ble_connect(&ev->disc.addr);
        }
        return 0;
    case BLE_GAP_EVENT_DISC_COMPLETE:
        ts_ble_kick();
        return 0;
    case BLE_GAP_EVENT_CONNECT:
        if (ev->connect.status != 0) {
            ESP_LOGW(TAG, "DOWN link: connection attempt failed: status=%d; scanning again",
                     ev->connect.status);
            ts_ble_kick();
        } else {
            ts_ble_connected(ev->connect.conn_handle);
        }
        return 0;
    case BLE_GAP_EVENT_DISCONNECT:
        if (ts_ble_is_down_conn(ev->disconnect.conn.conn_handle)) {
            ESP_LOGW(TAG, "DOWN link lost: reason=%d; scanning again", ev->disconnect.reason);
            ts_ble_link_clear(TS_LINK_DOWN);
            ts_ble_client_reset();
            ts_ble_kick();
        }
        return 0;
    case BLE_GAP_EVENT_NOTIFY_RX:
        if (ts_ble_is_down_conn(ev->notify_rx.conn_handle) &&
            ev->notify_rx.attr_handle == s_peer.ack_val) {
            ts_ble_deliver(TS_LINK_DOWN, ev->notify_rx.om); /* NimBLE frees the mbuf after */
        }
        return 0;
    case BLE_GAP_EVENT_MTU:
        ts_ble_link_set_mtu(TS_LINK_DOWN, ev->mtu.conn_handle, ev->mtu.value);
        return 0;
    case BLE_GAP_EVENT_CONN_UPDATE:
        ts_ble_log_conn(TS_LINK_DOWN, ev->conn_update.conn_handle, "parameters updated");
        return 0;
    case BLE_GAP_EVENT_PHY_UPDATE_COMPLETE:
        ESP_LOGI(TAG, "DOWN link: PHY update status=%d tx=%u rx=%u (1: 1M, 2: 2M)",
                 ev->phy_updated.status, (unsigned)ev->phy_updated.tx_phy,
                 (unsigned)ev->phy_updated.rx_phy);
        return 0;
#ifdef BLE_GAP_EVENT_DATA_LEN_CHG
    case BLE_GAP_EVENT_DATA_LEN_CHG:
        ESP_LOGI(TAG, "DOWN link: LL data length tx=%u B / %u us, rx=%u B",
                 (unsigned)ev->data_len_chg.max_tx_octets, (unsigned)ev->data_len_chg.max_tx_time,
                 (unsigned)ev->data_len_chg.max_rx_octets);
        return 0;
#endif
    default:
        return 0;
    }
}
