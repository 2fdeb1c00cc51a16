/*
 * test_store.c: the certificate store on a temporary directory, or, when
 * SMRELAY_TEST_DATABASE is a postgresql:// URL (tests/store/t_store_pg.sh:
 * a new, empty database each run), on that PostgreSQL database; the
 * SQLite-only cases (file modes, migrations of old files) are skipped
 * there, and its notifications are tested instead.
 */
#include "autoconfig.h"

#include <sys/stat.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sqlite3.h>

#include "lib/lib.h"
#include "store/store.h"
#include "../unit/check.h"

static char root[64];
static EVP_PKEY *rsa_key, *ec_key;
static time_t now;
static const char *database = "sqlite";	/* or SMRELAY_TEST_DATABASE */

/* The store under test: root's SQLite file, or the PostgreSQL database. */
static struct store *
open_main(char *err, size_t errlen)
{
	return store_open_db(database, root, err, errlen);
}

#define DAY 86400

/* One extension from its openssl.cnf-style value; fatal if bad. */
static void
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		fatalx("extension %d=%s", nid, value);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

/*
 * A self-signed certificate: CN, SAN (NULL: none), validity relative to now,
 * key usage and extended key usage (NULL: no extension).
 */
static X509 *
mkcert(EVP_PKEY *key, const char *cn, const char *san, long nb, long na,
    const char *ku, const char *eku)
{
	static long serial = 1;
	X509 *x;
	X509_NAME *name;

	if ((x = X509_new()) == NULL)
		fatalx("X509_new");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, nb, &now);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, na, &now);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (san != NULL)
		add_ext(x, NID_subject_alt_name, san);
	if (ku != NULL)
		add_ext(x, NID_key_usage, ku);
	if (eku != NULL)
		add_ext(x, NID_ext_key_usage, eku);
	if (X509_sign(x, key, EVP_sha256()) == 0)
		fatalx("X509_sign");
	return x;
}

/* A one-certificate stack (the certificate is now owned by it). */
static STACK_OF(X509) *
one(X509 *x)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	sk_X509_push(sk, x);
	return sk;
}

/* Add one certificate; its id (or -1). */
static int64_t
add1(struct store *st, X509 *x)
{
	STACK_OF(X509) *sk = one(X509_dup(x));
	char err[512];
	int64_t id = -1;
	int existed;

	if (store_cert_add(st, sk, STORE_SRC_IMPORT, 0, &id, &existed, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "add: %s\n", err);
		id = -1;
	}
	sk_X509_pop_free(sk, X509_free);
	return id;
}

/* Count rows of a listing. */
static int
count_cb(const struct store_certinfo *ci, void *arg)
{
	(void)ci;
	(*(int *)arg)++;
	return 0;
}

/* Number of certificates (with this address if not NULL). */
static int
ncerts(struct store *st, const char *email)
{
	int n = 0;

	store_cert_list(st, email, count_cb, &n);
	return n;
}

/* What store_smimea_add() wrote for a listing (smimea_cb). */
struct smimea_row {
	char	source[16];
	char	emails[128];
	int64_t	expires;
};

/* Copy out source, addresses and expiry of a row. */
static int
smimea_cb(const struct store_certinfo *ci, void *arg)
{
	struct smimea_row *r = arg;

	snprintf(r->source, sizeof(r->source), "%s", ci->source);
	snprintf(r->emails, sizeof(r->emails), "%s", ci->emails);
	r->expires = ci->expires;
	return 0;
}

/*
 * Certificates from SMIMEA records: bound to the address they were found
 * for (not to those they name), used until their expiry, which a second
 * find for another address extends; a certificate stored from another
 * source is left alone; rows past their expiry are deleted at the next
 * add.
 */
