/* tls.c: placeholder until implemented. */
#include "autoconfig.h"
#include "tls.h"
