/* server.c: placeholder until implemented. */
#include "autoconfig.h"
#include "server.h"
