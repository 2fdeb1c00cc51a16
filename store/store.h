/* store.h: the certificate store (SQLite, or PostgreSQL shared by nodes) (partner certs, our certificates,
 * trust, CRLs) and the key file that holds our private keys. */
#ifndef SMRELAY_STORE_H
#define SMRELAY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/evp.h>

#include "policy/policy.h"

#define STORE_DB_NAME		"smrelay.db"
#define STORE_SCHEMA_VERSION	8
/* Seconds to wait for a PostgreSQL server to answer a connection. */
#define STORE_PG_CONNECT_TIMEOUT	10

/* store_certinfo.caps: harvested SMIMECapabilities. */
#define STORE_CAP_GCM		0x01	/* prefers/accepts AES-GCM */

struct store;
struct keyfile;

/* Where a row of `certificates` came from. */
enum store_source {
	STORE_SRC_IMPORT, STORE_SRC_HARVEST, STORE_SRC_KEY,
	STORE_SRC_SMIMEA	/* found in DNS (RFC 8162), until expires */
};

/* A certificate as the X.509 parser sees it (store_cert.c). */
struct store_certmeta {
	char		 fingerprint[65];	/* sha256 of the DER, lower hex */
	char		*subject, *issuer;	/* RFC 2253, UTF-8 */
	char		*serial;		/* upper hex */
	int64_t		 not_before, not_after;	/* unix seconds */
	int64_t		 key_usage;		/* KU_* bits, -1: no extension */
	int64_t		 ext_key_usage;		/* XKU_* bits, -1: no extension */
	int		 can_encrypt, can_sign;	/* for S/MIME, from KU/EKU */
	int		 is_ca;			/* CA:TRUE or self-signed */
	const char	*key_type;		/* "RSA", "EC", ... */
	int		 key_bits;
	char		**emails;		/* lowercased, no duplicates */
	size_t		 nemails;
	unsigned char	*der;
	int		 derlen;
};

/*
 * One row of a listing; the strings live until the callback returns.  Only
 * the fields a listing selects are set (see each *_list function).
 */
struct store_certinfo {
	int64_t		 id;			/* cert, key, anchor or CRL id */
	int64_t		 cert_id;		/* keys: the certificate row */
	const char	*fingerprint, *subject, *issuer, *serial;
	const char	*emails;		/* comma-separated */
	int64_t		 not_before, not_after, added;
	int64_t		 key_usage, ext_key_usage;
	int64_t		 can_encrypt, can_sign;
	const char	*key_type;
	int64_t		 key_bits;
	const char	*source;		/* "import", "harvest", "key",
						 * "smimea"; CRLs: "import" or
						 * a URL */
	int64_t		 expires;		/* certificates: not used after
						 * (smimea), 0: never */
	int64_t		 caps;
	const char	*location;		/* keys: "file", a pkcs11: URI,
						 * or "store" (not moved yet) */
};
/* A listing callback: 0 goes on, non-zero stops (and is returned). */
typedef int store_list_cb(const struct store_certinfo *, void *);

/* Our identity: key, certificate and the chain to send with signatures.
 * The store holds no private key: pkey is NULL until store_key_attach()
 * fills it from the key file. */
struct store_key {
	int64_t		 id;
	X509		*cert;
	EVP_PKEY	*pkey;
	STACK_OF(X509)	*chain;		/* never NULL, may be empty */
};

/* One entry of the key file, valid while the keyfile_foreach callback
 * runs (take references to keep anything). */
struct keyfile_entry {
	const char	*fingerprint;	/* of the certificate, as in store */
	X509		*cert;
	EVP_PKEY	*pkey;		/* NULL for a key on a PKCS#11 token */
	const char	*uri;		/* its "pkcs11:" URI, else NULL */
};
/* A keyfile_foreach callback: 0 goes on, non-zero stops (and is
 * returned). */
typedef int keyfile_cb(const struct keyfile_entry *, void *);

/* store.c */
/*
 * Open (creating if needed, mode 0600, and data_dir 0700) DATA_DIR/smrelay.db
 * and bring its schema up to date.  NULL with the reason in err on failure.
 */
struct store *store_open(const char *data_dir, char *err, size_t errlen);
/* The same for an explicit database path (tests). */
struct store *store_open_path(const char *path, char *err, size_t errlen);
/*
 * Open the database the `database` setting names: "sqlite" (or NULL) is
 * store_open(data_dir); a "postgresql://" or "postgres://" URI connects
 * (waiting STORE_PG_CONNECT_TIMEOUT seconds at most) and makes the schema
 * in an empty database, or refuses one of another version.  NULL with the
 * reason in err (never the password).
 */