static void
test_smimea(struct store *st)
{
	X509 *dns, *other, *imp, *best;
	struct smimea_row r;
	int64_t id, id2, ch;
	char err[512];

	dns = mkcert(rsa_key, "dns", "email:someone@elsewhere.example",
	    -DAY, 100 * DAY, "keyEncipherment", "emailProtection");
	other = mkcert(rsa_key, "dns2", NULL, -DAY, 100 * DAY,
	    "keyEncipherment", NULL);
	imp = mkcert(rsa_key, "imp", "email:ivy@example.org", -DAY,
	    100 * DAY, "keyEncipherment", NULL);
	ch = store_changes(st);
	id = store_smimea_add(st, dns, "Sam@Partner.example", now + 300, err,
	    sizeof(err));
	CHECK(id > 0 && store_changes(st) == ch + 1, "smimea add: %s", err);
	CHECK(ncerts(st, "sam@partner.example") == 1 &&
	    ncerts(st, "someone@elsewhere.example") == 0,
	    "smimea certificate bound to the wrong addresses");
	memset(&r, 0, sizeof(r));
	CHECK(store_cert_info(st, id, smimea_cb, &r) == 1 &&
	    strcmp(r.source, "smimea") == 0 && r.expires == now + 300 &&
	    strcmp(r.emails, "sam@partner.example") == 0,
	    "smimea row: %s %s %lld", r.source, r.emails,
	    (long long)r.expires);
	best = store_best_cert_for(st, "sam@partner.example", now, NULL);
	CHECK(best != NULL && X509_cmp(best, dns) == 0, "smimea not chosen");
	X509_free(best);
	best = store_best_cert_for(st, "sam@partner.example", now + 300, NULL);
	CHECK(best == NULL, "smimea certificate used after its expiry");
	X509_free(best);

	id2 = store_smimea_add(st, dns, "sue@partner.example", now + 600, err,
	    sizeof(err));
	CHECK(id2 == id, "found again: id %lld, %s", (long long)id2, err);
	id2 = store_smimea_add(st, dns, "sam@partner.example", now + 100, err,
	    sizeof(err));
	memset(&r, 0, sizeof(r));
	CHECK(id2 == id && store_cert_info(st, id, smimea_cb, &r) == 1 &&
	    r.expires == now + 600 && strcmp(r.emails,
	    "sam@partner.example,sue@partner.example") == 0,
	    "found again: %s %lld", r.emails, (long long)r.expires);

	CHECK((id2 = add1(st, imp)) > 0, "import");
	ch = store_changes(st);
	CHECK(store_smimea_add(st, imp, "mallory@partner.example", now + 300,
	    err, sizeof(err)) == -1 && strstr(err, "stored already") != NULL &&
	    store_changes(st) == ch && ncerts(st, "mallory@partner.example") ==
	    0, "an imported certificate rebound from DNS: %s", err);
	CHECK(store_smimea_add(st, imp, "ivy@example.org", now + 300, err,
	    sizeof(err)) == id2, "imported and in DNS: %s", err);
	memset(&r, 0, sizeof(r));
	CHECK(store_cert_info(st, id2, smimea_cb, &r) == 1 &&
	    strcmp(r.source, "import") == 0 && r.expires == 0,
	    "imported row changed: %s %lld", r.source, (long long)r.expires);

	/* past its expiry: deleted by the next add */
	CHECK(store_smimea_add(st, other, "old@partner.example", now - 1, err,
	    sizeof(err)) > 0 && ncerts(st, "old@partner.example") == 1,
	    "add: %s", err);
	CHECK(store_smimea_add(st, dns, "sam@partner.example", now + 600, err,
	    sizeof(err)) == id && ncerts(st, "old@partner.example") == 0,
	    "expired smimea row kept: %s", err);
	X509_free(dns);
	X509_free(other);
	X509_free(imp);
}

/* A second connection (the daemon beside smrelayctl) sees each write. */
static void
test_second_connection(struct store *st)
{
	struct store *st2;
	X509 *x;
	char err[512];
	int64_t before;

	if ((st2 = open_main(err, sizeof(err))) == NULL) {
		CHECK(0, "second open: %s", err);
		return;
	}
	before = store_changes(st2);
	x = mkcert(rsa_key, "zed", "email:zed@example.com", -DAY, DAY, NULL,
	    NULL);
	CHECK(add1(st, x) > 0, "add");
	CHECK(store_changes(st2) == before + 1, "second connection: changes "
	    "%lld -> %lld", (long long)before, (long long)store_changes(st2));
	CHECK(ncerts(st2, "zed@example.com") == 1, "second connection list");
	CHECK(add1(st2, x) > 0 && store_changes(st) == before + 2,
	    "write from the second connection");
	store_close(st2);
	X509_free(x);
}

