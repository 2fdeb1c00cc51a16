/* smtp_session.h: one inbound SMTP session (ESMTP server side). */
#ifndef SMRELAY_SMTP_SESSION_H
#define SMRELAY_SMTP_SESSION_H

#include <sys/socket.h>
#include <event2/util.h>

struct server;
struct listen_cfg;

/* smtp_session.c */
/* Take over an accepted socket and start the conversation. */
void smtp_session_start(struct server *, evutil_socket_t,
    const struct sockaddr *, int socklen, const struct listen_cfg *);
/* Server is draining: close the session now if it is idle between
 * transactions; returns 1 if it was closed. */
int smtp_session_drain(struct smtp_session *);
struct smtp_session *smtp_session_next(struct smtp_session *);

#endif
