/* store_ops.c: partner certificates: add, remove, list, pick the best. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "store_priv.h"
#include "lib/lib.h"

#define CERT_COLUMNS \
	"c.id AS id, c.fingerprint AS fingerprint, c.subject AS subject, " \
	"c.issuer AS issuer, c.serial AS serial, " \
	"c.not_before AS not_before, c.not_after AS not_after, " \
	"c.key_usage AS key_usage, c.ext_key_usage AS ext_key_usage, " \
	"c.can_encrypt AS can_encrypt, c.can_sign AS can_sign, " \
	"c.key_type AS key_type, c.key_bits AS key_bits, " \
	"c.source AS source, c.caps AS caps, c.added AS added, " \
	"c.expires AS expires, " \
	"(SELECT group_concat(email, ',') FROM " \
	"  (SELECT email FROM cert_emails WHERE cert_id = c.id " \
	"   ORDER BY email) AS ce) AS emails "

static const char *source_names[] = { "import", "harvest", "key", "smimea" };

/* Insert the e-mail rows of a new certificate. */
static int
insert_emails(struct store *st, int64_t id, const struct store_certmeta *m,
    char *err, size_t errlen)
{
	struct db_stmt *stmt;
	size_t i;
	int rc;

	if (store_prepare(st, "INSERT INTO cert_emails "
	    "(cert_id, email) VALUES (?, ?) ON CONFLICT (cert_id, email) "
	    "DO NOTHING", &stmt, err, errlen) == -1)
		return -1;
	for (i = 0; i < m->nemails; i++) {
		db_bind_int64(stmt, 1, id);
		db_bind_text(stmt, 2, m->emails[i]);
		rc = db_step(stmt);
		db_reset(stmt);
		if (rc != DB_DONE) {
			db_finalize(stmt);
			return store_sqlerr(st, "insert e-mail", err, errlen);
		}
	}
	db_finalize(stmt);
	return 0;
}

/* Insert one certificate in the open transaction; existing: its id. */
int64_t
store_cert_insert(struct store *st, const struct store_certmeta *m,
    enum store_source src, int caps, int *existed, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int64_t id;
	int rc;

	*existed = 0;
	if ((id = store_find_fp(st, "certificates", m->fingerprint)) != 0) {
		if (id < 0)
			return store_sqlerr(st, "lookup", err, errlen);
		*existed = 1;
		return id;
	}
	if (store_prepare(st, "INSERT INTO certificates (der, fingerprint, "
	    "subject, issuer, serial, not_before, not_after, key_usage, "
	    "ext_key_usage, can_encrypt, can_sign, key_type, key_bits, source, "
	    "caps, added) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &stmt,
	    err, errlen) == -1)
		return -1;
	db_bind_blob(stmt, 1, m->der, m->derlen);
	db_bind_text(stmt, 2, m->fingerprint);
	db_bind_text(stmt, 3, m->subject);
	db_bind_text(stmt, 4, m->issuer);
	db_bind_text(stmt, 5, m->serial);
	db_bind_int64(stmt, 6, m->not_before);
	db_bind_int64(stmt, 7, m->not_after);
	db_bind_int64(stmt, 8, m->key_usage);
	db_bind_int64(stmt, 9, m->ext_key_usage);
	db_bind_int(stmt, 10, m->can_encrypt);
	db_bind_int(stmt, 11, m->can_sign);
	db_bind_text(stmt, 12, m->key_type);
	db_bind_int(stmt, 13, m->key_bits);
	db_bind_text(stmt, 14, source_names[src]);
	db_bind_int(stmt, 15, caps);
	db_bind_int64(stmt, 16, (int64_t)time(NULL));
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_sqlerr(st, "insert certificate", err, errlen);
	id = db_last_insert_id(st->db);
	if (insert_emails(st, id, m, err, errlen) == -1)
		return -1;
	return id;
}