/* Schema creation, file mode, migrations idempotent, newer schema refused. */
static void
test_open(void)
{
	struct store *st;
	struct stat sb;
	sqlite3 *db;
	char err[512], path[128];
	mode_t old;

	old = umask(0);
	st = store_open(root, err, sizeof(err));
	umask(old);
	CHECK(st != NULL, "store_open: %s", err);
	if (st == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", root, STORE_DB_NAME);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    "db mode %o", (unsigned)(sb.st_mode & 0777));
	CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION, "version %d",
	    store_schema_version(st));
	CHECK(store_changes(st) == 0, "changes %lld",
	    (long long)store_changes(st));
	test_second_connection(st);
	snprintf(path, sizeof(path), "%s/%s-wal", root, STORE_DB_NAME);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    "wal mode %o", (unsigned)(sb.st_mode & 0777));
	store_close(st);
	st = store_open(root, err, sizeof(err));
	CHECK(st != NULL && store_schema_version(st) == STORE_SCHEMA_VERSION,
	    "reopen: %s", err);
	CHECK(st != NULL && store_changes(st) == 2, "reopen changed data");
	store_close(st);

	snprintf(path, sizeof(path), "%s/newer.db", root);
	if (sqlite3_open(path, &db) == SQLITE_OK)
		sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	st = store_open_path(path, err, sizeof(err));
	CHECK(st == NULL && strstr(err, "newer") != NULL,
	    "newer schema accepted: %s", st ? "" : err);
	store_close(st);
}

/*
 * PostgreSQL: the schema made at the current version in an empty
 * database, kept on reopening; a second connection sees each write and is
 * told of it (LISTEN/NOTIFY) without polling (a newer schema refused:
 * t_store_pg.sh).
 */
static void
test_open_pg(void)
{
	struct store *st, *st2;
	struct pollfd pfd;
	X509 *x;
	char err[512];
	int n, fd, i;

	if ((st = open_main(err, sizeof(err))) == NULL) {
		CHECK(0, "store_open_db: %s", err);
		return;
	}
	CHECK(store_is_pg(st), "not on PostgreSQL");
	CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION, "version %d",
	    store_schema_version(st));
	CHECK(store_changes(st) == 0, "changes %lld",
	    (long long)store_changes(st));
	CHECK(store_check_db(database, root, err, sizeof(err)) == 0,
	    "check: %s", err);
	test_second_connection(st);
	store_close(st);
	if ((st = open_main(err, sizeof(err))) == NULL) {
		CHECK(0, "reopen: %s", err);
		return;
	}
	CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION &&
	    store_changes(st) == 2, "reopen changed data");

	/* a listener hears a commit of another connection within a second */
	if ((st2 = open_main(err, sizeof(err))) == NULL) {
		CHECK(0, "listener: %s", err);
		store_close(st);
		return;
	}
	CHECK(store_listen(st2) == 0 && (fd = store_notify_fd(st2)) >= 0,
	    "listen: %s", store_errmsg(st2));
	CHECK(store_notified(st2) == 0, "notified before any change");
	x = mkcert(rsa_key, "una", "email:una@example.com", -DAY, DAY, NULL,
	    NULL);
	CHECK(add1(st, x) > 0, "add");
	X509_free(x);
	n = 0;
	for (i = 0; i < 20 && n == 0; i++) {
		pfd.fd = store_notify_fd(st2);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) == -1)
			break;
		n = store_notified(st2);
	}
	CHECK(n >= 1, "no notification within 2 s: %d", n);
	CHECK(store_notified(st2) == 0, "notification not drained");
	store_close(st2);

	store_close(st);
}

/* The best certificate among expired, newer, wrong-KU ones. */
static void
test_best(struct store *st)
{
	X509 *good_old, *good_new, *expired, *sign_only, *server_eku,
	    *future, *ec_ok, *ec_sign, *best;
	const char *san = "email:Bob@Example.COM";
	int caps = -1;

	good_old = mkcert(rsa_key, "old", san, -10 * DAY, 100 * DAY,
	    "digitalSignature,keyEncipherment", "emailProtection");
	good_new = mkcert(rsa_key, "new", san, -DAY, 100 * DAY,
	    "keyEncipherment", NULL);
	expired = mkcert(rsa_key, "expired", san, -30 * DAY, -DAY,
	    "keyEncipherment", "emailProtection");
	sign_only = mkcert(rsa_key, "signonly", san, -3600, 100 * DAY,
	    "digitalSignature", "emailProtection");
	server_eku = mkcert(rsa_key, "server", san, -1800, 100 * DAY,
	    "keyEncipherment", "serverAuth");
	future = mkcert(rsa_key, "future", san, DAY, 100 * DAY,
	    "keyEncipherment", "emailProtection");
	CHECK(add1(st, good_old) > 0 && add1(st, expired) > 0 &&
	    add1(st, good_new) > 0 && add1(st, sign_only) > 0 &&
	    add1(st, server_eku) > 0 && add1(st, future) > 0, "add");
	CHECK(ncerts(st, "bob@example.com") == 6, "list --email: %d",
	    ncerts(st, "bob@example.com"));

	best = store_best_cert_for(st, "bob@example.com", now, &caps);
	CHECK(best != NULL && X509_cmp(best, good_new) == 0,
	    "best is not the newest usable");
	CHECK(caps == 0, "caps %d", caps);
	X509_free(best);
	best = store_best_cert_for(st, "BOB@example.COM", now, NULL);
	CHECK(best != NULL && X509_cmp(best, good_new) == 0,
	    "lookup is case-sensitive");
	X509_free(best);
	best = store_best_cert_for(st, "bob@example.org", now, NULL);
	CHECK(best == NULL, "cert for another domain");
	X509_free(best);

	/* EC needs keyAgreement; a newer EC cert with it wins. */
	ec_sign = mkcert(ec_key, "ecsign", san, -600, 100 * DAY,
	    "digitalSignature", "emailProtection");
	ec_ok = mkcert(ec_key, "ecok", san, -1200, 100 * DAY,
	    "digitalSignature,keyAgreement", "emailProtection");
	CHECK(add1(st, ec_sign) > 0 && add1(st, ec_ok) > 0, "add ec");
	best = store_best_cert_for(st, "bob@example.com", now, NULL);
	CHECK(best != NULL && X509_cmp(best, ec_ok) == 0,
	    "EC keyAgreement cert not chosen");
	X509_free(best);
	/* Later, when good_new has expired too, nothing is left. */
	best = store_best_cert_for(st, "bob@example.com", now + 200 * DAY,
	    NULL);
	CHECK(best == NULL, "expired cert chosen");
	X509_free(best);

	X509_free(good_old); X509_free(good_new); X509_free(expired);
	X509_free(sign_only); X509_free(server_eku); X509_free(future);
	X509_free(ec_ok); X509_free(ec_sign);
}

