/*
 * BLE transport, UP link: this stage is a GATT server (peripheral) for stage i-1. It advertises as
 * "tinysplit-<i>"; stage i-1 connects, subscribes to the ack characteristic and writes frames to
 * the data characteristic; our answers go back as notifications of the ack characteristic.
 */
#include <string.h>

#include "ble_internal.h"
#include "esp_log.h"
#include "services/gap/ble_svc_gap.h"
#include "services/gatt/ble_svc_gatt.h"

static const char *TAG = "ts_ble";

static uint16_t s_data_val_handle; /* filled when NimBLE registers the service */
static uint16_t s_ack_val_handle;

static int ts_ble_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt,
                         void *arg);

static const struct ble_gatt_chr_def s_chrs[] = {
    {
        /* Stage i-1 writes DATA (and CTRL) frames here. */
        .uuid = &ts_ble_data_uuid.u,
        .access_cb = ts_ble_access,
        .flags = BLE_GATT_CHR_F_WRITE_NO_RSP | BLE_GATT_CHR_F_WRITE,
        .val_handle = &s_data_val_handle,
    },
    {
        /* We notify ACK / NACK / CTRL frames to stage i-1 here; NimBLE adds the CCCD. */
        .uuid = &ts_ble_ack_uuid.u,
        .access_cb = ts_ble_access,
        .flags = BLE_GATT_CHR_F_NOTIFY,
        .val_handle = &s_ack_val_handle,
    },
    {0},
};

static const struct ble_gatt_svc_def s_svcs[] = {
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = &ts_ble_svc_uuid.u,
        .characteristics = s_chrs,
    },
    {0},
};

static int ts_ble_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt,
                         void *arg)
{
    (void)arg;
    if (attr != s_data_val_handle || ctxt->op != BLE_GATT_ACCESS_OP_WRITE_CHR) {
        return BLE_ATT_ERR_UNLIKELY; /* the ack characteristic is notify-only */
    }
    if (conn != ts_ble_link_get(TS_LINK_UP).conn) {
        return BLE_ATT_ERR_WRITE_NOT_PERMITTED; /* only stage i-1 feeds this stage */
    }
    ts_ble_deliver(TS_LINK_UP, ctxt->om);
    return 0;
}

int ts_ble_server_register(void)
{
    ble_svc_gap_init();
    ble_svc_gatt_init();
    int rc = ble_gatts_count_cfg(s_svcs);
    if (rc == 0) {
        rc = ble_gatts_add_svcs(s_svcs);
    }
    if (rc == 0) {
        rc = ble_svc_gap_device_name_set(ts_ble_node.name);
    }
    return rc;
}

static int ts_ble_server_event(struct ble_gap_event *ev, void *arg);

int ts_ble_server_advertise(void)
{
    /* Advertisement: flags (3 B) + service UUID (18 B) + stage in manufacturer data (7 B) = 28 B
     * of the 31 a legacy advertisement holds; the name goes into the scan response. */
    uint8_t mfg[TS_BLE_MFG_LEN];
    memcpy(mfg, ts_ble_mfg_prefix, sizeof ts_ble_mfg_prefix);
    mfg[TS_BLE_MFG_LEN - 1] = ts_ble_node.stage;

    struct ble_hs_adv_fields adv;
    memset(&adv, 0, sizeof adv);
    adv.flags = BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP;
    adv.uuids128 = &ts_ble_svc_uuid;
    adv.num_uuids128 = 1;
    adv.uuids128_is_complete = 1;
    adv.mfg_data = mfg;
    adv.mfg_data_len = sizeof mfg;
    int rc = ble_gap_adv_set_fields(&adv);
    if (rc != 0) {
        return rc;
    }

    struct ble_hs_adv_fields rsp;
    memset(&rsp, 0, sizeof rsp);
    rsp.name = (const uint8_t *)ts_ble_node.name;
    rsp.name_len = (uint8_t)strlen(ts_ble_node.name);
    rsp.name_is_complete = 1;
    rc = ble_gap_adv_rsp_set_fields(&rsp);
    if (rc != 0) {
        return rc;
    }

    struct ble_gap_adv_params params;
    memset(&params, 0, sizeof params); /* zero intervals: NimBLE's fast advertising defaults */
    params.conn_mode = BLE_GAP_CONN_MODE_UND;
    params.disc_mode = BLE_GAP_DISC_MODE_GEN;
    return ble_gap_adv_start(ts_ble_node.own_addr_type, NULL, BLE_HS_FOREVER, &params,
                             ts_ble_server_event, NULL);
}

