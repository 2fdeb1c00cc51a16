/* keyd.h: what daemon/keyd/ offers: the key process, the only holder of
 * private keys (keyd_server.h), and the client the network process uses
 * to have it sign, unwrap and derive by key fingerprint (keyd_client.h).
 * The protocol is proto/keyproto.h.  Keys on PKCS#11 tokens, named by
 * pkcs11: URIs, are keyd_p11.h's. */
#ifndef SMRELAY_KEYD_KEYD_H
#define SMRELAY_KEYD_KEYD_H

#include "keyd_server.h"
#include "keyd_client.h"
#include "keyd_proc.h"
#include "keyd_p11.h"

#endif
