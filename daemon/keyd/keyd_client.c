/* keyd_client.c: the key process client (keyd_client.h). */
#include "autoconfig.h"

#include "keyd_client.h"
