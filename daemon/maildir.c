/* maildir.c: placeholder until implemented. */
#include "autoconfig.h"
#include "maildir.h"