/* Duplicates are idempotent; a failing import leaves nothing behind. */
static void
test_tx(struct store *st)
{
	STACK_OF(X509) *sk;
	X509 *a, *noemail;
	char err[512];
	int64_t ids[2], id1, changes;
	int existed[2], n;

	a = mkcert(rsa_key, "carol", "email:carol@example.net", -DAY, DAY,
	    "keyEncipherment", NULL);
	id1 = add1(st, a);
	changes = store_changes(st);
	CHECK(id1 > 0 && add1(st, a) == id1, "duplicate got a new id");
	n = ncerts(st, NULL);

	noemail = mkcert(rsa_key, "nobody", NULL, -DAY, DAY, NULL, NULL);
	sk = sk_X509_new_null();
	sk_X509_push(sk, mkcert(rsa_key, "dave", "email:dave@example.net",
	    -DAY, DAY, NULL, NULL));
	sk_X509_push(sk, noemail);
	CHECK(store_cert_add(st, sk, STORE_SRC_IMPORT, 0, ids, existed, err,
	    sizeof(err)) == -1 && strstr(err, "no e-mail") != NULL,
	    "cert without e-mail accepted");
	CHECK(ncerts(st, NULL) == n && ncerts(st, "dave@example.net") == 0,
	    "half-written import");
	CHECK(store_changes(st) == changes + 1, "change counter %lld vs %lld",
	    (long long)store_changes(st), (long long)changes);
	sk_X509_pop_free(sk, X509_free);

	CHECK(store_cert_remove(st, id1, err, sizeof(err)) == 1, "remove");
	CHECK(store_cert_remove(st, id1, err, sizeof(err)) == 0, "remove 2");
	CHECK(ncerts(st, "carol@example.net") == 0, "removed cert listed");
	X509_free(a);
}

/* Keys: add, find for signing, all keys, removal rules; the private key
 * comes from the key file. */