struct store *store_open_db(const char *database, const char *data_dir,
    char *err, size_t errlen);
/*
 * store_open_db for a daemon: a PostgreSQL server that cannot be reached
 * now is not an error.  The store is returned with *up 0 and the reason in
 * err; it connects, and makes or checks the schema, at its first use after
 * the server answers (every call fails meanwhile, with backoff between
 * tries), and checks the schema again after each reconnection.  A bad
 * URI, a server older than PostgreSQL 10, or a schema of another version
 * is still NULL.  SQLite: store_open_db, *up 1.
 */
struct store *store_open_db_lazy(const char *database, const char *data_dir,
    int *up, char *err, size_t errlen);
/* Whether a `database` value names PostgreSQL. */
int store_db_is_pg(const char *database);
/* Whether an open store is on PostgreSQL. */
int store_is_pg(struct store *);
/*
 * smrelayd -n: SQLite, store_check_file on data_dir's file; PostgreSQL,
 * connect and refuse a schema newer than this program's (none yet is
 * fine: made at start).  Writes nothing; 0, or -1 with err.
 */
int store_check_db(const char *database, const char *data_dir, char *err,
    size_t errlen);
void store_close(struct store *);
/*
 * Changes made by other processes and nodes.  On SQLite there are no
 * notifications: store_listen and store_notify_fd return -1 and the
 * caller keeps polling store_changes (once a second).  On PostgreSQL,
 * store_listen subscribes this connection (LISTEN) to what every
 * store_commit notifies; store_notify_fd is then the socket to watch for
 * readability, and store_notified reads what arrived without blocking:
 * how many notifications (0 none), -1 when the connection is lost (listen
 * again after reconnecting, and reload: changes may have been missed).
 * Use a connection of its own for listening, or one that is idle between
 * calls: notifications are only read between transactions.
 */
int store_listen(struct store *);
int store_notify_fd(struct store *);
int store_notified(struct store *);
/* The schema version of the open database (PRAGMA user_version; meta's
 * 'schema' row on PostgreSQL). */
int store_schema_version(struct store *);
/*
 * A counter bumped by every committed write, by any process: the daemon
 * reloads what it caches when it changes.  -1 on error.
 */
int64_t store_changes(struct store *);
/* The last database error of this connection, for messages. */
const char *store_errmsg(struct store *);
/* Whether the database file at path (if there is one) opens read-only,
 * passes SQLite's quick check and is not newer than this program; 0, or
 * -1 with err.  Writes nothing (smrelayd -n). */
int store_check_file(const char *path, char *err, size_t errlen);
/* The name of the database (file path or connection string without its
 * password), for messages. */
const char *store_name(struct store *);

/* store_copy.c */
#define STORE_COPY_TABLES	8
/*
 * `smrelayctl store migrate`: copy every row of src (SQLite, at this
 * program's schema, no private key left in it) into dst (PostgreSQL,
 * whose tables must all be empty) in one transaction, keeping the ids
 * (dst's identities then go on past them).  counts[i] gets the rows of
 * table store_copy_table(i), i < STORE_COPY_TABLES.  0; -2 refused (dst
 * holds rows, src private keys), -1 failed; err says why, dst unchanged.
 */
int store_copy(struct store *src, struct store *dst, int64_t *counts,
    char *err, size_t errlen);
const char *store_copy_table(size_t);
/* A secret of this installation (table secrets), exactly len bytes. */
#define STORE_MARK_LEN	32	/* the loop-guard "mark" secret */
int store_secret(struct store *, const char *name, unsigned char *buf,
    size_t len, char *err, size_t errlen);

/* store_cert.c */
/* Fill m from a certificate; -1 (err set) if it cannot be parsed. */
int store_certmeta_get(X509 *, struct store_certmeta *, char *err,
    size_t errlen);
void store_certmeta_free(struct store_certmeta *);
/* ASN1_TIME as unix seconds, 0 when absent. */
int64_t store_asn1_time(const ASN1_TIME *);
/* A name in RFC 2253 form (free it). */
char *store_name_str(const X509_NAME *);
/* "2026-11-22T19:43:10Z" */
void store_time_str(int64_t, char *, size_t);
/* Lowercase copy of an e-mail address (free it). */
char *store_email_norm(const char *);
/* Whether the certificate itself names email (SAN rfc822Name, subject
 * emailAddress; compared lowercased): 1 or 0. */
