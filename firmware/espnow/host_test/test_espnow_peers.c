/* Parser of TINYSPLIT_ESPNOW_PEERS (firmware/espnow/main/espnow_peers.c). */
#include <stdint.h>

#include "espnow_peers.h"
#include "ts_frame.h"
#include "ts_test.h"

static uint8_t s_macs[4][TS_ESPNOW_MAC_BYTES];

static int parse(const char *text, size_t *at)
{
    return ts_espnow_parse_peers(text, s_macs, 4, at);
}

static void test_one_mac(void)
{
    size_t at = 99;
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f0", &at), 1);
    const uint8_t want[TS_ESPNOW_MAC_BYTES] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0};
    TS_CHECK_EQ_MEM(s_macs[0], want, sizeof(want));
}

static void test_list_with_spaces_and_either_case(void)
{
    size_t at;
    TS_CHECK_EQ_INT(parse(" 24:6F:28:00:00:01 , 24:6f:28:00:00:02,24:6f:28:00:00:03 ", &at), 3);
    TS_CHECK_EQ_INT(s_macs[0][1], 0x6f);
    TS_CHECK_EQ_INT(s_macs[1][5], 2);
    TS_CHECK_EQ_INT(s_macs[2][5], 3);
}

static void test_syntax_errors_point_at_the_character(void)
{
    size_t at;
    TS_CHECK_EQ_INT(parse("", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 0);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 14);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 16);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:fg", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 16);
    TS_CHECK_EQ_INT(parse("aa-bb:cc:dd:ee:ff", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 2);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f0,", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 18);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f0;", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 17);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f00", &at), TS_ERR_ARG);
    TS_CHECK_EQ_INT(at, 17);
}

static void test_group_and_repeated_macs_are_refused(void)
{
    size_t at;
    TS_CHECK_EQ_INT(parse("ff:ff:ff:ff:ff:ff", &at), TS_ERR_FIELD);
    TS_CHECK_EQ_INT(at, 0);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f0, 01:00:5e:00:00:01", &at), TS_ERR_FIELD);
    TS_CHECK_EQ_INT(at, 19);
    TS_CHECK_EQ_INT(parse("aa:bb:cc:dd:ee:f0,AA:BB:CC:DD:EE:F0", &at), TS_ERR_FIELD);
    TS_CHECK_EQ_INT(at, 18);
}

static void test_too_many_entries(void)
{
    size_t at;
    const char *five = "02:00:00:00:00:01,02:00:00:00:00:02,02:00:00:00:00:03,"
                       "02:00:00:00:00:04,02:00:00:00:00:05";
    TS_CHECK_EQ_INT(parse(five, &at), TS_ERR_NOSPACE);
    TS_CHECK_EQ_INT(at, 72);
    TS_CHECK_EQ_INT(ts_espnow_parse_peers(five, s_macs, 0, &at), TS_ERR_NOSPACE);
}

int main(void)
{
    TS_RUN(test_one_mac);
    TS_RUN(test_list_with_spaces_and_either_case);
    TS_RUN(test_syntax_errors_point_at_the_character);
    TS_RUN(test_group_and_repeated_macs_are_refused);
    TS_RUN(test_too_many_entries);
    return TS_RESULT();
}
