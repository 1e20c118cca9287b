/*
 * The Wi-Fi transport's TCP links (firmware/wifi/main/wifi_links.c) over loopback: stage 1 and
 * stage 2 of a two-stage pipeline run in two processes, FreeRTOS and ESP-IDF replaced by the
 * stand-ins in stub/ and wifi_radio.c by the functions below (stage 1 at 127.0.0.1 like the
 * SoftAP, stage i at 127.0.0.(10+i)). Each mode: frames both ways byte-exact, then the peer
 * process restarts and the DOWN link comes back by itself. Sends that fail while a link is being
 * re-established are retried, as the stage's ARQ would.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lwip/sockets.h"
#include "ts_frame.h"
#include "ts_test.h"
#include "wifi_transport.h"

#define DOWN_FRAMES 300
#define UP_FRAMES 50
#define QUEUE_SLOTS 512

int ts_test_wifi_port; /* CONFIG_TINYSPLIT_WIFI_PORT (stub/sdkconfig.h), set in main() */

uint32_t ts_wifi_stage_ip(uint8_t stage)
{
    return htonl(stage == 1 ? 0x7F000001u : 0x7F000000u | (10u + stage));
}

esp_err_t ts_wifi_radio_start(uint8_t stage, uint8_t stages)
{
    (void)stage;
    (void)stages;
    return ESP_OK;
}

void ts_wifi_radio_wait_ip(void)
{
}

esp_err_t ts_wifi_radio_rssi(uint32_t peer_ip, int8_t *out_dbm)
{
    (void)peer_ip;
    *out_dbm = -42;
    return ESP_OK;
}

/* ts_app_receive_wait: a queue the test thread reads; a full queue blocks the link's reader as
 * ts_app's pool does (the test never waits that long: it pops every frame). */
static struct {
    int link;
    size_t len;
    uint8_t bytes[TS_MAX_FRAME_BYTES];
} s_queue[QUEUE_SLOTS];
static unsigned s_head, s_tail;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cond = PTHREAD_COND_INITIALIZER;

esp_err_t ts_app_receive_wait(ts_link_t from, const uint8_t *frame, size_t len,
                              uint32_t timeout_ms)
{
    (void)timeout_ms;
    pthread_mutex_lock(&s_lock);
    while (s_tail - s_head == QUEUE_SLOTS) {
        pthread_cond_wait(&s_cond, &s_lock);
    }
    unsigned i = s_tail++ % QUEUE_SLOTS;
    s_queue[i].link = (int)from;
    s_queue[i].len = len;
    memcpy(s_queue[i].bytes, frame, len);
    pthread_cond_broadcast(&s_cond);
    pthread_mutex_unlock(&s_lock);
    return ESP_OK;
}

static int pop(int *link, uint8_t *bytes, size_t *len)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s_lock);
    while (s_head == s_tail) {
        if (pthread_cond_timedwait(&s_cond, &s_lock, &until) != 0) {
            pthread_mutex_unlock(&s_lock);
            return -1;
        }
    }
    unsigned i = s_head++ % QUEUE_SLOTS;
    *link = s_queue[i].link;
    *len = s_queue[i].len;
    memcpy(bytes, s_queue[i].bytes, *len);
    pthread_cond_broadcast(&s_cond); /* a reader may wait for room */
    pthread_mutex_unlock(&s_lock);
    return 0;
}

static int s_reliable;

/* Frame i of the test stream: reliable frames carry a version byte and their payload length. */
static size_t make_frame(int i, uint8_t *f)
{
    size_t len;
    if (s_reliable) {
        size_t payload = (size_t)(i * 97) % (1440 - TS_HEADER_BYTES + 1);
        len = TS_HEADER_BYTES + payload;
        for (size_t k = 0; k < len; k++) {
            f[k] = (uint8_t)(i * 7 + (int)k);
        }
        f[0] = TS_PROTOCOL_VERSION;
        f[10] = (uint8_t)(payload & 0xFFu);
        f[11] = (uint8_t)(payload >> 8);
    } else {
        len = TS_PAPER_TIMER_ID_BYTES + (size_t)(i * 53) % (1438 - TS_PAPER_TIMER_ID_BYTES + 1);
        for (size_t k = 0; k < len; k++) {
            f[k] = (uint8_t)(i * 13 + (int)k);
        }
    }
    return len;
}

static void expect_frames(int count, ts_link_t link)
{
    static uint8_t got[TS_MAX_FRAME_BYTES], want[TS_MAX_FRAME_BYTES];
    for (int i = 0; i < count; i++) {
        int from;
        size_t len;
        TS_REQUIRE(pop(&from, got, &len) == 0);
        size_t want_len = make_frame(i, want);
        TS_CHECK_EQ_INT(from, link);
        TS_CHECK_EQ_INT(len, want_len);
        TS_CHECK_EQ_MEM(got, want, want_len);
    }
}

