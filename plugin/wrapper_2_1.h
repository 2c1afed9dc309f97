/* What bindgen sees of Mosquitto 2.1 (plugin/vendor/mosquitto-2.1); build.rs keeps only the
 * items the plugin uses. broker_plugin.h (ACL flags, mosquitto_opt, mosquitto_acl_msg) includes
 * mosquitto.h, whose cJSON helpers build.rs skips. */
#include <stdbool.h>
#include <mosquitto/broker.h>
#include <mosquitto/broker_plugin.h>