static void
test_keys(struct store *st)
{
	struct store_key *k, **all;
	struct keyfile *kf;
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *c1, *ca;
	char err[512], path[128], fp[65], rfp[65];
	int64_t id, id2;
	int existed;
	size_t n;

	c1 = mkcert(rsa_key, "me", "email:Me@Example.COM", -DAY, 10 * DAY,
	    "digitalSignature,keyEncipherment", "emailProtection");
	ca = mkcert(ec_key, "my ca", NULL, -DAY, 10 * DAY, NULL, NULL);
	sk_X509_push(chain, ca);
	snprintf(path, sizeof(path), "%s/keys.db", root);
	if ((kf = keyfile_open(path, NULL, err, sizeof(err))) == NULL)
		fatalx("keyfile_open: %s", err);
	CHECK(store_key_add(st, c1, chain, "file", &id, &existed, err,
	    sizeof(err)) == 0 && !existed, "key add: %s", err);
	CHECK(store_key_add(st, c1, chain, "file", &id2, &existed, err,
	    sizeof(err)) == 0 && existed && id2 == id, "key add twice");
	k = store_key_for(st, "me@example.com", now);
	CHECK(k != NULL && X509_cmp(k->cert, c1) == 0 && k->pkey == NULL &&
	    sk_X509_num(k->chain) == 1, "key_for");
	CHECK(k != NULL && store_key_attach(k, kf, err, sizeof(err)) == 0 &&
	    strstr(err, "has no private key") != NULL, "attach, none: %s",
	    err);
	CHECK(keyfile_put(kf, c1, rsa_key, err, sizeof(err)) == 0,
	    "keyfile_put: %s", err);
	CHECK(k != NULL && store_key_attach(k, kf, err, sizeof(err)) == 1 &&
	    EVP_PKEY_eq(k->pkey, rsa_key) == 1, "attach: %s", err);
	store_key_free(k);
	CHECK(store_key_for(st, "me@example.com", now + 20 * DAY) == NULL,
	    "expired key chosen");
	all = store_all_keys(st, &n);
	CHECK(n == 1 && all[0] != NULL && all[1] == NULL &&
	    all[0]->pkey == NULL, "all keys %zu", n);
	store_keys_free(all);
	CHECK(ncerts(st, "me@example.com") == 1, "key cert not listed");
	keyfile_fingerprint(c1, fp);
	CHECK(store_key_remove(st, id, rfp, err, sizeof(err)) == 1 &&
	    strcmp(fp, rfp) == 0, "key remove");
	CHECK(ncerts(st, "me@example.com") == 0, "key cert left behind");
	keyfile_close(kf);
	X509_free(c1);
	sk_X509_pop_free(chain, X509_free);
}

/* Trust anchors: CA only; the X509_STORE holds them. */
static void
test_trust(struct store *st)
{
	STACK_OF(X509) *sk;
	X509_STORE *xs;
	X509 *ca, *leaf;
	char err[512];
	int64_t id;
	int existed;

	ca = mkcert(rsa_key, "root", NULL, -DAY, DAY, "keyCertSign", NULL);
	leaf = mkcert(rsa_key, "leaf", "email:x@example.com", -DAY, DAY,
	    NULL, NULL);
	/* mkcert makes self-signed certs; give the leaf another issuer. */
	X509_NAME_add_entry_by_txt(X509_get_issuer_name(leaf), "O",
	    MBSTRING_ASC, (const unsigned char *)"other", -1, -1, 0);
	X509_sign(leaf, rsa_key, EVP_sha256());
	sk = one(leaf);
	CHECK(store_trust_add(st, sk, &id, &existed, err, sizeof(err)) == -1 &&
	    strstr(err, "not a CA") != NULL, "non-CA anchor accepted");
	sk_X509_pop_free(sk, X509_free);
	sk = one(ca);
	CHECK(store_trust_add(st, sk, &id, &existed, err, sizeof(err)) == 0,
	    "trust add: %s", err);
	xs = store_trust_x509_store(st);
	CHECK(xs != NULL && sk_X509_OBJECT_num(X509_STORE_get0_objects(xs)) ==
	    1, "x509 store");
	X509_STORE_free(xs);
	CHECK(store_trust_remove(st, id, err, sizeof(err)) == 1, "remove");
	sk_X509_pop_free(sk, X509_free);
}

/* A CRL from issuer ca, signed with key, lastUpdate now + off. */
static X509_CRL *
mkcrl(X509 *ca, EVP_PKEY *key, long off)
{
	X509_CRL *crl;
	ASN1_TIME *t;

	if ((crl = X509_CRL_new()) == NULL)
		fatalx("X509_CRL_new");
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	t = X509_time_adj_ex(NULL, 0, off, &now);
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_free(t);
	t = X509_time_adj_ex(NULL, 7, off, &now);
	X509_CRL_set1_nextUpdate(crl, t);
	ASN1_TIME_free(t);
	if (X509_CRL_sign(crl, key, EVP_sha256()) == 0)
		fatalx("X509_CRL_sign");
	return crl;
}

