/* msgbuf.c: placeholder until implemented. */
#include "autoconfig.h"
#include "msgbuf.h"
