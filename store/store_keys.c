/* store_keys.c: our own identities (key, certificate, chain). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include <sqlite3.h>

#include "store_priv.h"
#include "lib/lib.h"

#define KEY_SELECT \
	"SELECT k.id AS kid, c.id AS cid, k.pkey, k.chain, c.der " \
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

/* Insert the key row for cert_id. */
static int
insert_key(struct store *st, int64_t cert_id, EVP_PKEY *pkey,
    STACK_OF(X509) *chain, char *err, size_t errlen)
{
	PKCS8_PRIV_KEY_INFO *p8;
	unsigned char *kder = NULL, *cder;
	sqlite3_stmt *stmt;
	int klen, clen = 0, rc;

	if ((p8 = EVP_PKEY2PKCS8(pkey)) == NULL ||
	    (klen = i2d_PKCS8_PRIV_KEY_INFO(p8, &kder)) <= 0) {
		PKCS8_PRIV_KEY_INFO_free(p8);
		snprintf(err, errlen, "cannot encode the private key");
		return -1;
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	if ((cder = chain_der(chain, &clen)) == NULL) {
		OPENSSL_clear_free(kder, klen);
		snprintf(err, errlen, "cannot encode the chain");
		return -1;
	}
	rc = store_prepare(st, "INSERT INTO keys (cert_id, pkey, chain, "
	    "added) VALUES (?, ?, ?, ?)", &stmt, err, errlen);
	if (rc == 0) {
		sqlite3_bind_int64(stmt, 1, cert_id);
		sqlite3_bind_blob(stmt, 2, kder, klen, SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 3, cder, clen, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 4, (int64_t)time(NULL));
		rc = sqlite3_step(stmt) == SQLITE_DONE ? 0 :
		    store_sqlerr(st, "insert key", err, errlen);
		sqlite3_finalize(stmt);
	}
	OPENSSL_clear_free(kder, klen);
	free(cder);
	return rc;
}

/* The key id for a certificate row, 0 none, -1 error. */
static int64_t
key_of_cert(struct store *st, int64_t cert_id)
{
	sqlite3_stmt *stmt;
	int64_t id = 0;
	int rc;

	if (store_prepare(st, "SELECT id FROM keys WHERE cert_id = ?", &stmt,
	    NULL, 0) == -1)
		return -1;
	sqlite3_bind_int64(stmt, 1, cert_id);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		id = sqlite3_column_int64(stmt, 0);
	else if (rc != SQLITE_DONE)
		id = -1;
	sqlite3_finalize(stmt);
	return id;
}

/* Add our identity in one transaction. */
int
store_key_add(struct store *st, EVP_PKEY *pkey, X509 *cert,
    STACK_OF(X509) *chain, int64_t *id, int *existed, char *err,
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
		store_rollback(st);
		return 0;
	}
	if (insert_key(st, cid, pkey, chain, err, errlen) == -1)
		goto fail;
	*id = sqlite3_last_insert_rowid(st->db);
	return store_commit(st, err, errlen);
 fail:
	store_rollback(st);
	return -1;
}

/* Remove a key, and its certificate if only the key brought it. */
int
store_key_remove(struct store *st, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int64_t cid = 0;
	int changes = 0;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	if (store_prepare(st, "SELECT cert_id FROM keys WHERE id = ?", &stmt,
	    err, errlen) == -1)
		goto fail;
	sqlite3_bind_int64(stmt, 1, id);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		cid = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
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
	sqlite3_stmt *stmt;

	if (store_prepare(st, "SELECT k.id AS id, c.id AS cert_id, "
	    "c.fingerprint AS fingerprint, c.subject AS subject, "
	    "c.issuer AS issuer, c.serial AS serial, "
	    "c.not_before AS not_before, c.not_after AS not_after, "
	    "c.key_type AS key_type, c.key_bits AS key_bits, "
	    "c.can_sign AS can_sign, c.can_encrypt AS can_encrypt, "
	    "k.added AS added, (SELECT group_concat(email, ',') FROM "
	    "(SELECT email FROM cert_emails WHERE cert_id = c.id "
	    "ORDER BY email)) AS emails "
	    "FROM keys k JOIN certificates c ON c.id = k.cert_id "
	    "ORDER BY k.id", &stmt, NULL, 0) == -1)
		return -1;
	return store_run_list(stmt, cb, arg);
}

/* A struct store_key from a KEY_SELECT row. */
static struct store_key *
row_key(sqlite3_stmt *stmt)
{
	struct store_key *k;
	const unsigned char *p;
	PKCS8_PRIV_KEY_INFO *p8;
	X509 *x;
	int n;

	k = xcalloc(1, sizeof(*k));
	k->id = sqlite3_column_int64(stmt, 0);
	p = sqlite3_column_blob(stmt, 2);
	n = sqlite3_column_bytes(stmt, 2);
	if (p != NULL && (p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, n)) != NULL) {
		k->pkey = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	p = sqlite3_column_blob(stmt, 4);
	n = sqlite3_column_bytes(stmt, 4);
	if (p != NULL)
		k->cert = d2i_X509(NULL, &p, n);
	if ((k->chain = sk_X509_new_null()) == NULL)
		alloc_fail("sk_X509_new_null");
	p = sqlite3_column_blob(stmt, 3);
	n = sqlite3_column_bytes(stmt, 3);
	while (p != NULL && n > 0) {
		const unsigned char *q = p;

		if ((x = d2i_X509(NULL, &p, n)) == NULL)
			break;
		n -= (int)(p - q);
		if (!sk_X509_push(k->chain, x))
			alloc_fail("sk_X509_push");
	}
	if (k->pkey == NULL || k->cert == NULL) {
		store_key_free(k);
		return NULL;
	}
	return k;
}

/* Our key for signing as email: valid now, newest not_before first. */
struct store_key *
store_key_for(struct store *st, const char *email, time_t now)
{
	sqlite3_stmt *stmt;
	struct store_key *k = NULL;
	char *e;

	if (store_prepare(st, KEY_SELECT "JOIN cert_emails e ON "
	    "e.cert_id = c.id WHERE e.email = ? AND c.can_sign = 1 AND "
	    "c.not_before <= ? AND c.not_after >= ? "
	    "ORDER BY c.not_before DESC, k.id DESC", &stmt, NULL, 0) == -1)
		return NULL;
	e = store_email_norm(email);
	sqlite3_bind_text(stmt, 1, e, -1, SQLITE_TRANSIENT);
	free(e);
	sqlite3_bind_int64(stmt, 2, (int64_t)now);
	sqlite3_bind_int64(stmt, 3, (int64_t)now);
	while (k == NULL && sqlite3_step(stmt) == SQLITE_ROW)
		k = row_key(stmt);
	sqlite3_finalize(stmt);
	return k;
}

/* Every key, for decrypting: a NULL-terminated array. */
struct store_key **
store_all_keys(struct store *st, size_t *np)
{
	sqlite3_stmt *stmt;
	struct store_key **v, *k;
	size_t n = 0;

	v = xcalloc(1, sizeof(*v));
	if (store_prepare(st, KEY_SELECT "ORDER BY k.id", &stmt, NULL,
	    0) == -1) {
		*np = 0;
		return v;
	}
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		if ((k = row_key(stmt)) == NULL)
			continue;
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = k;
		v[n] = NULL;
	}
	sqlite3_finalize(stmt);
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
