// libmosquitto for Swift (client library; no library thread is used).
#ifndef GRIDEDGE_CMOSQUITTO_SHIM_H
#define GRIDEDGE_CMOSQUITTO_SHIM_H

#include <mosquitto.h>
#include <mqtt_protocol.h>

#endif
