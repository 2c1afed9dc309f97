#include <mosquitto/broker.h>
#warning "Please replace '#include <mosquitto_broker.h> with #include <mosquitto.h>"