/* Add certificates, all or nothing. */
int
store_cert_add(struct store *st, STACK_OF(X509) *certs,
    enum store_source src, int caps, int64_t *ids, int *existed, char *err,
    size_t errlen)
{
	struct store_certmeta m;
	int i, n = sk_X509_num(certs);
	int64_t id;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (store_certmeta_get(sk_X509_value(certs, i), &m, err,
		    errlen) == -1)
			goto fail;
		if (m.nemails == 0 && X509_check_ca(sk_X509_value(certs,
		    i)) < 1 && !store_is_crl_signer(sk_X509_value(certs, i))) {
			snprintf(err, errlen, "certificate %s has no e-mail "
			    "address", m.subject);
			store_certmeta_free(&m);
			goto fail;
		}
		id = store_cert_insert(st, &m, src, caps, &existed[i], err,
		    errlen);
		store_certmeta_free(&m);
		if (id < 0)
			goto fail;
		ids[i] = id;
	}
	return store_commit(st, err, errlen);
 fail:
	store_rollback(st);
	return -1;
}

/* Remove a partner certificate (not one a key uses). */
int
store_cert_remove(struct store *st, int64_t id, char *err, size_t errlen)
{
	char fk[128];

	snprintf(fk, sizeof(fk), "certificate %lld belongs to a key: remove "
	    "the key instead", (long long)id);
	return store_remove_id(st, "DELETE FROM certificates WHERE id = ?", id,
	    fk, err, errlen);
}

/* Every certificate, or those with the address email. */
int
store_cert_list(struct store *st, const char *email, store_list_cb *cb,
    void *arg)
{
	struct db_stmt *stmt;
	char *e;
	int rc;

	if (email == NULL) {
		if (store_prepare(st, "SELECT " CERT_COLUMNS "FROM "
		    "certificates c ORDER BY c.id", &stmt, NULL, 0) == -1)
			return -1;
		return store_run_list(stmt, cb, arg);
	}
	if (store_prepare(st, "SELECT " CERT_COLUMNS "FROM certificates c "
	    "WHERE c.id IN (SELECT cert_id FROM cert_emails WHERE email = ?) "
	    "ORDER BY c.id", &stmt, NULL, 0) == -1)
		return -1;
	e = store_email_norm(email);
	db_bind_text(stmt, 1, e);
	free(e);
	rc = store_run_list(stmt, cb, arg);
	return rc;
}

/* One certificate: 1 found, 0 not, -1 error. */
int
store_cert_info(struct store *st, int64_t id, store_list_cb *cb, void *arg)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "SELECT " CERT_COLUMNS "FROM certificates c "
	    "WHERE c.id = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_int64(stmt, 1, id);
	rc = store_run_list(stmt, cb, arg);
	return rc < 0 ? -1 : rc > 0;
}

/* X509 from a column (a DER blob) of the current row: the whole value
 * one certificate, nothing after it; NULL when absent or unreadable. */
X509 *
store_column_x509(struct db_stmt *stmt, int col)
{
	const unsigned char *p = db_column_blob(stmt, col), *end;
	int n = db_column_bytes(stmt, col);
	X509 *x;

	if (p == NULL || n <= 0 || n > STORE_MAX_DER)
		return NULL;
	end = p + n;
	x = d2i_X509(NULL, &p, n);
	ERR_clear_error();
	if (x != NULL && p != end) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Whether the certificate's own addresses (SAN rfc822Name, subject
 * emailAddress) hold email, compared lowercased: a cert_emails row is
 * only what some writer of the database said. */
int
store_cert_names(X509 *x, const char *email)
{
	STACK_OF(OPENSSL_STRING) *sk;
	char *e, *a;
	int i, found = 0;

	if ((sk = X509_get1_email(x)) == NULL)
		return 0;
	e = store_email_norm(email);
	for (i = 0; !found && i < sk_OPENSSL_STRING_num(sk); i++) {
		a = store_email_norm(sk_OPENSSL_STRING_value(sk, i));
		found = strcmp(a, e) == 0;
		free(a);
	}
	free(e);
	X509_email_free(sk);
	return found;
}

/* A stored certificate by id (NULL: none, or a row that holds no
 * certificate: logged). */
X509 *
store_cert_get(struct store *st, int64_t id)
{
	struct db_stmt *stmt;
	X509 *x = NULL;

	if (store_prepare(st, "SELECT " STORE_DER_COLUMN("der")
	    " FROM certificates WHERE id = ?", &stmt, NULL, 0) == -1)
		return NULL;
	db_bind_int64(stmt, 1, id);
	if (db_step(stmt) == DB_ROW &&
	    (x = store_column_x509(stmt, 0)) == NULL)
		store_bad_row("certificates", id, "its DER is not one "
		    "certificate (garbage, truncated, or over %d bytes)",
		    STORE_MAX_DER);
	db_finalize(stmt);
	return x;
}

