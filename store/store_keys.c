/* store_keys.c: our own identities: the certificate and chain of each key
 * (the keys themselves are in the key file, store_keyfile.c), and moving
 * the keys older versions kept here to the key file. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "store_priv.h"
#include "lib/lib.h"

#define KEY_SELECT \
	"SELECT k.id AS kid, c.id AS cid, " STORE_DER_COLUMN("k.chain") \
	" AS chain, " STORE_DER_COLUMN("c.der") " AS der " \
	"FROM keys k JOIN certificates c ON c.id = k.cert_id "

/* The chain as concatenated DER (free it); *len 0 when empty. */
static unsigned char *
chain_der(STACK_OF(X509) *chain, int *len)
{
	unsigned char *buf = NULL, *p;
	int i, n, total = 0;

	for (i = 0; i < sk_X509_num(chain); i++) {
		if ((n = i2d_X509(sk_X509_value(chain, i), NULL)) <= 0)
			return NULL;
		total += n;
	}
	buf = xmalloc(total > 0 ? (size_t)total : 1);
	p = buf;
	for (i = 0; i < sk_X509_num(chain); i++)
		i2d_X509(sk_X509_value(chain, i), &p);
	*len = total;
	return buf;
}

/* Insert the key row for cert_id: no key, only where it lives. */
static int
insert_key(struct store *st, int64_t cert_id, STACK_OF(X509) *chain,
    const char *location, char *err, size_t errlen)
{
	unsigned char *cder;
	struct db_stmt *stmt;
	int clen = 0, rc;

	if ((cder = chain_der(chain, &clen)) == NULL) {
		snprintf(err, errlen, "cannot encode the chain");
		return -1;
	}
	rc = store_prepare(st, "INSERT INTO keys (cert_id, pkey, chain, "
	    "added, location) VALUES (?, ?, ?, ?, ?)", &stmt, err, errlen);
	if (rc == 0) {
		db_bind_int64(stmt, 1, cert_id);
		db_bind_blob(stmt, 2, "", 0);	/* the key is elsewhere */
		db_bind_blob(stmt, 3, cder, (size_t)clen);
		db_bind_int64(stmt, 4, (int64_t)time(NULL));
		db_bind_text(stmt, 5, location);
		rc = db_step(stmt) == DB_DONE ? 0 :
		    store_sqlerr(st, "insert key", err, errlen);
		db_finalize(stmt);
	}
	free(cder);
	return rc;
}

/* A key that is there already: record its (maybe new) location. */
static int
relocate_key(struct store *st, int64_t id, const char *location, char *err,
    size_t errlen)
{
	struct db_stmt *stmt;
	int rc, n = 0;

	if (store_prepare(st, "UPDATE keys SET location = ? WHERE id = ? AND "
	    "location <> ?", &stmt, err, errlen) == -1)
		return -1;
	db_bind_text(stmt, 1, location);
	db_bind_int64(stmt, 2, id);
	db_bind_text(stmt, 3, location);
	rc = db_step(stmt) == DB_DONE ? 0 :
	    store_sqlerr(st, "update key", err, errlen);
	if (rc == 0)
		n = (int)db_changes(st->db);
	db_finalize(stmt);
	if (rc == 0 && n == 0)
		store_rollback(st);
	else if (rc == 0)
		rc = store_commit(st, err, errlen);
	return rc;
}

/* The key id for a certificate row, 0 none, -1 error. */
static int64_t
key_of_cert(struct store *st, int64_t cert_id)
{
	struct db_stmt *stmt;
	int64_t id = 0;
	int rc;

	if (store_prepare(st, "SELECT id FROM keys WHERE cert_id = ?", &stmt,
	    NULL, 0) == -1)
		return -1;
	db_bind_int64(stmt, 1, cert_id);
	if ((rc = db_step(stmt)) == DB_ROW)
		id = db_column_int64(stmt, 0);
	else if (rc != DB_DONE)
		id = -1;
	db_finalize(stmt);
	return id;
}

/* Add our identity in one transaction. */
int
store_key_add(struct store *st, X509 *cert, STACK_OF(X509) *chain,
    const char *location, int64_t *id, int *existed, char *err,
    size_t errlen)
{
	struct store_certmeta m;
	int64_t cid;
	int cexisted;

	*existed = 0;
	if (store_certmeta_get(cert, &m, err, errlen) == -1)
		return -1;
	if (m.nemails == 0) {
		snprintf(err, errlen, "certificate %s has no e-mail address",
		    m.subject);
		store_certmeta_free(&m);
		return -1;
	}
	if (store_begin(st, err, errlen) == -1) {
		store_certmeta_free(&m);
		return -1;
	}
	cid = store_cert_insert(st, &m, STORE_SRC_KEY, 0, &cexisted, err,
	    errlen);
	store_certmeta_free(&m);
	if (cid < 0)
		goto fail;
	if ((*id = key_of_cert(st, cid)) < 0) {
		store_sqlerr(st, "lookup", err, errlen);
		goto fail;
	}
	if (*id > 0) {
		*existed = 1;
		if (relocate_key(st, *id, location, err, errlen) == -1)
			goto fail;
		return 0;
	}
	if (insert_key(st, cid, chain, location, err, errlen) == -1)
		goto fail;
	*id = db_last_insert_id(st->db);
	return store_commit(st, err, errlen);
 fail:
	store_rollback(st);
	return -1;
}

