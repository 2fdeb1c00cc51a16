/* smtp_session.c: placeholder until implemented. */
#include "autoconfig.h"
#include "smtp_session.h"