/* CRLs: only from an anchor, verified, newer replaces older. */
static void
test_crl(struct store *st)
{
	STACK_OF(X509) *sk;
	X509_CRL *c1, *c2, *bad, *stranger;
	X509 *ca, *other;
	X509_STORE *xs;
	char err[512];
	int64_t id, id1, id2;
	int existed, n = 0;

	ca = mkcert(rsa_key, "crl root", NULL, -DAY, DAY, NULL, NULL);
	other = mkcert(ec_key, "stranger", NULL, -DAY, DAY, NULL, NULL);
	sk = one(X509_dup(ca));
	CHECK(store_trust_add(st, sk, &id, &existed, err, sizeof(err)) == 0,
	    "trust add: %s", err);
	sk_X509_pop_free(sk, X509_free);
	c1 = mkcrl(ca, rsa_key, -3600);
	c2 = mkcrl(ca, rsa_key, -60);
	bad = mkcrl(ca, ec_key, -30);
	stranger = mkcrl(other, ec_key, -60);
	CHECK(store_crl_add(st, c1, NULL, &id1, &existed, err,
	    sizeof(err)) == 0 &&
	    !existed, "crl add: %s", err);
	CHECK(store_crl_add(st, c1, NULL, &id, &existed, err,
	    sizeof(err)) == 0 &&
	    existed && id == id1, "crl add twice");
	CHECK(store_crl_add(st, bad, NULL, &id, &existed, err,
	    sizeof(err)) == -1 &&
	    strstr(err, "does not verify") != NULL, "forged CRL: %s", err);
	CHECK(store_crl_add(st, stranger, NULL, &id, &existed, err,
	    sizeof(err)) == -1 && strstr(err, "neither a trust anchor") != NULL,
	    "stranger's CRL: %s", err);
	CHECK(store_crl_add(st, c2, NULL, &id2, &existed, err,
	    sizeof(err)) == 0,
	    "newer CRL: %s", err);
	CHECK(store_crl_add(st, c1, NULL, &id, &existed, err,
	    sizeof(err)) == -1 &&
	    strstr(err, "newer CRL") != NULL, "older CRL replaced a newer");
	store_crl_list(st, count_cb, &n);
	CHECK(n == 1, "%d CRLs for one issuer", n);
	xs = store_trust_x509_store(st);
	CHECK(xs != NULL && sk_X509_OBJECT_num(X509_STORE_get0_objects(xs)) ==
	    2, "x509 store with anchor and CRL");
	X509_STORE_free(xs);
	X509_CRL_free(c1); X509_CRL_free(c2); X509_CRL_free(bad);
	X509_CRL_free(stranger); X509_free(ca); X509_free(other);
}

/* Harvesting adds once and refreshes the capabilities. */
static void
test_harvest(struct store *st)
{
	X509 *h, *best;
	int64_t id;
	int caps = 0;

	h = mkcert(ec_key, "harvested", "email:erin@example.org", -DAY, DAY,
	    "digitalSignature,keyAgreement", "emailProtection");
	id = store_harvest(st, h, NULL, 0);
	CHECK(id > 0 && store_harvest(st, h, NULL, STORE_CAP_GCM) == id,
	    "harvest");
	best = store_best_cert_for(st, "erin@example.org", now, &caps);
	CHECK(best != NULL && caps == STORE_CAP_GCM, "harvest caps %d", caps);
	X509_free(best);
	X509_free(h);
}

/*
 * A database as version 1 left it (the released schema, verbatim), with one
 * certificate and a change counter of 5.
 */
static const char v1_db[] =
	"CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"INSERT INTO meta (name, value) VALUES ('changes', 5);"
	"CREATE TABLE certificates (id INTEGER PRIMARY KEY,"
	"  der BLOB NOT NULL, fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL, issuer TEXT NOT NULL, serial TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
	"  key_usage INTEGER NOT NULL, ext_key_usage INTEGER NOT NULL,"
	"  can_encrypt INTEGER NOT NULL, can_sign INTEGER NOT NULL,"
	"  key_type TEXT NOT NULL, key_bits INTEGER NOT NULL,"
	"  source TEXT NOT NULL CHECK (source IN ('import','harvest','key')),"
	"  caps INTEGER NOT NULL DEFAULT 0, added INTEGER NOT NULL);"
	"CREATE TABLE cert_emails (cert_id INTEGER NOT NULL"
	"  REFERENCES certificates(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL, PRIMARY KEY (cert_id, email));"
	"CREATE INDEX cert_emails_email ON cert_emails(email);"
	"CREATE TABLE keys (id INTEGER PRIMARY KEY,"
	"  cert_id INTEGER NOT NULL UNIQUE REFERENCES certificates(id),"
	"  pkey BLOB NOT NULL, chain BLOB NOT NULL, added INTEGER NOT NULL);"
	"CREATE TABLE trust_anchors (id INTEGER PRIMARY KEY,"
	"  der BLOB NOT NULL, fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL, not_after INTEGER NOT NULL,"
	"  added INTEGER NOT NULL);"
	"CREATE TABLE crls (id INTEGER PRIMARY KEY,"
	"  issuer TEXT NOT NULL UNIQUE, der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE, this_update INTEGER NOT NULL,"
	"  next_update INTEGER NOT NULL, added INTEGER NOT NULL);"
	"INSERT INTO certificates VALUES (7, x'3000', 'ab', 'CN=old',"
	"  'CN=ca', '01', 0, 4102444800, -1, -1, 1, 1, 'RSA', 2048,"
	"  'import', 1, 0);"
	"INSERT INTO cert_emails VALUES (7, 'old@example.com');"
	"INSERT INTO keys VALUES (3, 7, x'', x'', 0);"
	"PRAGMA user_version = 1;";