int store_cert_names(X509 *, const char *email);

/* store_load.c: reading files to import */
/*
 * Every certificate of a PEM (one or many) or DER file, or of a PKCS#7
 * certs-only bundle (.p7b/.p7c, PEM or DER); NULL (err set).
 */
STACK_OF(X509) *store_load_certs(const char *path, char *err, size_t errlen);
/* Every CRL of a file, PEM or DER (one or several in a row); NULL (err
 * set) when there is none or something else follows them. */
STACK_OF(X509_CRL) *store_load_crls(const char *path, char *err,
    size_t errlen);
/*
 * A key and its certificate from PKCS#12 (legacy ciphers too) or PEM (cert +
 * key + chain in one file), with an optional password.  *chain gets the other
 * certificates.  -1 with "wrong password for FILE" or another reason.
 */
int store_load_identity(const char *path, const char *password,
    EVP_PKEY **pkey, X509 **cert, STACK_OF(X509) **chain, char *err,
    size_t errlen);
/* First line of a password file (without the line end); NULL (err set). */
char *store_load_password(const char *path, char *err, size_t errlen);
/* Unload the providers store_load_identity may have loaded. */
void store_load_cleanup(void);

/* store_ops.c */
/*
 * Add certificates in one transaction (all or nothing).  ids[i] gets each
 * row id, existed[i] 1 when the certificate was already there (idempotent).
 * Certificates without an e-mail address are refused unless they are CAs
 * (intermediates: the caller checks they chain to an anchor).
 */
int store_cert_add(struct store *, STACK_OF(X509) *, enum store_source,
    int caps, int64_t *ids, int *existed, char *err, size_t errlen);
/* 1 removed, 0 no such id, -1 error (err set; e.g. used by a key). */
int store_cert_remove(struct store *, int64_t id, char *err, size_t errlen);
/* Every cert (with an address equal to email if not NULL), by id. */
int store_cert_list(struct store *, const char *email, store_list_cb *,
    void *);
/* One cert: 1 found (cb called), 0 not found, -1 error. */
int store_cert_info(struct store *, int64_t id, store_list_cb *, void *);
/* The DER of a stored cert as X509 (free it), or NULL. */
X509 *store_cert_get(struct store *, int64_t id);
/*
 * The certificate to encrypt to for an address: valid at now, usable for
 * encryption (KU keyEncipherment for RSA, keyAgreement for EC, or no KU;
 * emailProtection or no EKU), not expired (source smimea); the newest
 * not_before wins.  NULL if none.
 */
X509 *store_best_cert_for(struct store *, const char *email, time_t now,
    int *caps);
/* The same ranking, its n-th entry (0 is the best); NULL past the end. */
X509 *store_cert_candidate(struct store *, const char *email, time_t now,
    int n, int *caps);
/*
 * A certificate seen in a valid signature: add it (source "harvest") or
 * refresh its capabilities.  Returns the row id, or -1.
 */
int64_t store_harvest(struct store *, X509 *, STACK_OF(X509) *chain,
    int caps);
/*
 * A certificate an SMIMEA record (RFC 8162) gave for email: stored with
 * source "smimea", for email alone (the DNS binds it to that address,
 * whatever addresses the certificate names), not used after expires.
 * Already stored from DNS: email is added and the later expiry kept.
 * Already stored from another source: unchanged (-1 with the reason when
 * it does not name email).  Rows from DNS that expired are deleted in the
 * same transaction.  The row id, or -1 (err set).
 */
int64_t store_smimea_add(struct store *, X509 *, const char *email,
    int64_t expires, char *err, size_t errlen);

/* store_keys.c */
/*
 * Add our identity's certificate and chain in one transaction; location
 * says where its private key lives: "file" (the key file: put it there
 * first) or its "pkcs11:" URI.  *existed when already there (its location
 * is then updated).
 */
int store_key_add(struct store *, X509 *, STACK_OF(X509) *chain,
    const char *location, int64_t *id, int *existed, char *err,
    size_t errlen);
/* 1 removed, 0 no such id, -1 error (err set).  fp (may be NULL) gets the
 * fingerprint of its certificate, for keyfile_remove(). */
int store_key_remove(struct store *, int64_t id, char fp[65], char *err,
    size_t errlen);
/* Every key; info.id is the key id, info.cert_id its certificate row,
 * info.location where its private key lives. */
int store_key_list(struct store *, store_list_cb *, void *);
/* Our key for signing as email (valid at now, newest first), or NULL;
 * pkey NULL (store_key_attach). */
