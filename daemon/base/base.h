/* base.h: what the programs share: configuration, message
 * buffers, the worker pool, TLS contexts, the delivery interface, a
 * bounded HTTP GET and DNS (DNSSEC-validated, through libunbound). */
#ifndef SMRELAY_DAEMON_BASE_BASE_H
#define SMRELAY_DAEMON_BASE_BASE_H

#include "config.h"
#include "delivery.h"
#include "dns.h"
#include "http.h"
#include "metrics.h"
#include "metrics_srv.h"
#include "msgbuf.h"
#include "privsep.h"
#include "tls.h"
#include "workers.h"

#endif