static void ts_ble_server_connected(uint16_t conn)
{
    if (ts_ble_link_get(TS_LINK_UP).conn != BLE_HS_CONN_HANDLE_NONE) {
        /* Only one previous stage; a second central (e.g. a stray scanner) is refused. */
        ESP_LOGW(TAG, "UP link: refusing a second central on conn=%u", (unsigned)conn);
        (void)ble_gap_terminate(conn, BLE_ERR_REM_USER_CONN_TERM);
        return;
    }
    ts_ble_link_set(TS_LINK_UP, conn, s_ack_val_handle, ble_att_mtu(conn), false);
    ts_ble_log_conn(TS_LINK_UP, conn, "connected");
    ts_ble_request_dle(conn);
}

static void ts_ble_server_subscribed(const struct ble_gap_event *ev)
{
    const uint16_t conn = ev->subscribe.conn_handle;
    if (conn != ts_ble_link_get(TS_LINK_UP).conn ||
        ev->subscribe.attr_handle != s_ack_val_handle) {
        return;
    }
    const bool on = ev->subscribe.cur_notify != 0;
    const uint16_t mtu = ble_att_mtu(conn);
    ts_ble_link_set(TS_LINK_UP, conn, s_ack_val_handle, mtu, on);
    ESP_LOGI(TAG, "UP link %s: conn=%u mtu=%u", on ? "ready" : "unsubscribed", (unsigned)conn,
             (unsigned)mtu);
}

static int ts_ble_server_event(struct ble_gap_event *ev, void *arg)
{
    (void)arg;
    switch (ev->type) {
    case BLE_GAP_EVENT_CONNECT:
        if (ev->connect.status != 0) {
            ESP_LOGW(TAG, "UP link: incoming connection failed: status=%d", ev->connect.status);
            ts_ble_kick();
        } else {
            ts_ble_server_connected(ev->connect.conn_handle);
        }
        return 0;
    case BLE_GAP_EVENT_DISCONNECT:
        if (ev->disconnect.conn.conn_handle == ts_ble_link_get(TS_LINK_UP).conn) {
            ESP_LOGW(TAG, "UP link lost: reason=%d; advertising again", ev->disconnect.reason);
            ts_ble_link_clear(TS_LINK_UP);
            ts_ble_kick();
        }
        return 0;
    case BLE_GAP_EVENT_SUBSCRIBE:
        ts_ble_server_subscribed(ev);
        return 0;
    case BLE_GAP_EVENT_MTU:
        ts_ble_link_set_mtu(TS_LINK_UP, ev->mtu.conn_handle, ev->mtu.value);
        ESP_LOGI(TAG, "UP link: conn=%u mtu=%u", (unsigned)ev->mtu.conn_handle,
                 (unsigned)ev->mtu.value);
        return 0;
    case BLE_GAP_EVENT_CONN_UPDATE:
        ts_ble_log_conn(TS_LINK_UP, ev->conn_update.conn_handle, "parameters updated");
        return 0;
    case BLE_GAP_EVENT_ADV_COMPLETE:
        /* Reason 0 means a central connected; anything else stopped advertising early. */
        if (ev->adv_complete.reason != 0) {
            ts_ble_kick();
        }
        return 0;
    default:
        return 0;
    }
}
