/* keyd_client.h: the network process's side of the socketpair. */
#ifndef SMRELAY_KEYD_CLIENT_H
#define SMRELAY_KEYD_CLIENT_H

#endif