/* Remove a key, and its certificate if only the key brought it. */
int
store_key_remove(struct store *st, int64_t id, char fp[65], char *err,
    size_t errlen)
{
	struct db_stmt *stmt;
	int64_t cid = 0;
	int changes = 0;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	if (store_prepare(st, "SELECT k.cert_id, c.fingerprint FROM keys k "
	    "JOIN certificates c ON c.id = k.cert_id WHERE k.id = ?", &stmt,
	    err, errlen) == -1)
		goto fail;
	db_bind_int64(stmt, 1, id);
	if (db_step(stmt) == DB_ROW) {
		cid = db_column_int64(stmt, 0);
		if (fp != NULL)
			snprintf(fp, 65, "%s",
			    db_column_text(stmt, 1));
	}
	db_finalize(stmt);
	if (cid == 0) {
		store_rollback(st);
		return 0;
	}
	if (store_exec_id(st, "DELETE FROM keys WHERE id = ?", id,
	    &changes) == -1 || store_exec_id(st, "DELETE FROM certificates "
	    "WHERE id = ? AND source = 'key'", cid, NULL) == -1) {
		store_sqlerr(st, "delete", err, errlen);
		goto fail;
	}
	return store_commit(st, err, errlen) == -1 ? -1 : 1;
 fail:
	store_rollback(st);
	return -1;
}

/* Every key with its certificate's details. */
int
store_key_list(struct store *st, store_list_cb *cb, void *arg)
{
	struct db_stmt *stmt;

	if (store_prepare(st, "SELECT k.id AS id, c.id AS cert_id, "
	    "c.fingerprint AS fingerprint, c.subject AS subject, "
	    "c.issuer AS issuer, c.serial AS serial, "
	    "c.not_before AS not_before, c.not_after AS not_after, "
	    "c.key_type AS key_type, c.key_bits AS key_bits, "
	    "c.can_sign AS can_sign, c.can_encrypt AS can_encrypt, "
	    "k.added AS added, k.location AS location, "
	    "(SELECT group_concat(email, ',') FROM "
	    "(SELECT email FROM cert_emails WHERE cert_id = c.id "
	    "ORDER BY email) AS ce) AS emails "
	    "FROM keys k JOIN certificates c ON c.id = k.cert_id "
	    "ORDER BY k.id", &stmt, NULL, 0) == -1)
		return -1;
	return store_run_list(stmt, cb, arg);
}

/* A struct store_key from a KEY_SELECT row, without its private key. */
static struct store_key *
row_key(struct db_stmt *stmt)
{
	struct store_key *k;
	const unsigned char *p;
	X509 *x;
	int n;

	k = xcalloc(1, sizeof(*k));
	k->id = db_column_int64(stmt, 0);
	k->cert = store_column_x509(stmt, 3);
	if ((k->chain = sk_X509_new_null()) == NULL)
		alloc_fail("sk_X509_new_null");
	p = db_column_blob(stmt, 2);
	n = db_column_bytes(stmt, 2);
	while (p != NULL && n > 0) {
		const unsigned char *q = p;

		if ((x = d2i_X509(NULL, &p, n)) == NULL)
			break;
		n -= (int)(p - q);
		if (!sk_X509_push(k->chain, x))
			alloc_fail("sk_X509_push");
	}
	if (k->cert == NULL) {
		store_bad_row("keys", k->id, "the DER of its certificate "
		    "(id=%lld) is not one certificate (garbage, truncated, or "
		    "over %d bytes)", (long long)db_column_int64(stmt, 1),
		    STORE_MAX_DER);
		store_key_free(k);
		return NULL;
	}
	return k;
}

/* Our key for signing as email: valid now, newest not_before first. */
struct store_key *
store_key_for(struct store *st, const char *email, time_t now)
{
	struct db_stmt *stmt;
	struct store_key *k = NULL;
	char *e;

	if (store_prepare(st, KEY_SELECT "JOIN cert_emails e ON "
	    "e.cert_id = c.id WHERE e.email = ? AND c.can_sign = 1 AND "
	    "c.not_before <= ? AND c.not_after >= ? "
	    "ORDER BY c.not_before DESC, k.id DESC", &stmt, NULL, 0) == -1)
		return NULL;
	e = store_email_norm(email);
	db_bind_text(stmt, 1, e);
	free(e);
	db_bind_int64(stmt, 2, (int64_t)now);
	db_bind_int64(stmt, 3, (int64_t)now);
	while (k == NULL && db_step(stmt) == DB_ROW)
		k = row_key(stmt);
	db_finalize(stmt);
	return k;
}

