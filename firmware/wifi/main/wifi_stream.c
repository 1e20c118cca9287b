/*
 * Frame boundaries on a TCP stream (see wifi_stream.h). Kept free of ESP-IDF so it can be
 * compiled and checked on the host.
 */
#include "wifi_stream.h"

#include "ts_frame.h"

enum {
    OFF_VERSION = 0, /* reliable header: u8 version */
    OFF_LENGTH = 10, /* reliable header: u16 LE payload length */
};

size_t ts_wifi_head_bytes(int reliable)
{
    return reliable ? (size_t)TS_HEADER_BYTES : (size_t)TS_WIFI_PAPER_PREFIX_BYTES;
}

int ts_wifi_body_bytes(const uint8_t *head, int reliable, size_t max_frame_bytes)
{
    if (reliable) {
        if (head[OFF_VERSION] != TS_PROTOCOL_VERSION) {
            return TS_ERR_VERSION;
        }
        size_t payload = (size_t)head[OFF_LENGTH] | ((size_t)head[OFF_LENGTH + 1] << 8);
        if (TS_HEADER_BYTES + payload > max_frame_bytes) {
            return TS_ERR_LENGTH;
        }
        return (int)payload;
    }
    size_t frame = (size_t)head[0] | ((size_t)head[1] << 8);
    if (frame == 0 || frame > max_frame_bytes) {
        return TS_ERR_LENGTH;
    }
    return (int)frame;
}

void ts_wifi_paper_prefix(uint8_t out[TS_WIFI_PAPER_PREFIX_BYTES], size_t frame_len)
{
    out[0] = (uint8_t)(frame_len & 0xFFu);
    out[1] = (uint8_t)((frame_len >> 8) & 0xFFu);
}
