/* relay.c: placeholder until implemented. */
#include "autoconfig.h"
#include "relay.h"