/*
 * The mark secret: 32 bytes, made once per database (other than the main
 * test database's), the same on a second read; a row of another length
 * (written by someone else) is refused, not cut or padded.
 */
static void
test_secret(struct store *st)
{
	unsigned char a[32], b[32], zero[32];
	char err[512];
	struct store *main_st;

	memset(zero, 0, sizeof(zero));
	CHECK(store_secret(st, "mark", a, sizeof(a), err, sizeof(err)) == 0,
	    "secret: %s", err);
	CHECK(store_secret(st, "mark", b, sizeof(b), err, sizeof(err)) == 0 &&
	    memcmp(a, b, sizeof(a)) == 0, "secret changed between reads");
	CHECK(memcmp(a, zero, sizeof(a)) != 0, "secret all zero");
	if ((main_st = store_open(root, err, sizeof(err))) != NULL) {
		CHECK(store_secret(main_st, "mark", b, sizeof(b), err,
		    sizeof(err)) == 0 && memcmp(a, b, sizeof(a)) != 0,
		    "two databases share a secret: %s", err);
		store_close(main_st);
	}
	CHECK(store_secret(st, "mark", a, 16, err, sizeof(err)) == -1 &&
	    strstr(err, "not 16 bytes") != NULL, "short read accepted");
	CHECK(store_secret(st, "none", a, sizeof(a), err, sizeof(err)) == -1,
	    "missing secret accepted");
}

/* Check the certificate row of v1_db survived. */
static int
v1_cert_cb(const struct store_certinfo *ci, void *arg)
{
	(void)arg;
	CHECK(ci->id == 7 && strcmp(ci->subject, "CN=old") == 0 &&
	    strcmp(ci->emails, "old@example.com") == 0 && ci->caps == 1,
	    "v1 certificate: %lld %s %s", (long long)ci->id, ci->subject,
	    ci->emails);
	return 0;
}