struct store_key *store_key_for(struct store *, const char *email,
    time_t now);
/* Every key (for decrypting); *n entries, NULL-terminated array; pkey
 * NULL (store_key_attach). */
struct store_key **store_all_keys(struct store *, size_t *n);
void store_key_free(struct store_key *);
void store_keys_free(struct store_key **);
/*
 * Fill k->pkey from the key file, by the fingerprint of k->cert: 1 done,
 * 0 the key file has no key for it (err says why: none, or on a PKCS#11
 * token), -1 error (err set).
 */
int store_key_attach(struct store_key *k, struct keyfile *, char *err,
    size_t errlen);
/*
 * Move every private key still in the store (a database of schema 6 or
 * older kept them) to the key file, then empty it in the store and
 * rewrite the database (VACUUM, WAL truncated) so that no copy of the key
 * is left in its free pages.  Each key is committed to the key file before
 * its row is emptied, so an interruption loses nothing and running it
 * again finishes the job.  How many keys were moved, or -1 (err set).
 */
int store_keys_migrate(struct store *, struct keyfile *, char *err,
    size_t errlen);

/* store_keyfile.c: our private keys, in a SQLite file of their own */
/*
 * Open the key file at path, creating it (mode 0600 whatever the umask)
 * if missing.  A file others than its owner may read or write is refused.
 * With passphrase_file (its first line; an empty one is an error) the
 * keys are stored as encrypted PKCS#8 (PBES2: scrypt, AES-256-CBC); a new
 * file, or one that holds no key yet, becomes encrypted.  The passphrase
 * is checked at open against a verifier stored in the file: a wrong one,
 * none for an encrypted file, or one for a file of plain keys fail here.
 * NULL with the reason in err.
 */
struct keyfile *keyfile_open(const char *path, const char *passphrase_file,
    char *err, size_t errlen);
void keyfile_close(struct keyfile *);
/* Whether the key file at path (if there is one) has a safe mode, opens
 * read-only and takes the passphrase (as keyfile_open would); 0, or -1
 * with err.  Writes nothing (smrelayd -n). */
int keyfile_check(const char *path, const char *passphrase_file, char *err,
    size_t errlen);
const char *keyfile_path(const struct keyfile *);
/* Whether its keys are encrypted under a passphrase. */
int keyfile_encrypted(const struct keyfile *);
/* Lowercase hex SHA-256 of the certificate's DER (the name of its key
 * here and of its row in the store); -1 if it cannot be encoded. */
int keyfile_fingerprint(X509 *, char fp[65]);
/* 32 bytes (a SHA-256) as 64 lowercase hex digits and a NUL. */
void keyfile_hex(const unsigned char md[32], char fp[65]);
/* Store (or replace) the key of cert, which must match it; 0, or -1 with
 * err. */
int keyfile_put(struct keyfile *, X509 *cert, EVP_PKEY *pkey, char *err,
    size_t errlen);
/* Store (or replace) a reference to cert's key on a PKCS#11 token: uri
 * begins with "pkcs11:".  0, or -1 with err. */
int keyfile_put_uri(struct keyfile *, X509 *cert, const char *uri, char *err,
    size_t errlen);
/* 1 removed, 0 none with that fingerprint, -1 error (err set). */
int keyfile_remove(struct keyfile *, const char *fp, char *err,
    size_t errlen);
/* Whether there is an entry for fp, without decoding it: 1, 0, -1. */
int keyfile_has(struct keyfile *, const char *fp);
/*
 * The entry for fp: 1 with *pkey (a new reference) or *uri (free it) set,
 * the other NULL; 0 none; -1 error (err set).  pkey or uri may be NULL
 * when the caller does not want that kind.
 */
int keyfile_get(struct keyfile *, const char *fp, EVP_PKEY **pkey,
    char **uri, char *err, size_t errlen);
/*
 * Call cb for every entry, by fingerprint.  0 when all were visited, the
 * callback's non-zero value when it stopped, -1 (err set) when an entry
 * could not be read: the others are still visited.
 */
int keyfile_foreach(struct keyfile *, keyfile_cb *, void *, char *err,
    size_t errlen);
/*
 * A counter bumped by every committed write, by any process: a reader
 * that keeps keys polls it (one cheap query) and reloads when it moves.
 * -1 on error.
 */
int64_t keyfile_changes(struct keyfile *);
/*
 * The secret called name (the loop-guard "mark"), exactly len bytes into
 * buf: 1, 0 when there is none, -1 (err set) when it cannot be read or
 * has another length.
 */