/* The certificate to encrypt to for email at now. */
X509 *
store_best_cert_for(struct store *st, const char *email, time_t now,
    int *caps)
{
	return store_cert_candidate(st, email, now, 0, caps);
}

/* Why the certificate of a candidate row cannot be used for email at now
 * (the row's columns said it could): NULL when it can. */
static const char *
candidate_problem(X509 *x, const char *email, int dns, time_t now)
{
	struct store_certmeta m;
	char err[128];
	const char *why = NULL;

	if (x == NULL)
		return "its DER is not one certificate (garbage, truncated, "
		    "or too large)";
	/* (a certificate from an SMIMEA record is bound to the address
	 * it was found for, not to those it names) */
	if (!dns && !store_cert_names(x, email))
		return "the certificate does not hold the address of its "
		    "cert_emails row";
	if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0 ||
	    X509_cmp_time(X509_get0_notAfter(x), &now) < 0)
		return "the certificate is not valid now, whatever the row "
		    "says";
	if (store_certmeta_get(x, &m, err, sizeof(err)) == -1)
		return "the certificate cannot be read";
	if (!m.can_encrypt)
		why = "the certificate cannot encrypt, whatever the row says";
	store_certmeta_free(&m);
	return why;
}

/* The n-th best (0: best) certificate to encrypt to for email: rows
 * whose certificate is not what their columns say are skipped (logged). */
X509 *
store_cert_candidate(struct store *st, const char *email, time_t now,
    int n, int *caps)
{
	struct db_stmt *stmt;
	const char *why, *src;
	X509 *x = NULL;
	char *e;
	int good = 0;

	if (store_prepare(st, "SELECT c.id, " STORE_DER_COLUMN("c.der")
	    ", c.caps, c.source FROM certificates c "
	    "JOIN cert_emails e ON e.cert_id = c.id "
	    "WHERE e.email = ? AND c.can_encrypt = 1 "
	    "AND c.not_before <= ? AND c.not_after >= ? "
	    "AND (c.expires = 0 OR c.expires > ?) "
	    "ORDER BY c.not_before DESC, c.id DESC LIMIT "
	    STORE_STR(STORE_MAX_CANDIDATES), &stmt, NULL, 0) == -1)
		return NULL;
	e = store_email_norm(email);
	db_bind_text(stmt, 1, e);
	db_bind_int64(stmt, 2, (int64_t)now);
	db_bind_int64(stmt, 3, (int64_t)now);
	db_bind_int64(stmt, 4, (int64_t)now);
	while (db_step(stmt) == DB_ROW) {
		x = store_column_x509(stmt, 1);
		src = db_column_text(stmt, 3);
		if ((why = candidate_problem(x, e, src != NULL &&
		    strcmp(src, "smimea") == 0, now)) != NULL) {
			store_bad_row("certificates", db_column_int64(stmt, 0),
			    "not used for %s: %s", e, why);
			X509_free(x);
			x = NULL;
			continue;
		}
		if (good++ == n) {
			if (caps != NULL)
				*caps = db_column_int(stmt, 2);
			break;
		}
		X509_free(x);
		x = NULL;
	}
	free(e);
	db_finalize(stmt);
	return x;
}

/* Refresh the capabilities of a harvested certificate. */
static int
update_caps(struct store *st, int64_t id, int caps)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "UPDATE certificates SET caps = ? "
	    "WHERE id = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_int(stmt, 1, caps);
	db_bind_int64(stmt, 2, id);
	rc = db_step(stmt);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : -1;
}

