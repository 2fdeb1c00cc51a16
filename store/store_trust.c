/* store_trust.c: trust anchors and CRLs, and the X509_STORE built on them. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "store_priv.h"
#include "lib/lib.h"

/* Insert one anchor in the open transaction; existing: its id. */
static int64_t
insert_anchor(struct store *st, const struct store_certmeta *m,
    int *existed, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int64_t id;
	int rc;

	*existed = 0;
	if ((id = store_find_fp(st, "trust_anchors", m->fingerprint)) != 0) {
		if (id < 0)
			return store_sqlerr(st, "lookup", err, errlen);
		*existed = 1;
		return id;
	}
	if (store_prepare(st, "INSERT INTO trust_anchors (der, fingerprint, "
	    "subject, not_after, added) VALUES (?, ?, ?, ?, ?)", &stmt, err,
	    errlen) == -1)
		return -1;
	db_bind_blob(stmt, 1, m->der, m->derlen);
	db_bind_text(stmt, 2, m->fingerprint);
	db_bind_text(stmt, 3, m->subject);
	db_bind_int64(stmt, 4, m->not_after);
	db_bind_int64(stmt, 5, (int64_t)time(NULL));
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_sqlerr(st, "insert anchor", err, errlen);
	return db_last_insert_id(st->db);
}

/* Add CA certificates as anchors, all or nothing. */
int
store_trust_add(struct store *st, STACK_OF(X509) *certs, int64_t *ids,
    int *existed, char *err, size_t errlen)
{
	struct store_certmeta m;
	int i, n = sk_X509_num(certs);

	if (store_begin(st, err, errlen) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (store_certmeta_get(sk_X509_value(certs, i), &m, err,
		    errlen) == -1)
			goto fail;
		if (!m.is_ca) {
			snprintf(err, errlen, "certificate %s is not a CA "
			    "(no basicConstraints CA:TRUE, not self-signed)",
			    m.subject);
			store_certmeta_free(&m);
			goto fail;
		}
		ids[i] = insert_anchor(st, &m, &existed[i], err, errlen);
		store_certmeta_free(&m);
		if (ids[i] < 0)
			goto fail;
	}
	return store_commit(st, err, errlen);
 fail:
	store_rollback(st);
	return -1;
}

/* Remove a trust anchor. */
int
store_trust_remove(struct store *st, int64_t id, char *err, size_t errlen)
{
	return store_remove_id(st, "DELETE FROM trust_anchors WHERE id = ?",
	    id, NULL, err, errlen);
}

/* Remove a CRL. */
int
store_crl_remove(struct store *st, int64_t id, char *err, size_t errlen)
{
	return store_remove_id(st, "DELETE FROM crls WHERE id = ?", id, NULL,
	    err, errlen);
}

/* Every anchor. */
int
store_trust_list(struct store *st, store_list_cb *cb, void *arg)
{
	struct db_stmt *stmt;

	if (store_prepare(st, "SELECT id, subject, not_after, fingerprint, "
	    "added FROM trust_anchors ORDER BY id", &stmt, NULL, 0) == -1)
		return -1;
	return store_run_list(stmt, cb, arg);
}

/* Every CRL (issuer as subject, thisUpdate/nextUpdate as validity). */
int
store_crl_list(struct store *st, store_list_cb *cb, void *arg)
{
	struct db_stmt *stmt;

	if (store_prepare(st, "SELECT id, issuer AS subject, "
	    "this_update AS not_before, next_update AS not_after, "
	    "fingerprint, added, source FROM crls ORDER BY id", &stmt, NULL,
	    0) == -1)
		return -1;
	return store_run_list(stmt, cb, arg);
}

/* x is named like the CRL's issuer (*found) and signed it (*ok). */
static void
crl_signed_by(X509_CRL *crl, X509 *x, int *found, int *ok)
{
	if (X509_NAME_cmp(X509_get_subject_name(x),
	    X509_CRL_get_issuer(crl)) != 0)
		return;
	*found = 1;
	if (X509_CRL_verify(crl, X509_get0_pubkey(x)) == 1)
		*ok = 1;
}

