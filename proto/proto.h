/* proto.h: what proto/ offers the layers above: pure codecs,
 * no I/O (SMTP commands, DATA, replies, PROXY, XFORWARD, MIME, DSN, CMS, the key
 * process protocol). */
#ifndef SMRELAY_PROTO_PROTO_H
#define SMRELAY_PROTO_PROTO_H

#include "smtp_parse.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "proxy_parse.h"
#include "xforward.h"
#include "mime.h"
#include "mail_addr.h"
#include "dsn.h"
#include "cms.h"
#include "cms_info.h"
#include "keyproto.h"

#endif
