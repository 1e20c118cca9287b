/* Host stand-in for the generated sdkconfig.h (force-included before everything else). */
#pragma once
#define _DEFAULT_SOURCE 1 /* POSIX + BSD socket options (TCP_KEEPIDLE) under -std=c11 */
/* A port per test run (test_wifi_links.c sets it from the process id before forking), so two
 * runs at once, e.g. two checkouts or tox environments, do not take each other's port. */
extern int ts_test_wifi_port;
#define CONFIG_TINYSPLIT_WIFI_PORT ts_test_wifi_port
#define CONFIG_TINYSPLIT_WIFI_CONNECT_RETRY_MS 50
#define CONFIG_TINYSPLIT_WIFI_SEND_TIMEOUT_MS 2000
#define CONFIG_TINYSPLIT_WIFI_AP_STAGE 1
#define CONFIG_LWIP_TCP_MSS 1440