/* 1 if an anchor or a stored intermediate CA named like the CRL's issuer
 * signed it, 0 if none is named so, -2 if some are but none verifies, -1
 * on error. */
static int
crl_check_issuer(struct store *st, X509_CRL *crl)
{
	STACK_OF(X509) *cas;
	struct db_stmt *stmt;
	const unsigned char *p;
	X509 *x;
	int found = 0, ok = 0, i;

	if (store_prepare(st, "SELECT der FROM trust_anchors", &stmt, NULL,
	    0) == -1)
		return -1;
	while (!ok && db_step(stmt) == DB_ROW) {
		p = db_column_blob(stmt, 0);
		if (p == NULL || (x = d2i_X509(NULL, &p,
		    db_column_bytes(stmt, 0))) == NULL)
			continue;
		crl_signed_by(crl, x, &found, &ok);
		X509_free(x);
	}
	db_finalize(stmt);
	/* an intermediate `cert import` took (it chained to an anchor) */
	if (!ok && (cas = store_ca_certs(st)) != NULL) {
		for (i = 0; !ok && i < sk_X509_num(cas); i++)
			crl_signed_by(crl, sk_X509_value(cas, i), &found, &ok);
		sk_X509_pop_free(cas, X509_free);
	}
	return ok ? 1 : found ? -2 : 0;
}

/* thisUpdate of the stored CRL of an issuer and scope, 0 none, -1 error;
 * its id. */
static int64_t
crl_current(struct store *st, const char *issuer, const char *scope,
    int64_t *id)
{
	struct db_stmt *stmt;
	int64_t t = 0;
	int rc;

	if (store_prepare(st, "SELECT id, this_update FROM crls "
	    "WHERE issuer = ? AND scope = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_text(stmt, 1, issuer);
	db_bind_text(stmt, 2, scope);
	if ((rc = db_step(stmt)) == DB_ROW) {
		*id = db_column_int64(stmt, 0);
		t = db_column_int64(stmt, 1);
	} else if (rc != DB_DONE)
		t = -1;
	db_finalize(stmt);
	return t;
}

/* The CRL with fingerprint fp came (again) from source. */
static int
crl_set_source(struct store *st, const char *fp, const char *source,
    char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "UPDATE crls SET source = ? WHERE "
	    "fingerprint = ?", &stmt, err, errlen) == -1)
		return -1;
	db_bind_text(stmt, 1, source);
	db_bind_text(stmt, 2, fp);
	rc = db_step(stmt);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_sqlerr(st, "update CRL", err,
	    errlen);
}

/* Store the CRL in place of the issuer's older one. */
static int
crl_replace(struct store *st, const char *issuer, const char *scope,
    const char *fp, X509_CRL *crl, const char *source, char *err,
    size_t errlen)
{
	unsigned char *der = NULL;
	struct db_stmt *stmt;
	int len, rc;

	if ((len = i2d_X509_CRL(crl, &der)) <= 0) {
		snprintf(err, errlen, "cannot encode the CRL");
		return -1;
	}
	/* the older one of this issuer and scope goes, the new row gets a
	 * new id (the fingerprint is not stored yet: the caller looked) */
	if (store_prepare(st, "DELETE FROM crls WHERE issuer = ? AND "
	    "scope = ?", &stmt, err, errlen) == -1) {
		OPENSSL_free(der);
		return -1;
	}
	db_bind_text(stmt, 1, issuer);
	db_bind_text(stmt, 2, scope);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE) {
		OPENSSL_free(der);
		return store_sqlerr(st, "replace CRL", err, errlen);
	}
	if (store_prepare(st, "INSERT INTO crls (issuer, der, "
	    "fingerprint, this_update, next_update, added, source, scope) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &stmt, err, errlen) == -1) {
		OPENSSL_free(der);
		return -1;
	}
	db_bind_text(stmt, 1, issuer);
	db_bind_blob(stmt, 2, der, len);
	db_bind_text(stmt, 3, fp);
	db_bind_int64(stmt, 4, store_asn1_time(
	    X509_CRL_get0_lastUpdate(crl)));
	db_bind_int64(stmt, 5, store_asn1_time(
	    X509_CRL_get0_nextUpdate(crl)));
	db_bind_int64(stmt, 6, (int64_t)time(NULL));
	db_bind_text(stmt, 7, source != NULL ? source : "import");
	db_bind_text(stmt, 8, scope);
	rc = db_step(stmt);
	db_finalize(stmt);
	OPENSSL_free(der);
	if (rc != DB_DONE)
		return store_sqlerr(st, "insert CRL", err, errlen);
	return 0;
}

