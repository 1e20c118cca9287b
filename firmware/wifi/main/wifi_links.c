/*
 * TCP links of the Wi-Fi transport. One task per link establishes it (UP: accept the previous
 * stage on CONFIG_TINYSPLIT_WIFI_PORT; DOWN: connect to the next stage, retrying until it
 * listens), then reassembles frames from the byte stream (wifi_stream.h) and hands each to
 * ts_app_receive_wait(). When the stream breaks the task closes the socket and establishes the
 * link again; meanwhile send() refuses frames, which fails the tensor being sent (nothing repairs
 * a stream), and the pipeline goes on with the next tensor over the new connection.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "esp_check.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/sockets.h"
#include "sdkconfig.h"
#include "ts_frame.h"

#include "wifi_stream.h"
#include "wifi_transport.h"

static const char *TAG = "ts_wifi";

#define LINK_TASK_STACK_BYTES 4096
#define LINK_TASK_PRIORITY 6 /* above the app task: move received bytes to the stage queue first */
/* Keepalive finds a dead peer (rebooted, out of range) within about idle + count x interval
 * seconds, so the UP task returns to accept() in time for the peer's new connection. */
#define KEEPALIVE_IDLE_S 2
#define KEEPALIVE_INTERVAL_S 1
#define KEEPALIVE_COUNT 3
#define WAIT_LOG_MS 10000

typedef struct {
    ts_link_t link;
    bool exists;
    uint32_t peer_ip;       /* network byte order */
    int sock;               /* -1 while down; written under `lock` */
    SemaphoreHandle_t lock; /* held by a send in progress, so the socket is not closed under it */
    uint8_t rx[TS_MAX_FRAME_BYTES];
} link_t;

typedef struct {
    link_t links[2];
    int listen_sock;
    bool reliable;
    EventGroupHandle_t up; /* bit (1 << link) while the link is established */
    uint8_t tx[TS_WIFI_PAPER_PREFIX_BYTES + TS_MAX_FRAME_BYTES]; /* paper: prefix + frame */
} wifi_t;

static wifi_t s_wifi;

static const char *link_name(ts_link_t link)
{
    return link == TS_LINK_UP ? "UP" : "DOWN";
}

static EventBits_t link_bit(ts_link_t link)
{
    return (EventBits_t)1 << link;
}

static void format_ip(uint32_t ip, char out[16])
{
    const uint8_t *b = (const uint8_t *)&ip; /* network byte order: first octet first */
    snprintf(out, 16, "%u.%u.%u.%u", (unsigned)b[0], (unsigned)b[1], (unsigned)b[2],
             (unsigned)b[3]);
}

static bool recv_all(int sock, uint8_t *p, size_t n)
{
    while (n > 0) {
        int got = recv(sock, p, n, 0);
        if (got > 0) {
            p += got;
            n -= (size_t)got;
        } else if (got < 0 && errno == EINTR) {
            continue;
        } else {
            return false; /* 0: the peer closed; < 0: reset, keepalive timeout or shutdown */
        }
    }
    return true;
}

/* send() may take only part of the bytes (lwIP send buffer full): loop until all are queued. */
static esp_err_t send_all(int sock, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int put = send(sock, p, n, 0);
        if (put > 0) {
            p += put;
            n -= (size_t)put;
        } else if (put < 0 && errno == EINTR) {
            continue;
        } else {
            return (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? ESP_ERR_TIMEOUT
                                                                          : ESP_FAIL;
        }
    }
    return ESP_OK;
}

