/* keyd_server.h: the key process's side of the socketpair. */
#ifndef SMRELAY_KEYD_SERVER_H
#define SMRELAY_KEYD_SERVER_H

#endif
