/* proxy_parse.c: placeholder until implemented. */
#include "autoconfig.h"
#include "proxy_parse.h"