/* Every key, for decrypting: a NULL-terminated array. */
struct store_key **
store_all_keys(struct store *st, size_t *np)
{
	struct db_stmt *stmt;
	struct store_key **v, *k;
	size_t n = 0;

	v = xcalloc(1, sizeof(*v));
	if (store_prepare(st, KEY_SELECT "ORDER BY k.id", &stmt, NULL,
	    0) == -1) {
		*np = 0;
		return v;
	}
	while (db_step(stmt) == DB_ROW) {
		if ((k = row_key(stmt)) == NULL)
			continue;
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = k;
		v[n] = NULL;
	}
	db_finalize(stmt);
	*np = n;
	return v;
}

/* Free one key. */
void
store_key_free(struct store_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	X509_free(k->cert);
	sk_X509_pop_free(k->chain, X509_free);
	free(k);
}

/* Free what store_all_keys returned. */
void
store_keys_free(struct store_key **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		store_key_free(v[i]);
	free(v);
}

/* Fill k->pkey from the key file. */
int
store_key_attach(struct store_key *k, struct keyfile *kf, char *err,
    size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char fp[65], *uri = NULL;
	int rc;

	if (keyfile_fingerprint(k->cert, fp) == -1) {
		snprintf(err, errlen, "key %lld: cannot hash its certificate",
		    (long long)k->id);
		return -1;
	}
	if ((rc = keyfile_get(kf, fp, &pkey, &uri, err, errlen)) == 1 &&
	    pkey != NULL) {
		EVP_PKEY_free(k->pkey);
		k->pkey = pkey;
		return 1;
	}
	if (rc == 0)
		snprintf(err, errlen, "key %lld: %s has no private key for "
		    "certificate %s", (long long)k->id, keyfile_path(kf), fp);
	else if (rc == 1) {
		snprintf(err, errlen, "key %lld: on a PKCS#11 token",
		    (long long)k->id);
		rc = 0;
	}
	if (uri != NULL)
		OPENSSL_clear_free(uri, strlen(uri));
	return rc;
}

/* A key row that still holds its key: moved by store_keys_migrate(). */
struct pending {
	int64_t		 id;
	X509		*cert;
	EVP_PKEY	*pkey;
};

/* Free n pending keys. */
static void
pending_free(struct pending *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		X509_free(v[i].cert);
		EVP_PKEY_free(v[i].pkey);
	}
	free(v);
}

/* The certificate and PKCS#8 key of a row (id, der, pkey); -1 if either
 * cannot be decoded. */
static int
pending_row(struct db_stmt *stmt, struct pending *p)
{
	PKCS8_PRIV_KEY_INFO *p8;
	const unsigned char *d;

	p->id = db_column_int64(stmt, 0);
	if ((d = db_column_blob(stmt, 1)) != NULL)
		p->cert = d2i_X509(NULL, &d, db_column_bytes(stmt, 1));
	if ((d = db_column_blob(stmt, 2)) != NULL &&
	    (p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &d,
	    db_column_bytes(stmt, 2))) != NULL) {
		p->pkey = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	return p->cert != NULL && p->pkey != NULL ? 0 : -1;
}

/* Every key row that still holds its key, decoded; *n of them, or NULL
 * (err set) when one cannot be read. */
static struct pending *
pending_keys(struct store *st, size_t *np, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	struct pending *v = NULL;
	size_t n = 0;
	int rc;

	*np = 0;
	if (store_prepare(st, "SELECT k.id, c.der, k.pkey FROM keys k JOIN "
	    "certificates c ON c.id = k.cert_id WHERE length(k.pkey) > 0 "
	    "ORDER BY k.id", &stmt, err, errlen) == -1)
		return NULL;
	while ((rc = db_step(stmt)) == DB_ROW) {
		v = xreallocarray(v, n + 1, sizeof(*v));
		memset(&v[n], 0, sizeof(v[n]));
		if (pending_row(stmt, &v[n++]) == -1) {
			snprintf(err, errlen, "%s: key %lld cannot be decoded",
			    st->path, (long long)v[n - 1].id);
			break;
		}
	}
	db_finalize(stmt);
	if (rc != DB_DONE) {
		if (rc != DB_ROW)
			store_sqlerr(st, "read keys", err, errlen);
		pending_free(v, n);
		return NULL;
	}
	*np = n;
	return v ? v : xcalloc(1, sizeof(*v));
}

