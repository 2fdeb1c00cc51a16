/* config.c: placeholder until implemented. */
#include "autoconfig.h"
#include "config.h"
