/* smtp_data.c: placeholder until implemented. */
#include "autoconfig.h"
#include "smtp_data.h"
