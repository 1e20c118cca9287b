/* Host stand-in for the generated sdkconfig.h (force-included before everything else). */
#pragma once
#define _DEFAULT_SOURCE 1 /* POSIX + BSD socket options (TCP_KEEPIDLE) under -std=c11 */
#define CONFIG_TINYSPLIT_WIFI_PORT 45005
#define CONFIG_TINYSPLIT_WIFI_CONNECT_RETRY_MS 50
#define CONFIG_TINYSPLIT_WIFI_SEND_TIMEOUT_MS 2000
#define CONFIG_TINYSPLIT_WIFI_AP_STAGE 1
#define CONFIG_LWIP_TCP_MSS 1440
