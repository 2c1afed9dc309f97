/* Compiled by build.rs and linked into nothing at run time: its only job is to make the C
 * compiler see Mosquitto's prototypes and ours together. A signature of ours that drifts from
 * Mosquitto's is a "conflicting types" error here, so the build fails before a broker does. */
#include <stdbool.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include "mosquitto_oauth.h"

int mosquitto_oauth_abi_check(void);

int mosquitto_oauth_abi_check(void)
{
	return MOSQ_PLUGIN_VERSION == 5 && MOSQ_AUTH_PLUGIN_VERSION == 4;
}