int keyfile_secret(struct keyfile *, const char *name, unsigned char *buf,
    size_t len, char *err, size_t errlen);
/* Store buf as the secret called name unless there is one: 1 stored, 0
 * one was there (kept), -1 (err set). */
int keyfile_secret_add(struct keyfile *, const char *name,
    const unsigned char *buf, size_t len, char *err, size_t errlen);

/* store_trust.c */
/* Add CA certificates (CA:TRUE or self-signed only), all or nothing. */
int store_trust_add(struct store *, STACK_OF(X509) *, int64_t *ids,
    int *existed, char *err, size_t errlen);
int store_trust_remove(struct store *, int64_t id, char *err, size_t errlen);
/* id, subject, not_after, fingerprint. */
int store_trust_list(struct store *, store_list_cb *, void *);
/*
 * Add a CRL whose signature verifies against a stored anchor or
 * intermediate CA with its issuer name; it replaces an older CRL of that
 * issuer.  source: NULL for an import, else the URL it was fetched from.
 * *existed when the same CRL is already there (its source is then
 * updated).  -1 (err set) otherwise.
 */
int store_crl_add(struct store *, X509_CRL *, const char *source,
    int64_t *id, int *existed, char *err, size_t errlen);
int store_crl_remove(struct store *, int64_t id, char *err, size_t errlen);
/* id, issuer (as subject), not_before = thisUpdate, not_after = nextUpdate
 * (0: none), fingerprint. */
int store_crl_list(struct store *, store_list_cb *, void *);
/*
 * An X509_STORE with every anchor and CRL.  No flags are set: a verifier
 * that wants revocation checks sets X509_V_FLAG_CRL_CHECK itself.
 */
X509_STORE *store_trust_x509_store(struct store *);
/* The CRLs held in an X509_STORE (new references); NULL on error. */
STACK_OF(X509_CRL) *store_trust_crls(X509_STORE *);
/* The intermediate CAs and CRL signers `cert import` stored (new
 * references), for path building and CRL checks; NULL on error. */
STACK_OF(X509) *store_ca_certs(struct store *);
/* Whether x chains to a trust anchor through the stored intermediates and
 * the certificates in extra (may be NULL), without revocation checks: 0,
 * or -1 with the reason in why. */
int store_ca_chains(struct store *, X509 *x, STACK_OF(X509) *extra,
    char *why, size_t whylen);
/* OCSP answers, by the certificate's CertID (hex SHA-256 of its DER). */
struct store_ocsp {
	int		 status;        /* 0 good, 1 revoked, 2 unknown */
	int64_t		 this_update, next_update;      /* 0: none */
	char		 source[512];   /* the responder's URL */
};
/* Store (replace) the answer for cert_id; 0, or -1 with err set. */
int store_ocsp_put(struct store *, const char *cert_id,
    const struct store_ocsp *, char *err, size_t errlen);
/* The answer for cert_id: 1 found, 0 none, -1 error. */
int store_ocsp_get(struct store *, const char *cert_id, struct store_ocsp *);

/* Where the stored crl came from into buf: its URL, or "import"; 1
 * found, 0 not stored, -1 error. */
int store_crl_source(struct store *, X509_CRL *crl, char *buf, size_t len);
/* Whether x may sign CRLs (keyUsage cRLSign). */
int store_is_crl_signer(X509 *);
/* Every trust anchor's certificate (new references); NULL on error. */
STACK_OF(X509) *store_anchor_certs(struct store *);
/* Every stored certificate (new references); NULL on error. */
STACK_OF(X509) *store_all_certs(struct store *);
/* The CRL fetched from url: 1 (its nextUpdate in *next, 0 if none), 0 no
 * such CRL, -1 error. */
int store_crl_by_source(struct store *, const char *url, int64_t *next);

/* store_policy.c */
/* Add a rule (checked first; its id is ignored); *id gets the new id. */
int store_policy_add(struct store *, const struct policy_rule *,
    int64_t *id, char *err, size_t errlen);
/* 1 removed, 0 no such id, -1 error (err set). */
int store_policy_remove(struct store *, int64_t id, char *err,
    size_t errlen);
/* Every rule, by id (*n of them, maybe 0); NULL on error (err set). */
struct policy_rule *store_policy_load(struct store *, size_t *n,
    char *err, size_t errlen);
void store_policy_rules_free(struct policy_rule *, size_t n);

#endif
