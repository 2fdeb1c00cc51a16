/* keyd_server.c: the key process (keyd_server.h). */
#include "autoconfig.h"

#include "keyd_server.h"
