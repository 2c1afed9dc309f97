#include <mosquitto/mqtt_protocol.h>
#warning "Please replace '#include <mqtt_protocol.h> with #include <mosquitto.h>"