/* Add a CRL signed by a stored anchor, replacing the issuer's older one. */
/* The hex SHA-256 of crl's DER (its fingerprint column); 0 or -1. */
static int
crl_fp(X509_CRL *crl, char fp[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (!X509_CRL_digest(crl, EVP_sha256(), md, &mdlen) || mdlen != 32)
		return -1;
	for (i = 0; i < mdlen; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int
store_crl_source(struct store *st, X509_CRL *crl, char *buf, size_t len)
{
	struct db_stmt *stmt;
	const char *src;
	char fp[65];
	int rc;

	if (len > 0)
		buf[0] = '\0';
	if (crl_fp(crl, fp) == -1 || store_prepare(st, "SELECT source FROM "
	    "crls WHERE fingerprint = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_text(stmt, 1, fp);
	if ((rc = db_step(stmt)) == DB_ROW &&
	    (src = db_column_text(stmt, 0)) != NULL && len > 0)
		snprintf(buf, len, "%s", src);
	db_finalize(stmt);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

int
store_crl_add(struct store *st, X509_CRL *crl, const char *source,
    int64_t *id, int *existed, char *err, size_t errlen)
{
	char fp[65], scope[65], *issuer;
	int64_t cur;
	int rc;

	*existed = 0;
	*id = 0;
	if (crl_fp(crl, fp) == -1) {
		snprintf(err, errlen, "cannot encode the CRL");
		return -1;
	}
	issuer = store_name_str(X509_CRL_get_issuer(crl));
	if (store_begin(st, err, errlen) == -1) {
		free(issuer);
		return -1;
	}
	if ((rc = crl_check_issuer(st, crl)) != 1) {
		if (rc == 0)
			snprintf(err, errlen, "CRL issuer %s is neither a "
			    "trust anchor nor an intermediate CA in the store "
			    "(cert import its certificate first)", issuer);
		else if (rc == -2)
			snprintf(err, errlen, "CRL signature does not verify "
			    "against the certificate of %s", issuer);
		else
			store_sqlerr(st, "lookup", err, errlen);
		goto fail;
	}
	store_crl_scope(crl, scope);
	if ((cur = crl_current(st, issuer, scope, id)) < 0) {
		store_sqlerr(st, "lookup", err, errlen);
		goto fail;
	}
	if (store_find_fp(st, "crls", fp) > 0) {
		*existed = 1;
		free(issuer);
		if (source == NULL) {
			store_rollback(st);
			return 0;
		}
		/* fetched again: remember where from */
		if (crl_set_source(st, fp, source, err, errlen) == -1) {
			store_rollback(st);
			return -1;
		}
		return store_commit(st, err, errlen);
	}
	if (cur > store_asn1_time(X509_CRL_get0_lastUpdate(crl))) {
		snprintf(err, errlen, "a newer CRL of %s is already stored "
		    "(CRL %lld)", issuer, (long long)*id);
		goto fail;
	}
	if (crl_replace(st, issuer, scope, fp, crl, source, err,
	    errlen) == -1)
		goto fail;
	*id = db_last_insert_id(st->db);
	free(issuer);
	return store_commit(st, err, errlen);
 fail:
	store_rollback(st);
	free(issuer);
	return -1;
}

/* A CRL from a column (DER): the whole value, at most STORE_MAX_DER
 * bytes; NULL otherwise. */
static X509_CRL *
column_crl(struct db_stmt *stmt, int col)
{
	const unsigned char *p = db_column_blob(stmt, col), *end;
	int n = db_column_bytes(stmt, col);
	X509_CRL *crl;

	if (p == NULL || n <= 0 || n > STORE_MAX_DER)
		return NULL;
	end = p + n;
	crl = d2i_X509_CRL(NULL, &p, n);
	ERR_clear_error();
	if (crl != NULL && p != end) {
		X509_CRL_free(crl);
		return NULL;
	}
	return crl;
}

/* Add the certificates or CRLs of table (columns: id, DER) to the
 * X509_STORE; a row that holds none is skipped (logged). */
static void
add_rows(struct store *st, X509_STORE *xs, const char *sql,
    const char *table, int crls)
{
	struct db_stmt *stmt;
	X509_CRL *crl;
	X509 *x;

	if (store_prepare(st, sql, &stmt, NULL, 0) == -1)
		return;
	while (db_step(stmt) == DB_ROW) {
		if (crls && (crl = column_crl(stmt, 1)) != NULL) {
			X509_STORE_add_crl(xs, crl);
			X509_CRL_free(crl);
		} else if (!crls && (x = store_column_x509(stmt, 1)) != NULL) {
			X509_STORE_add_cert(xs, x);
			X509_free(x);
		} else
			store_bad_row(table, db_column_int64(stmt, 0), "its "
			    "DER is not one %s (garbage, truncated, or over %d "
			    "bytes)", crls ? "CRL" : "certificate",
			    STORE_MAX_DER);
	}
	ERR_clear_error();
	db_finalize(stmt);
}

/* An X509_STORE with every anchor and CRL; the caller sets the flags. */
X509_STORE *
store_trust_x509_store(struct store *st)
{
	X509_STORE *xs;

	if ((xs = X509_STORE_new()) == NULL)
		return NULL;
	add_rows(st, xs, "SELECT id, " STORE_DER_COLUMN("der") " FROM "
	    "trust_anchors ORDER BY id", "trust_anchors", 0);
	add_rows(st, xs, "SELECT id, " STORE_DER_COLUMN("der") " FROM crls "
	    "ORDER BY id", "crls", 1);
	return xs;
}

int
store_ca_chains(struct store *st, X509 *x, STACK_OF(X509) *extra,
    char *why, size_t whylen)
{
	STACK_OF(X509) *untrusted;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *xs;
	int i, rc = -1;

	xs = store_trust_x509_store(st);
	if ((untrusted = store_ca_certs(st)) == NULL || xs == NULL) {
		snprintf(why, whylen, "cannot read the store");
		goto done;
	}
	for (i = 0; i < sk_X509_num(extra); i++)
		if (sk_X509_value(extra, i) != x &&
		    X509_add_cert(untrusted, sk_X509_value(extra, i),
		    X509_ADD_FLAG_UP_REF) != 1)
			goto done;
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, xs, x, untrusted) != 1)
		snprintf(why, whylen, "cannot set up verification");
	else if (X509_verify_cert(ctx) == 1)
		rc = 0;
	else
		snprintf(why, whylen, "does not chain to a trust anchor: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(
		    ctx)));
 done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_free(xs);
	return rc;
}

STACK_OF(X509_CRL) *
store_trust_crls(X509_STORE *xs)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(xs);
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	X509_CRL *crl;
	int i;

	for (i = 0; crls != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
		if (crl == NULL)
			continue;
		X509_CRL_up_ref(crl);
		if (sk_X509_CRL_push(crls, crl) <= 0)
			X509_CRL_free(crl);
	}
	return crls;
}

/* The certificates a query selects (columns: id, DER) from table, those
 * that pass keep(); new references, NULL on error.  A row that holds no
 * certificate is skipped (logged). */
static STACK_OF(X509) *
certs_where(struct store *st, const char *sql, const char *table,
    int (*keep)(X509 *))
{
	STACK_OF(X509) *sk;
	struct db_stmt *stmt;
	X509 *x;

	if ((sk = sk_X509_new_null()) == NULL)
		return NULL;
	if (store_prepare(st, sql, &stmt, NULL, 0) == -1) {
		sk_X509_free(sk);
		return NULL;
	}
	while (db_step(stmt) == DB_ROW) {
		if ((x = store_column_x509(stmt, 1)) == NULL) {
			store_bad_row(table, db_column_int64(stmt, 0), "its "
			    "DER is not one certificate (garbage, truncated, "
			    "or over %d bytes)", STORE_MAX_DER);
			continue;
		}
		if ((keep != NULL && !keep(x)) || sk_X509_push(sk, x) <= 0)
			X509_free(x);
	}
	db_finalize(stmt);
	return sk;
}

/* A CA certificate (basicConstraints CA, or an old v1 root), or a CRL
 * signer (keyUsage cRLSign: RFC 5280 indirect CRLs, separate CRL keys). */
static int
is_ca(X509 *x)
{
	return X509_check_ca(x) >= 1 || store_is_crl_signer(x);
}

/* Every stored certificate without an address that is a CA (the
 * intermediates `cert import` took), new references; NULL on error. */
STACK_OF(X509) *
store_ca_certs(struct store *st)
{
	return certs_where(st, "SELECT c.id, " STORE_DER_COLUMN("c.der")
	    " FROM certificates c WHERE NOT EXISTS (SELECT 1 FROM cert_emails "
	    "e WHERE e.cert_id = c.id) ORDER BY c.id", "certificates", is_ca);
}

/* Every trust anchor's certificate. */
STACK_OF(X509) *
store_anchor_certs(struct store *st)
{
	return certs_where(st, "SELECT id, " STORE_DER_COLUMN("der")
	    " FROM trust_anchors ORDER BY id", "trust_anchors", NULL);
}

/* Every stored certificate (partners, intermediates, our keys'). */
STACK_OF(X509) *
store_all_certs(struct store *st)
{
	return certs_where(st, "SELECT id, " STORE_DER_COLUMN("der")
	    " FROM certificates ORDER BY id", "certificates", NULL);
}

/* When the CRL fetched from url runs out (next_update; 0: none), and
 * whether there is one: 1, 0 none, -1 error. */
int
store_crl_by_source(struct store *st, const char *url, int64_t *next)
{
	struct db_stmt *stmt;
	int rc;

	*next = 0;
	if (store_prepare(st, "SELECT next_update FROM crls WHERE source = ?",
	    &stmt, NULL, 0) == -1)
		return -1;
	db_bind_text(stmt, 1, url);
	if ((rc = db_step(stmt)) == DB_ROW)
		*next = db_column_int64(stmt, 0);
	db_finalize(stmt);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

int
store_ocsp_put(struct store *st, const char *cert_id,
    const struct store_ocsp *o, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	if (store_prepare(st, "INSERT INTO ocsp (cert_id, status, "
	    "this_update, next_update, source, added) VALUES (?, ?, ?, ?, ?, "
	    "?) ON CONFLICT (cert_id) DO UPDATE SET status = excluded.status, "
	    "this_update = excluded.this_update, next_update = "
	    "excluded.next_update, source = excluded.source, added = "
	    "excluded.added", &stmt, err, errlen) == -1) {
		store_rollback(st);
		return -1;
	}
	db_bind_text(stmt, 1, cert_id);
	db_bind_int(stmt, 2, o->status);
	db_bind_int64(stmt, 3, o->this_update);
	db_bind_int64(stmt, 4, o->next_update);
	db_bind_text(stmt, 5, o->source);
	db_bind_int64(stmt, 6, (int64_t)time(NULL));
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE) {
		store_sqlerr(st, "insert OCSP answer", err, errlen);
		store_rollback(st);
		return -1;
	}
	return store_commit(st, err, errlen);
}

int
store_ocsp_get(struct store *st, const char *cert_id, struct store_ocsp *o)
{
	struct db_stmt *stmt;
	const char *src;
	int rc;

	memset(o, 0, sizeof(*o));
	if (store_prepare(st, "SELECT status, this_update, next_update, "
	    "source FROM ocsp WHERE cert_id = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_text(stmt, 1, cert_id);
	if ((rc = db_step(stmt)) == DB_ROW) {
		o->status = db_column_int(stmt, 0);
		o->this_update = db_column_int64(stmt, 1);
		o->next_update = db_column_int64(stmt, 2);
		if ((src = db_column_text(stmt, 3)) != NULL)
			snprintf(o->source, sizeof(o->source), "%s", src);
	}
	db_finalize(stmt);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}