static void send_frames(ts_transport_t *t, ts_link_t link, int count)
{
    static uint8_t f[TS_MAX_FRAME_BYTES];
    for (int i = 0; i < count; i++) {
        size_t len = make_frame(i, f);
        esp_err_t err;
        for (int attempt = 0; (err = t->send(t, link, f, len)) != ESP_OK && attempt < 500;
             attempt++) {
            const struct timespec wait = {.tv_sec = 0, .tv_nsec = 20000000L}; /* re-establishing */
            nanosleep(&wait, NULL);
        }
        TS_CHECK_EQ_INT(err, ESP_OK);
    }
}

static ts_transport_t transport(void)
{
    ts_transport_t t = {
        .name = "wifi", .start = ts_wifi_start, .send = ts_wifi_send, .rssi = ts_wifi_rssi};
    return t;
}

static ts_app_config_t config(uint8_t stage)
{
    ts_app_config_t cfg = {
        .stage = stage,
        .stages = 2,
        .mode = s_reliable ? TS_MODE_RELIABLE : TS_MODE_PAPER,
        .window = 1,
        .scribe_gpio = -1,
    };
    return cfg;
}

/* The child process: stage 2 says hello, receives, answers, and exits. The hello tells stage 1
 * that its DOWN socket is this process's connection: right after the previous stage 2 exits,
 * stage 1 may reconnect into the dying process's listen backlog, and what it sends there is lost
 * with send() reporting success (TCP hands no delivery receipt; the ARQ covers this on boards). */
static int run_stage2(void)
{
    ts_transport_t t = transport();
    ts_app_config_t cfg = config(2);
    TS_CHECK_EQ_INT(t.start(&t, &cfg), ESP_OK);
    send_frames(&t, TS_LINK_UP, 1);
    expect_frames(DOWN_FRAMES, TS_LINK_UP);
    send_frames(&t, TS_LINK_UP, UP_FRAMES);
    int8_t rssi;
    TS_CHECK_EQ_INT(t.rssi(&t, TS_LINK_DOWN, &rssi), ESP_ERR_INVALID_STATE);
    TS_CHECK_EQ_INT(t.send(&t, TS_LINK_DOWN, (const uint8_t *)"x", 1), ESP_ERR_INVALID_STATE);
    const struct timespec linger = {.tv_sec = 0, .tv_nsec = 300000000L}; /* let stage 1 read */
    nanosleep(&linger, NULL);
    return ts_test_state()->failures == 0 ? 0 : 1;
}

static pid_t spawn_stage2(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(run_stage2());
    }
    return pid;
}

static int child_ok(pid_t pid)
{
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

/* Stage 1 in this process; fork() before ts_wifi_start so the child starts clean. */
static void run_mode(int reliable)
{
    s_reliable = reliable;
    pid_t child = spawn_stage2();
    TS_REQUIRE(child > 0);
    ts_transport_t t = transport();
    ts_app_config_t cfg = config(1);
    TS_CHECK_EQ_INT(t.start(&t, &cfg), ESP_OK);
    TS_CHECK_EQ_INT(t.frame_bytes, reliable ? 1440 : 1438);
    TS_CHECK(t.stream);
    int8_t rssi = 0;
    TS_CHECK_EQ_INT(t.rssi(&t, TS_LINK_DOWN, &rssi), ESP_OK);
    TS_CHECK_EQ_INT(rssi, -42);
    TS_CHECK_EQ_INT(t.rssi(&t, TS_LINK_UP, &rssi), ESP_ERR_INVALID_STATE);
    static uint8_t too_big[TS_MAX_FRAME_BYTES + 1];
    TS_CHECK_EQ_INT(t.send(&t, TS_LINK_DOWN, too_big, sizeof(too_big)), ESP_ERR_INVALID_SIZE);
    expect_frames(1, TS_LINK_DOWN); /* hello */
    send_frames(&t, TS_LINK_DOWN, DOWN_FRAMES);
    expect_frames(UP_FRAMES, TS_LINK_DOWN);
    TS_CHECK(child_ok(child));

    child = spawn_stage2(); /* the next board reboots: the link must come back by itself */
    TS_REQUIRE(child > 0);
    expect_frames(1, TS_LINK_DOWN); /* hello over the new connection */
    send_frames(&t, TS_LINK_DOWN, DOWN_FRAMES);
    expect_frames(UP_FRAMES, TS_LINK_DOWN);
    TS_CHECK(child_ok(child));
}

/* ts_wifi_start keeps its state for the process, so each mode runs in a process of its own. */
static void run_mode_in_process(int reliable)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        run_mode(reliable);
        _exit(ts_test_state()->failures == 0 ? 0 : 1);
    }
    TS_CHECK(child_ok(pid));
}

static void test_reliable_frames_both_ways_and_reconnect(void)
{
    run_mode_in_process(1);
}

static void test_paper_frames_both_ways_and_reconnect(void)
{
    run_mode_in_process(0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* Linux signals a send on a closed socket; lwIP has no signals */
    ts_test_wifi_port = 20000 + (int)(getpid() % 20000);
    TS_RUN(test_reliable_frames_both_ways_and_reconnect);
    TS_RUN(test_paper_frames_both_ways_and_reconnect);
    return TS_RESULT();
}
