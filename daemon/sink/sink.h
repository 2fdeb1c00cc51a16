/* sink.h: the lab capture server (`smrelayctl sink`) and its
 * Maildir writer. */
#ifndef SMRELAY_DAEMON_SINK_SINK_H
#define SMRELAY_DAEMON_SINK_SINK_H

#include "maildir.h"

#endif
