/* smtp_reply.c: placeholder until implemented. */
#include "autoconfig.h"
#include "smtp_reply.h"