/* A certificate from a valid signature: add it or refresh its caps. */
int64_t
store_harvest(struct store *st, X509 *x, STACK_OF(X509) *chain, int caps)
{
	struct store_certmeta m;
	char err[512];
	int64_t id = -1;
	int existed;

	(void)chain;
	if (store_certmeta_get(x, &m, err, sizeof(err)) == -1)
		return -1;
	if (m.nemails == 0 || store_begin(st, err, sizeof(err)) == -1) {
		store_certmeta_free(&m);
		return -1;
	}
	id = store_cert_insert(st, &m, STORE_SRC_HARVEST, caps, &existed,
	    err, sizeof(err));
	store_certmeta_free(&m);
	if (id < 0 || (existed && update_caps(st, id, caps) == -1) ||
	    store_commit(st, err, sizeof(err)) == -1) {
		store_rollback(st);
		return -1;
	}
	return id;
}

/* Delete the rows from DNS whose time is over (their addresses go with
 * them, ON DELETE CASCADE). */
static int
purge_expired(struct store *st, int64_t now, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "DELETE FROM certificates WHERE "
	    "source = 'smimea' AND expires != 0 AND expires <= ?", &stmt, err,
	    errlen) == -1)
		return -1;
	db_bind_int64(stmt, 1, now);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_sqlerr(st, "delete expired", err, errlen);
	return 0;
}

/* Whether row id came from DNS (1), from elsewhere (0), or -1. */
static int
row_from_dns(struct store *st, int64_t id)
{
	struct db_stmt *stmt;
	int rc = -1;

	if (store_prepare(st, "SELECT CASE WHEN source = 'smimea' THEN 1 "
	    "ELSE 0 END FROM certificates "
	    "WHERE id = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_int64(stmt, 1, id);
	if (db_step(stmt) == DB_ROW)
		rc = db_column_int(stmt, 0) != 0;
	db_finalize(stmt);
	return rc;
}

/* Whether row id has the (normalised) address email: 1, 0, -1. */
static int
row_has_email(struct store *st, int64_t id, const char *email)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "SELECT 1 FROM cert_emails WHERE cert_id = ? "
	    "AND email = ?", &stmt, NULL, 0) == -1)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, email);
	rc = db_step(stmt);
	db_finalize(stmt);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

/* Set the expiry of a row from DNS to expires, or keep a later one. */
static int
set_expires(struct store *st, int64_t id, int64_t expires, char *err,
    size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "UPDATE certificates SET expires = "
	    "CASE WHEN expires > ? THEN expires ELSE ? END WHERE id = ?", &stmt, err, errlen) == -1)
		return -1;
	db_bind_int64(stmt, 1, expires);
	db_bind_int64(stmt, 2, expires);
	db_bind_int64(stmt, 3, id);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_sqlerr(st, "set expiry", err, errlen);
	return 0;
}

/* Store a certificate from an SMIMEA record for email (see store.h). */
int64_t
store_smimea_add(struct store *st, X509 *x, const char *email,
    int64_t expires, char *err, size_t errlen)
{
	struct store_certmeta m;
	int64_t id = -1;
	size_t i;
	int existed, dns, has;

	if (store_certmeta_get(x, &m, err, errlen) == -1)
		return -1;
	/* the DNS binds it to this address and to no other */
	for (i = 0; i < m.nemails; i++)
		free(m.emails[i]);
	m.emails = xreallocarray(m.emails, 1, sizeof(*m.emails));
	m.emails[0] = store_email_norm(email);
	m.nemails = 1;
	if (store_begin(st, err, errlen) == -1) {
		store_certmeta_free(&m);
		return -1;
	}
	if (purge_expired(st, (int64_t)time(NULL), err, errlen) == -1 ||
	    (id = store_cert_insert(st, &m, STORE_SRC_SMIMEA, 0, &existed,
	    err, errlen)) < 0)
		goto fail;
	if (existed && (dns = row_from_dns(st, id)) != 1) {
		if (dns == -1 || (has = row_has_email(st, id,
		    m.emails[0])) == -1) {
			store_sqlerr(st, "lookup", err, errlen);
			goto fail;
		}
		if (!has) {
			snprintf(err, errlen, "certificate %s is stored "
			    "already, without %s", m.fingerprint, m.emails[0]);
			goto fail;
		}
	} else if ((existed && insert_emails(st, id, &m, err,
	    errlen) == -1) || set_expires(st, id, expires, err, errlen) == -1)
		goto fail;
	store_certmeta_free(&m);
	return store_commit(st, err, errlen) == -1 ? -1 : id;
 fail:
	store_certmeta_free(&m);
	store_rollback(st);
	return -1;
}
