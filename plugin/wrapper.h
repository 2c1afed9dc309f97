/* What bindgen sees of Mosquitto 2.0 (plugin/vendor/mosquitto-2.0). 2.0.11's mosquitto_plugin.h
 * uses mosquitto_plugin_id_t without including mosquitto_broker.h (fixed upstream in 2.0.13), so
 * the broker header comes first. */
#include <stdbool.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
