/* smtp_parse.c: placeholder until implemented. */
#include "autoconfig.h"
#include "smtp_parse.h"
