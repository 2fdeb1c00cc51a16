/* smime.h: the S/MIME side of the daemon: message transforms, the
 * certificate cache, the door to our private keys, the harvest writer, the
 * per-recipient plan, SMIMEA lookups and the gateway backend that runs
 * it. */
#ifndef SMRELAY_DAEMON_SMIME_SMIME_H
#define SMRELAY_DAEMON_SMIME_SMIME_H

#include "smime_msg.h"
#include "smime_stream.h"
#include "certcache.h"
#include "crlfetch.h"
#include "keys.h"
#include "harvest.h"
#include "mark.h"
#include "pipeline.h"
#include "smimea.h"
#include "gateway.h"

#endif