/* Version 1 -> current: the data stays, policy_rules appears. */
static void
test_migrate_v1(void)
{
	struct policy_rule *rules;
	struct store *st;
	sqlite3 *db;
	char err[512], path[128];
	size_t n = 99;

	snprintf(path, sizeof(path), "%s/v1.db", root);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, v1_db, NULL, NULL, NULL) != SQLITE_OK) {
		CHECK(0, "v1 database: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}
	sqlite3_close(db);
	if ((st = store_open_path(path, err, sizeof(err))) == NULL) {
		CHECK(0, "open v1: %s", err);
		return;
	}
	CHECK(store_schema_version(st) == STORE_SCHEMA_VERSION, "version %d",
	    store_schema_version(st));
	CHECK(store_changes(st) == 5, "changes %lld after migration",
	    (long long)store_changes(st));
	CHECK(ncerts(st, "OLD@example.com") == 1, "v1 certificate lost");
	CHECK(store_cert_info(st, 7, v1_cert_cb, NULL) == 1, "cert 7");
	n = 0;
	CHECK(store_key_list(st, count_cb, &n) == 1 && n == 1,
	    "v1 key lost in the rebuild of certificates");
	CHECK(store_cert_remove(st, 7, err, sizeof(err)) == -1 &&
	    strstr(err, "belongs to a key") != NULL,
	    "foreign keys off after the migration: %s", err);
	n = 99;
	rules = store_policy_load(st, &n, err, sizeof(err));
	CHECK(rules != NULL && n == 0, "policy_rules after migration: %s",
	    rules ? "" : err);
	store_policy_rules_free(rules, n);
	test_secret(st);
	store_close(st);
	st = store_open_path(path, err, sizeof(err));
	CHECK(st != NULL && store_schema_version(st) == STORE_SCHEMA_VERSION &&
	    ncerts(st, NULL) == 1, "reopen migrated: %s", st ? "" : err);
	store_close(st);
}

/* policy rules: add, load (by id), remove, refusals; each write counts. */
static void
test_policy(struct store *st)
{
	static const struct policy_rule in[] = {
		{ 0, (char *)"*", (char *)"@partner.example", POLICY_ENCRYPT,
		    POLICY_NOCERT_PLAIN, 10 },
		{ 0, (char *)"alice@example.com", (char *)"*", POLICY_SIGN |
		    POLICY_ENCRYPT, POLICY_NOCERT_HOLD, -2 },
		{ 0, NULL, NULL, POLICY_PASS, POLICY_NOCERT_REJECT, 0 },
	};
	struct policy_rule bad = in[0], *out;
	struct policy_set *ps;
	int64_t ids[3], ch, id;
	char err[512];
	size_t i, n;

	for (i = 0; i < 3; i++) {
		ch = store_changes(st);
		CHECK(store_policy_add(st, &in[i], &ids[i], err,
		    sizeof(err)) == 0, "add %zu: %s", i, err);
		CHECK(store_changes(st) == ch + 1, "add %zu: changes", i);
		CHECK(i == 0 || ids[i] > ids[i - 1], "ids not increasing");
	}
	ch = store_changes(st);
	bad.recipient = (char *)"x@";
	CHECK(store_policy_add(st, &bad, &id, err, sizeof(err)) == -1 &&
	    strstr(err, "bad pattern 'x@': empty domain") != NULL,
	    "bad pattern: %s", err);
	bad = in[0];
	bad.actions = POLICY_PASS | POLICY_SIGN;
	CHECK(store_policy_add(st, &bad, &id, err, sizeof(err)) == -1 &&
	    strstr(err, "pass cannot be combined") != NULL,
	    "bad actions: %s", err);
	CHECK(store_changes(st) == ch, "refused adds changed the store");

	out = store_policy_load(st, &n, err, sizeof(err));
	CHECK(out != NULL && n == 3, "load: %zu rules %s", n, out ? "" : err);
	for (i = 0; out != NULL && i < n && i < 3; i++) {
		CHECK(out[i].id == ids[i], "rule %zu id %lld", i,
		    (long long)out[i].id);
		CHECK(strcmp(out[i].sender, in[i].sender ? in[i].sender :
		    "*") == 0 && strcmp(out[i].recipient, in[i].recipient ?
		    in[i].recipient : "*") == 0, "rule %zu patterns %s %s", i,
		    out[i].sender, out[i].recipient);
		CHECK(out[i].actions == in[i].actions &&
		    out[i].nocert == in[i].nocert &&
		    out[i].priority == in[i].priority, "rule %zu fields", i);
	}
	ps = out ? policy_set_new(out, n, err, sizeof(err)) : NULL;
	CHECK(ps != NULL && policy_match(ps, "alice@example.com",
	    "b@partner.example")->id == ids[0], "match: %s", ps ? "" : err);
	policy_set_free(ps);
	store_policy_rules_free(out, n);

	ch = store_changes(st);
	CHECK(store_policy_remove(st, ids[1], err, sizeof(err)) == 1,
	    "remove: %s", err);
	CHECK(store_changes(st) == ch + 1, "remove: changes");
	CHECK(store_policy_remove(st, ids[1], err, sizeof(err)) == 0,
	    "remove again");
	CHECK(store_policy_remove(st, 4242, err, sizeof(err)) == 0,
	    "remove unknown");
	CHECK(store_changes(st) == ch + 1, "no-op removes changed the store");
	out = store_policy_load(st, &n, err, sizeof(err));
	CHECK(out != NULL && n == 2 && out[0].id == ids[0] &&
	    out[1].id == ids[2], "after remove: %zu rules", n);
	store_policy_rules_free(out, n);
}

/* Remove the temporary directory. */
static void
cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
}

int
main(void)
{
	struct store *st;
	char err[512];

	log_init("test_store", 1, LOG_LVL_WARN);
	now = time(NULL);
	snprintf(root, sizeof(root), "/tmp/test_store.XXXXXX");
	if (mkdtemp(root) == NULL)
		fatal("mkdtemp");
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	if (rsa_key == NULL || ec_key == NULL)
		fatalx("key generation");
	if (getenv("SMRELAY_TEST_DATABASE") != NULL)
		database = getenv("SMRELAY_TEST_DATABASE");
	if (store_db_is_pg(database))
		test_open_pg();
	else {
		/* files, modes and old SQLite schemas: SQLite's own */
		test_open();
		test_migrate_v1();
	}
	if ((st = open_main(err, sizeof(err))) == NULL)
		fatalx("store_open: %s", err);
	test_best(st);
	test_tx(st);
	test_smimea(st);
	test_keys(st);
	test_trust(st);
	test_crl(st);
	test_harvest(st);
	test_policy(st);
	store_close(st);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	cleanup();
	if (failures)
		fprintf(stderr, "test_store: %d failure(s)\n", failures);
	else
		printf("test_store: all passed\n");
	return failures ? 1 : 0;
}
