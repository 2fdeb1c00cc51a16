/* base.h: what the programs share: configuration, message
 * buffers, the worker pool, TLS contexts and the delivery interface. */
#ifndef SMRELAY_DAEMON_BASE_BASE_H
#define SMRELAY_DAEMON_BASE_BASE_H

#include "config.h"
#include "delivery.h"
#include "msgbuf.h"
#include "tls.h"
#include "workers.h"

#endif