static void tune_socket(int sock)
{
    int one = 1;
    int idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S, count = KEEPALIVE_COUNT;
    /* Frames leave at once instead of waiting for the previous segment's ACK (Nagle). */
    if (setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        ESP_LOGW(TAG, "TCP_NODELAY: errno %d", errno);
    }
    setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(sock, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(sock, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(sock, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    /* A peer that stops reading must not hold the app task in send() for ever. */
    struct timeval tv = {
        .tv_sec = CONFIG_TINYSPLIT_WIFI_SEND_TIMEOUT_MS / 1000,
        .tv_usec = (CONFIG_TINYSPLIT_WIFI_SEND_TIMEOUT_MS % 1000) * 1000,
    };
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int accept_up(const link_t *l)
{
    char want[16], got[16];
    format_ip(l->peer_ip, want);
    for (;;) {
        struct sockaddr_in from;
        socklen_t from_len = sizeof(from);
        int sock = accept(s_wifi.listen_sock, (struct sockaddr *)&from, &from_len);
        if (sock < 0) {
            ESP_LOGE(TAG, "UP link: accept: errno %d", errno);
            vTaskDelay(pdMS_TO_TICKS(CONFIG_TINYSPLIT_WIFI_CONNECT_RETRY_MS));
            continue;
        }
        if (from.sin_addr.s_addr == l->peer_ip) {
            return sock;
        }
        format_ip(from.sin_addr.s_addr, got);
        ESP_LOGW(TAG, "UP link: refused a connection from %s, expecting the previous stage %s",
                 got, want);
        close(sock);
    }
}

static int connect_down(const link_t *l)
{
    char peer[16];
    format_ip(l->peer_ip, peer);
    struct sockaddr_in to = {
        .sin_family = AF_INET,
        .sin_port = htons(CONFIG_TINYSPLIT_WIFI_PORT),
    };
    to.sin_addr.s_addr = l->peer_ip;
    for (unsigned attempt = 0;; attempt++) {
        int sock = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        if (sock < 0) {
            ESP_LOGE(TAG, "DOWN link: socket: errno %d", errno);
        } else if (connect(sock, (struct sockaddr *)&to, sizeof(to)) == 0) {
            return sock;
        } else {
            int err = errno;
            close(sock);
            if (attempt % 20 == 0) {
                ESP_LOGI(TAG, "DOWN link: next stage %s:%d not listening yet (errno %d), retrying",
                         peer, CONFIG_TINYSPLIT_WIFI_PORT, err);
            }
        }
        vTaskDelay(pdMS_TO_TICKS(CONFIG_TINYSPLIT_WIFI_CONNECT_RETRY_MS));
    }
}

/* Returns when the stream ends or falls out of step; the caller re-establishes the link. */
static void receive_frames(link_t *l, int sock)
{
    const bool reliable = s_wifi.reliable;
    const size_t head = ts_wifi_head_bytes(reliable);
    uint8_t prefix[TS_WIFI_PAPER_PREFIX_BYTES];
    for (;;) {
        uint8_t *h = reliable ? l->rx : prefix; /* reliable: the header is part of the frame */
        if (!recv_all(sock, h, head)) {
            return;
        }
        int body = ts_wifi_body_bytes(h, reliable, sizeof(l->rx));
        if (body < 0) {
            ESP_LOGE(TAG, "%s link: stream out of step (%s), reconnecting", link_name(l->link),
                     ts_err_name(body));
            return;
        }
        uint8_t *b = reliable ? l->rx + head : l->rx;
        if (!recv_all(sock, b, (size_t)body)) {
            return;
        }
        size_t len = reliable ? head + (size_t)body : (size_t)body;
        /* Wait for room rather than drop: nothing repairs a chunk lost from a stream, and while
         * this task waits TCP flow control holds the sender back. */
        (void)ts_app_receive_wait(l->link, l->rx, len, UINT32_MAX);
    }
}

static void link_task(void *arg)
{
    link_t *l = arg;
    char peer[16];
    format_ip(l->peer_ip, peer);
    ts_wifi_radio_wait_ip();
    for (;;) {
        int sock = l->link == TS_LINK_UP ? accept_up(l) : connect_down(l);
        tune_socket(sock);
        xSemaphoreTake(l->lock, portMAX_DELAY);
        l->sock = sock;
        xSemaphoreGive(l->lock);
        xEventGroupSetBits(s_wifi.up, link_bit(l->link));
        ESP_LOGI(TAG, "%s link up with %s", link_name(l->link), peer);

        receive_frames(l, sock);

        xEventGroupClearBits(s_wifi.up, link_bit(l->link));
        shutdown(sock, SHUT_RDWR); /* fails a send() blocked on it, which releases the lock */
        xSemaphoreTake(l->lock, portMAX_DELAY);
        l->sock = -1;
        xSemaphoreGive(l->lock);
        close(sock);
        ESP_LOGW(TAG, "%s link with %s lost, re-establishing", link_name(l->link), peer);
    }
}

static esp_err_t open_listener(void)
{
    int sock = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    ESP_RETURN_ON_FALSE(sock >= 0, ESP_FAIL, TAG, "listen socket: errno %d", errno);
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_port = htons(CONFIG_TINYSPLIT_WIFI_PORT),
    };
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(sock, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(sock, 1) != 0) {
        int err = errno;
        close(sock);
        ESP_LOGE(TAG, "listen on port %d: errno %d", CONFIG_TINYSPLIT_WIFI_PORT, err);
        return ESP_FAIL;
    }
    s_wifi.listen_sock = sock;
    return ESP_OK;
}

static const char *link_state(const wifi_t *w, ts_link_t link)
{
    if (!w->links[link].exists) {
        return "-";
    }
    return (xEventGroupGetBits(w->up) & link_bit(link)) ? "up" : "down";
}

static void init_link(link_t *l, ts_link_t link, bool exists, uint8_t peer_stage)
{
    l->link = link;
    l->exists = exists;
    l->peer_ip = exists ? ts_wifi_stage_ip(peer_stage) : 0;
    l->sock = -1;
}

esp_err_t ts_wifi_start(ts_transport_t *self, const ts_app_config_t *cfg)
{
    ESP_RETURN_ON_FALSE(cfg->stage >= 1 && cfg->stage <= cfg->stages, ESP_ERR_INVALID_ARG, TAG,
                        "stage %d of %d", cfg->stage, cfg->stages);
    ESP_RETURN_ON_FALSE(cfg->stages <= 16, ESP_ERR_INVALID_ARG, TAG,
                        "%d stages: one SoftAP serves at most 15 stations", cfg->stages);
    ESP_RETURN_ON_FALSE(CONFIG_TINYSPLIT_WIFI_AP_STAGE <= cfg->stages, ESP_ERR_INVALID_ARG, TAG,
                        "TINYSPLIT_WIFI_AP_STAGE=%d but the pipeline has %d stages: no board "
                        "would run the SoftAP",
                        CONFIG_TINYSPLIT_WIFI_AP_STAGE, cfg->stages);
    wifi_t *w = &s_wifi;
    w->reliable = cfg->mode == TS_MODE_RELIABLE;
    w->listen_sock = -1;
    init_link(&w->links[TS_LINK_UP], TS_LINK_UP, cfg->stage > 1, (uint8_t)(cfg->stage - 1));
    init_link(&w->links[TS_LINK_DOWN], TS_LINK_DOWN, cfg->stage < cfg->stages,
              (uint8_t)(cfg->stage + 1));
    w->up = xEventGroupCreate();
    ESP_RETURN_ON_FALSE(w->up != NULL, ESP_ERR_NO_MEM, TAG, "event group");
    for (int i = 0; i < 2; i++) {
        w->links[i].lock = xSemaphoreCreateMutex();
        ESP_RETURN_ON_FALSE(w->links[i].lock != NULL, ESP_ERR_NO_MEM, TAG, "link lock");
    }
    /* One TCP segment per frame: a reliable frame fills an MSS; a paper frame leaves room for its
     * 2-byte prefix. */
    size_t segment = CONFIG_LWIP_TCP_MSS < TS_MAX_FRAME_BYTES ? CONFIG_LWIP_TCP_MSS
                                                              : TS_MAX_FRAME_BYTES;
    self->frame_bytes = w->reliable ? segment : segment - TS_WIFI_PAPER_PREFIX_BYTES;
    self->stream = true;
    self->ctx = w;

    ESP_RETURN_ON_ERROR(ts_wifi_radio_start(cfg->stage, cfg->stages), TAG, "radio");
    if (w->links[TS_LINK_UP].exists) {
        ESP_RETURN_ON_ERROR(open_listener(), TAG, "UP listener");
    }
    EventBits_t need = 0;
    for (int i = 0; i < 2; i++) {
        link_t *l = &w->links[i];
        if (!l->exists) {
            continue;
        }
        need |= link_bit(l->link);
        BaseType_t ok = xTaskCreate(link_task, l->link == TS_LINK_UP ? "ts_wifi_up" : "ts_wifi_down",
                                    LINK_TASK_STACK_BYTES, l, LINK_TASK_PRIORITY, NULL);
        ESP_RETURN_ON_FALSE(ok == pdPASS, ESP_ERR_NO_MEM, TAG, "link task");
    }
    ESP_LOGI(TAG, "stage %d of %d (%s mode), frames of %u B, waiting for the links", cfg->stage,
             cfg->stages, w->reliable ? "reliable" : "paper", (unsigned)self->frame_bytes);
    while (need != 0 && (xEventGroupWaitBits(w->up, need, pdFALSE, pdTRUE,
                                             pdMS_TO_TICKS(WAIT_LOG_MS)) & need) != need) {
        ESP_LOGI(TAG, "still waiting: UP %s, DOWN %s", link_state(w, TS_LINK_UP),
                 link_state(w, TS_LINK_DOWN));
    }
    ESP_LOGI(TAG, "links up");
    return ESP_OK;
}

esp_err_t ts_wifi_send(ts_transport_t *self, ts_link_t link, const uint8_t *frame, size_t len)
{
    wifi_t *w = self->ctx;
    if (w == NULL || (link != TS_LINK_UP && link != TS_LINK_DOWN) || !w->links[link].exists) {
        return ESP_ERR_INVALID_STATE;
    }
    if (len == 0 || len > TS_MAX_FRAME_BYTES) {
        return ESP_ERR_INVALID_SIZE;
    }
    const uint8_t *bytes = frame;
    size_t n = len;
    if (!w->reliable) {
        ts_wifi_paper_prefix(w->tx, len);
        memcpy(w->tx + TS_WIFI_PAPER_PREFIX_BYTES, frame, len);
        bytes = w->tx;
        n = len + TS_WIFI_PAPER_PREFIX_BYTES;
    }
    link_t *l = &w->links[link];
    esp_err_t err = ESP_ERR_INVALID_STATE;
    xSemaphoreTake(l->lock, portMAX_DELAY);
    if (l->sock >= 0) {
        err = send_all(l->sock, bytes, n);
        if (err != ESP_OK) {
            int sys_err = errno;
            /* Part of the frame may be queued: the stream is out of step, so the link task must
             * start a fresh connection. */
            ESP_LOGW(TAG, "%s link: send failed (%s, errno %d), reconnecting", link_name(link),
                     esp_err_to_name(err), sys_err);
            shutdown(l->sock, SHUT_RDWR);
        }
    }
    xSemaphoreGive(l->lock);
    return err;
}

esp_err_t ts_wifi_rssi(ts_transport_t *self, ts_link_t link, int8_t *out_dbm)
{
    wifi_t *w = self->ctx;
    if (w == NULL || (link != TS_LINK_UP && link != TS_LINK_DOWN) || !w->links[link].exists ||
        (xEventGroupGetBits(w->up) & link_bit(link)) == 0) {
        return ESP_ERR_INVALID_STATE;
    }
    return ts_wifi_radio_rssi(w->links[link].peer_ip, out_dbm);
}
