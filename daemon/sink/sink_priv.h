/* sink_priv.h: the parts of the lab sink behind sink.h: what it knows to
 * read S/MIME with (keys, certificates, trust), the analysis of one
 * captured message, the inbox index and its web server. */
#ifndef SMRELAY_SINK_PRIV_H
#define SMRELAY_SINK_PRIV_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "proto/proto.h"

struct event_base;

/* Limits of the analysis and of the web inbox. */
#define VERDICT_MSG_MAX		(8u * 1024 * 1024) /* bytes parsed; more:
						     * headers only */
#define VERDICT_HDR_BYTES	(64u * 1024)	/* read of a too-big one */
#define VERDICT_LAYERS_MAX	4	/* nested signed/encrypted layers */
#define VERDICT_FIELDS_MAX	200	/* header fields listed */
#define VERDICT_VALUE_MAX	2048	/* bytes of one field value shown */
#define VERDICT_PARTS_MAX	200	/* MIME tree nodes listed */
#define VERDICT_TEXT_PARTS	20	/* text parts whose content is shown */
#define VERDICT_TEXT_MAX	(64u * 1024)	/* bytes shown of one */
#define INBOX_MAX		10000	/* messages indexed (oldest leave) */
#define INBOX_PAGE_MAX		200	/* messages in one list answer */
#define WEB_HEADERS_MAX		8192	/* bytes of a request's headers */
#define WEB_TIMEOUT		30	/* seconds per request */

/* What the sink reads S/MIME with: --key, --cert, --trust. */
struct sink_keys {
	struct cms_identity *ids;	/* --key: key + certificate */
	size_t		 nids;
	STACK_OF(X509)	*known;		/* every certificate we know: those
					 * of the keys, then --cert */
	X509_STORE	*store;		/* --trust anchors (and CRLs) */
	STACK_OF(X509_CRL) *crls;
};

/* verdict.c */
void	 verdict_keys_init(struct sink_keys *);
void	 verdict_keys_free(struct sink_keys *);
/* Load a PEM file with a private key and its certificate (--key), some
 * certificates (--cert), or trust anchors and CRLs (--trust). */
int	 verdict_load_key(struct sink_keys *, const char *file, char *err,
	    size_t errlen);
int	 verdict_load_certs(struct sink_keys *, const char *file, char *err,
	    size_t errlen);
int	 verdict_load_trust(struct sink_keys *, const char *file, char *err,
	    size_t errlen);
/*
 * Analyse a captured message (the Maildir file's bytes, `total` the file's
 * size when only its head was read): envelope, header fields, the S/MIME
 * layers (signed by, chain, revocation; encrypted to, cipher; decrypted
 * with --key), the MIME tree and the text of its text parts.  A JSON
 * object, never NULL.
 */
json_t	*verdict_analyse(const struct sink_keys *, const char *msg,
	    size_t len, size_t total);
/* The short form the list shows: taken from a full analysis. */
json_t	*verdict_summary(json_t *full);
/* A JSON string of bytes that may not be UTF-8 (bad bytes become U+FFFD). */
json_t	*verdict_jstr(const char *, size_t);

/* inbox.c */
struct inbox;
struct inbox_batch;		/* analyses to run off the loop */
struct inbox *inbox_open(const char *dir, const struct sink_keys *);
void	 inbox_free(struct inbox *);
/* A message saved as DIR/new/NAME. */
void	 inbox_add(struct inbox *, const char *name);
/* The messages of a list page not analysed yet (NULL: none): run the batch
 * on a worker (inbox_batch_run), then inbox_batch_finish on the loop. */
struct inbox_batch *inbox_list_prepare(struct inbox *, unsigned long long since,
	    size_t offset, size_t limit);
void	 inbox_batch_run(struct inbox_batch *);
void	 inbox_batch_finish(struct inbox *, struct inbox_batch *);
void	 inbox_batch_free(struct inbox_batch *);
/* The list answer: messages with id > since (newest first), at most limit
 * from offset, from what was analysed. */
json_t	*inbox_list(struct inbox *, unsigned long long since, size_t offset,
	    size_t limit);
/* One message: a batch to run (NULL if there is no such message), then its
 * analysis (the batch is freed). */
struct inbox_batch *inbox_get_prepare(struct inbox *, unsigned long long id);
json_t	*inbox_get_finish(struct inbox *, struct inbox_batch *);
/* The path of a message's file (malloc'd), NULL if none. */
char	*inbox_path(struct inbox *, unsigned long long id);

/* web.c */
struct web;
struct workers;
/* Listen on ADDR:PORT, analysing on `workers`; NULL with err set. */
struct web *web_start(struct event_base *, const char *addrport,
    struct inbox *, struct workers *, char *err, size_t errlen);
void	 web_free(struct web *);

/* web_assets.c */
struct web_asset {
	const char	*path;
	const char	*type;
	const char	*body;
};
extern const struct web_asset web_assets[];

#endif