/* Empty the moved keys' rows, and note that the file needs a scrub. */
static int
pending_blank(struct store *st, const struct pending *v, size_t n,
    char *err, size_t errlen)
{
	size_t i;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (store_exec_id(st, "UPDATE keys SET pkey = X'', location = "
		    "'file' WHERE id = ?", v[i].id, NULL) == -1)
			goto fail;
	if (store_exec_id(st, "INSERT INTO meta (name, value) VALUES "
	    "('scrub', ?) ON CONFLICT (name) DO UPDATE SET value = "
	    "excluded.value", 1, NULL) == -1)
		goto fail;
	return store_commit(st, err, errlen);
 fail:
	store_sqlerr(st, "empty moved keys", err, errlen);
	store_rollback(st);
	return -1;
}

/* Whether an earlier migration emptied keys but did not scrub the file
 * yet: 1, 0, or -1. */
static int
scrub_pending(struct store *st)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "SELECT 1 FROM meta WHERE name = 'scrub'",
	    &stmt, NULL, 0) == -1)
		return -1;
	rc = db_step(stmt);
	db_finalize(stmt);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

/*
 * The loop-guard secret ("mark") into the key file, made there if neither
 * has one, and out of the store, whose file the network process can read:
 * whoever holds it can write marks that say "already encrypted".  1 when
 * the store's was removed (the file then needs a scrub), 0, or -1.
 */
static int
mark_migrate(struct store *st, struct keyfile *kf, char *err, size_t errlen)
{
	unsigned char m[STORE_MARK_LEN];
	char why[512];
	int have, rc;

	have = store_secret(st, "mark", m, sizeof(m), why, sizeof(why)) == 0;
	if (!have && RAND_bytes(m, sizeof(m)) != 1) {
		snprintf(err, errlen, "no random bytes for the mark secret");
		return -1;
	}
	rc = keyfile_secret_add(kf, "mark", m, sizeof(m), err, errlen);
	OPENSSL_cleanse(m, sizeof(m));
	if (rc == -1)
		return -1;
	if (!have)
		return 0;
	if (store_begin(st, err, errlen) == -1)
		return -1;
	/* SQLite: the file is scrubbed next (VACUUM); PostgreSQL has none */
	if (store_exec(st, "DELETE FROM secrets WHERE name = 'mark'", err,
	    errlen) == -1 || (!store_is_pg(st) && store_exec(st,
	    "INSERT INTO meta (name, value) VALUES ('scrub', 1) "
	    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
	    err, errlen) == -1)) {
		store_rollback(st);
		return -1;
	}
	if (store_commit(st, err, errlen) == -1)
		return -1;
	return store_is_pg(st) ? 0 : 1;
}

/* Move the keys and the mark secret still in the store to the key file. */
int
store_keys_migrate(struct store *st, struct keyfile *kf, char *err,
    size_t errlen)
{
	struct pending *v;
	char why[512];
	size_t i, n;
	int rc = -1, scrub, moved;

	if ((v = pending_keys(st, &n, err, errlen)) == NULL)
		return -1;
	/* a shared database never held private keys (it starts at a schema
	 * without them, and `store migrate` copies a migrated file): rows
	 * that do were not written by us, and cannot be scrubbed there */
	if (n > 0 && store_is_pg(st)) {
		snprintf(err, errlen, "%s: %zu key rows hold a private key: "
		    "not moved from a PostgreSQL store", st->path, n);
		goto done;
	}
	if (store_is_pg(st))
		scrub = 0;
	else if ((scrub = scrub_pending(st)) < 0) {
		store_sqlerr(st, "meta", err, errlen);
		goto done;
	}
	for (i = 0; i < n; i++)
		if (keyfile_put(kf, v[i].cert, v[i].pkey, why,
		    sizeof(why)) == -1) {
			snprintf(err, errlen, "moving key %lld to %s: %s",
			    (long long)v[i].id, keyfile_path(kf), why);
			goto done;
		}
	if (n > 0 && pending_blank(st, v, n, err, errlen) == -1)
		goto done;
	if ((moved = mark_migrate(st, kf, err, errlen)) == -1)
		goto done;
	scrub |= moved;
	/* the old key bytes out of free pages and WAL frames; the flag is
	 * dropped only then, so an interrupted scrub is done next time */
	if ((n > 0 || scrub) && store_scrub(st, err, errlen) == -1)
		goto done;
	if ((n > 0 || scrub) && store_exec_id(st, "DELETE FROM meta WHERE "
	    "name = 'scrub' AND value = ?", 1, NULL) == -1) {
		store_sqlerr(st, "meta", err, errlen);
		goto done;
	}
	rc = (int)n;
 done:
	pending_free(v, n);
	return rc;
}
