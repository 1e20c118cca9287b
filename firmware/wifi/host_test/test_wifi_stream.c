/* Frame boundaries of the Wi-Fi transport's TCP stream (firmware/wifi/main/wifi_stream.c). */
#include <stdint.h>

#include "ts_frame.h"
#include "ts_test.h"
#include "wifi_stream.h"

static void test_head_bytes(void)
{
    TS_CHECK_EQ_INT(ts_wifi_head_bytes(1), TS_HEADER_BYTES);
    TS_CHECK_EQ_INT(ts_wifi_head_bytes(0), TS_WIFI_PAPER_PREFIX_BYTES);
}

static void test_reliable_header_gives_payload_length(void)
{
    uint8_t h[TS_HEADER_BYTES] = {0};
    h[0] = TS_PROTOCOL_VERSION;
    h[10] = 0x9E; /* length 0x059E = 1438 */
    h[11] = 0x05;
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, TS_MAX_FRAME_BYTES), 1438);
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, 16 + 1438), 1438);
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, 16 + 1437), TS_ERR_LENGTH);
    h[10] = 0;
    h[11] = 0;
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, TS_MAX_FRAME_BYTES), 0); /* header-only frame */
    h[10] = 0xFF;
    h[11] = 0xFF;
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, TS_MAX_FRAME_BYTES), TS_ERR_LENGTH);
}

static void test_reliable_header_of_another_version_is_out_of_step(void)
{
    uint8_t h[TS_HEADER_BYTES] = {0};
    h[0] = TS_PROTOCOL_VERSION + 1;
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(h, 1, TS_MAX_FRAME_BYTES), TS_ERR_VERSION);
}

static void test_paper_prefix_round_trip(void)
{
    uint8_t p[TS_WIFI_PAPER_PREFIX_BYTES];
    ts_wifi_paper_prefix(p, 1438);
    TS_CHECK_EQ_INT(p[0], 0x9E);
    TS_CHECK_EQ_INT(p[1], 0x05);
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(p, 0, 1438), 1438);
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(p, 0, 1437), TS_ERR_LENGTH);
    ts_wifi_paper_prefix(p, TS_PAPER_TIMER_ID_BYTES); /* an empty paper response */
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(p, 0, TS_MAX_FRAME_BYTES), TS_PAPER_TIMER_ID_BYTES);
    ts_wifi_paper_prefix(p, 0);
    TS_CHECK_EQ_INT(ts_wifi_body_bytes(p, 0, TS_MAX_FRAME_BYTES), TS_ERR_LENGTH);
}

int main(void)
{
    TS_RUN(test_head_bytes);
    TS_RUN(test_reliable_header_gives_payload_length);
    TS_RUN(test_reliable_header_of_another_version_is_out_of_step);
    TS_RUN(test_paper_prefix_round_trip);
    return TS_RESULT();
}
