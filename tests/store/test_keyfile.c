/* test_keyfile.c: the key file (store_keyfile.c) and the move of keys out
 * of the store (store_keys_migrate), on a temporary directory. */
#include "autoconfig.h"

#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sqlite3.h>

#include "lib/lib.h"
#include "store/store.h"
#include "../unit/check.h"

static char root[64];
static EVP_PKEY *rsa_key, *ec_key;
static X509 *rsa_cert, *ec_cert;

/* A self-signed S/MIME certificate for key, with one address. */
static X509 *
mkcert(EVP_PKEY *key, const char *cn, const char *email)
{
	static long serial = 1;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	X509_NAME *name;
	X509 *x;
	char san[128];

	if ((x = X509_new()) == NULL)
		fatalx("X509_new");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof(san), "email:%s", email);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
	    san)) == NULL)
		fatalx("subjectAltName");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, key, EVP_sha256()) == 0)
		fatalx("X509_sign");
	return x;
}

/* root/name into buf. */
static const char *
at(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", root, name);
	return buf;
}

/* Write s to root/name; its path. */
static const char *
write_file(char *buf, size_t len, const char *name, const char *s)
{
	FILE *f;

	if ((f = fopen(at(buf, len, name), "w")) == NULL ||
	    fputs(s, f) == EOF || fclose(f) == EOF)
		fatal("%s", buf);
	return buf;
}

/* The permission bits of path, or -1. */
static int
mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

/* The PKCS#8 DER of key (free it). */
static unsigned char *
pkcs8_der(EVP_PKEY *key, int *len)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	unsigned char *der = NULL;

	if (p8 == NULL || (*len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0)
		fatalx("PKCS#8");
	PKCS8_PRIV_KEY_INFO_free(p8);
	return der;
}

/* Whether the file at path holds the bytes [p, p + n). */
static int
file_has(const char *path, const unsigned char *p, int n)
{
	unsigned char *buf;
	long len;
	FILE *f;
	int found = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return 0;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = xmalloc(len > 0 ? (size_t)len : 1);
	if (len > 0 && fread(buf, 1, (size_t)len, f) == (size_t)len)
		found = memmem(buf, (size_t)len, p, (size_t)n) != NULL;
	fclose(f);
	free(buf);
	return found;
}

/* The same for a database and its WAL. */
static int
db_has(const char *path, const unsigned char *p, int n)
{
	char wal[256];

	snprintf(wal, sizeof(wal), "%s-wal", path);
	return file_has(path, p, n) || file_has(wal, p, n);
}

/* Creation mode whatever the umask; a file others may read is refused. */
static void
test_mode(void)
{
	struct keyfile *kf;
	char path[128], err[512];
	mode_t old;

	old = umask(0277);
	kf = keyfile_open(at(path, sizeof(path), "umask.db"), NULL, err,
	    sizeof(err));
	umask(old);
	CHECK(kf != NULL && mode_of(path) == 0600, "umask 0277: mode %o %s",
	    (unsigned)mode_of(path), kf ? "" : err);
	keyfile_close(kf);
	old = umask(0);
	kf = keyfile_open(at(path, sizeof(path), "umask0.db"), NULL, err,
	    sizeof(err));
	umask(old);
	CHECK(kf != NULL && mode_of(path) == 0600, "umask 0: mode %o",
	    (unsigned)mode_of(path));
	keyfile_close(kf);
	chmod(path, 0644);
	kf = keyfile_open(path, NULL, err, sizeof(err));
	CHECK(kf == NULL && strstr(err, "mode 0644") != NULL &&
	    strstr(err, "chmod 600") != NULL, "0644 accepted: %s",
	    kf ? "" : err);
	keyfile_close(kf);
	chmod(path, 0620);
	kf = keyfile_open(path, NULL, err, sizeof(err));
	CHECK(kf == NULL, "group-writable accepted");
	keyfile_close(kf);
	kf = keyfile_open(at(path, sizeof(path), "nodir/keys.db"), NULL, err,
	    sizeof(err));
	CHECK(kf == NULL && strstr(err, "nodir") != NULL, "missing dir: %s",
	    kf ? "" : err);
	keyfile_close(kf);
}

/* keyfile_foreach: count keys and URIs, check each matches its cert. */
struct tally {
	int	keys, uris, bad;
};

static int
tally_cb(const struct keyfile_entry *e, void *arg)
{
	struct tally *t = arg;
	char fp[65];

	if (keyfile_fingerprint(e->cert, fp) == -1 ||
	    strcmp(fp, e->fingerprint) != 0)
		t->bad++;
	if (e->pkey != NULL && X509_check_private_key(e->cert, e->pkey) == 1)
		t->keys++;
	else if (e->uri != NULL && e->pkey == NULL)
		t->uris++;
	else
		t->bad++;
	return 0;
}

/* put, get, put_uri, foreach, remove, the change counter. */
static void
test_roundtrip(struct keyfile *kf, const char *what)
{
	struct tally t = { 0, 0, 0 };
	EVP_PKEY *k = NULL;
	char fp[65], efp[65], err[512], *uri = NULL;
	int64_t ch = keyfile_changes(kf);

	keyfile_fingerprint(rsa_cert, fp);
	keyfile_fingerprint(ec_cert, efp);
	CHECK(keyfile_put(kf, rsa_cert, ec_key, err, sizeof(err)) == -1 &&
	    strstr(err, "does not match") != NULL, "%s: mismatch: %s", what,
	    err);
	CHECK(keyfile_changes(kf) == ch, "%s: refused put counted", what);
	CHECK(keyfile_put(kf, rsa_cert, rsa_key, err, sizeof(err)) == 0 &&
	    keyfile_put(kf, rsa_cert, rsa_key, err, sizeof(err)) == 0 &&
	    keyfile_put(kf, ec_cert, ec_key, err, sizeof(err)) == 0,
	    "%s: put: %s", what, err);
	CHECK(keyfile_changes(kf) == ch + 3, "%s: changes %lld", what,
	    (long long)keyfile_changes(kf));
	CHECK(keyfile_get(kf, fp, &k, &uri, err, sizeof(err)) == 1 &&
	    k != NULL && uri == NULL && EVP_PKEY_eq(k, rsa_key) == 1,
	    "%s: get rsa: %s", what, err);
	EVP_PKEY_free(k);
	CHECK(keyfile_get(kf, efp, &k, NULL, err, sizeof(err)) == 1 &&
	    EVP_PKEY_eq(k, ec_key) == 1, "%s: get ec: %s", what, err);
	EVP_PKEY_free(k);
	CHECK(keyfile_foreach(kf, tally_cb, &t, err, sizeof(err)) == 0 &&
	    t.keys == 2 && t.uris == 0 && t.bad == 0, "%s: foreach %d %d %d",
	    what, t.keys, t.uris, t.bad);
	CHECK(keyfile_put_uri(kf, ec_cert, "file:/etc/passwd", err,
	    sizeof(err)) == -1, "%s: not a pkcs11 URI accepted", what);
	CHECK(keyfile_put_uri(kf, ec_cert, "pkcs11:token=t;object=ec", err,
	    sizeof(err)) == 0, "%s: put_uri: %s", what, err);
	CHECK(keyfile_get(kf, efp, &k, &uri, err, sizeof(err)) == 1 &&
	    k == NULL && uri != NULL && strcmp(uri, "pkcs11:token=t;object=ec")
	    == 0, "%s: get uri", what);
	free(uri);
	memset(&t, 0, sizeof(t));
	CHECK(keyfile_foreach(kf, tally_cb, &t, err, sizeof(err)) == 0 &&
	    t.keys == 1 && t.uris == 1 && t.bad == 0, "%s: foreach uri",
	    what);
	CHECK(keyfile_remove(kf, efp, err, sizeof(err)) == 1 &&
	    keyfile_remove(kf, efp, err, sizeof(err)) == 0 &&
	    keyfile_has(kf, efp) == 0 && keyfile_has(kf, fp) == 1 &&
	    keyfile_get(kf, efp, &k, &uri, err, sizeof(err)) == 0,
	    "%s: remove", what);
}

/* A second connection (the daemon beside smrelayctl) sees each write. */
static void
test_second(struct keyfile *kf, const char *path, const char *pw)
{
	struct keyfile *kf2;
	EVP_PKEY *k = NULL;
	char err[512], efp[65];
	int64_t before;

	if ((kf2 = keyfile_open(path, pw, err, sizeof(err))) == NULL) {
		CHECK(0, "second open: %s", err);
		return;
	}
	keyfile_fingerprint(ec_cert, efp);
	before = keyfile_changes(kf2);
	CHECK(keyfile_put(kf, ec_cert, ec_key, err, sizeof(err)) == 0 &&
	    keyfile_changes(kf2) == before + 1, "second: changes");
	CHECK(keyfile_get(kf2, efp, &k, NULL, err, sizeof(err)) == 1 &&
	    EVP_PKEY_eq(k, ec_key) == 1, "second: get: %s", err);
	EVP_PKEY_free(k);
	CHECK(keyfile_remove(kf, efp, err, sizeof(err)) == 1 &&
	    keyfile_get(kf2, efp, &k, NULL, err, sizeof(err)) == 0,
	    "second: a removed key is still there");
	keyfile_close(kf2);
}

/* A plain key file: round trip, and the key is plain PKCS#8 in it. */
static void
test_plain(void)
{
	struct keyfile *kf;
	unsigned char *der;
	char path[128], err[512];
	int len;

	kf = keyfile_open(at(path, sizeof(path), "plain.db"), NULL, err,
	    sizeof(err));
	if (kf == NULL) {
		CHECK(0, "open plain: %s", err);
		return;
	}
	CHECK(!keyfile_encrypted(kf), "plain file encrypted");
	test_roundtrip(kf, "plain");
	test_second(kf, path, NULL);
	keyfile_close(kf);
	der = pkcs8_der(rsa_key, &len);
	CHECK(file_has(path, der, len), "no plain PKCS#8 in a plain file");
	OPENSSL_clear_free(der, (size_t)len);
}

/* The passphrase: checked at open; the key encrypted in the file. */
static void
test_encrypted(void)
{
	struct keyfile *kf;
	unsigned char *der;
	char path[128], pw[128], bad[128], empty[128], err[512];
	int len;

	write_file(pw, sizeof(pw), "pw", "correct horse\n");
	write_file(bad, sizeof(bad), "badpw", "battery staple\n");
	write_file(empty, sizeof(empty), "emptypw", "");
	at(path, sizeof(path), "enc.db");
	kf = keyfile_open(path, empty, err, sizeof(err));
	CHECK(kf == NULL && strstr(err, "empty passphrase") != NULL,
	    "empty passphrase: %s", kf ? "" : err);
	keyfile_close(kf);
	kf = keyfile_open(path, at(bad, sizeof(bad), "nopw"), err,
	    sizeof(err));
	CHECK(kf == NULL && strstr(err, "nopw") != NULL,
	    "missing passphrase file accepted");
	write_file(bad, sizeof(bad), "badpw", "battery staple\n");
	keyfile_close(kf);
	if ((kf = keyfile_open(path, pw, err, sizeof(err))) == NULL) {
		CHECK(0, "open encrypted: %s", err);
		return;
	}
	CHECK(keyfile_encrypted(kf), "not encrypted");
	test_roundtrip(kf, "encrypted");
	test_second(kf, path, pw);
	keyfile_close(kf);
	der = pkcs8_der(rsa_key, &len);
	CHECK(!file_has(path, der, len), "plain PKCS#8 in an encrypted file");
	OPENSSL_clear_free(der, (size_t)len);
	kf = keyfile_open(path, bad, err, sizeof(err));
	CHECK(kf == NULL && strstr(err, "wrong passphrase") != NULL,
	    "wrong passphrase: %s", kf ? "opened" : err);
	keyfile_close(kf);
	kf = keyfile_open(path, NULL, err, sizeof(err));
	CHECK(kf == NULL && strstr(err, "encrypted keys") != NULL &&
	    strstr(err, "key_passphrase_file") != NULL,
	    "no passphrase: %s", kf ? "opened" : err);
	keyfile_close(kf);
}

/* Plain and encrypted keys never share a file. */
static void
test_mixing(void)
{
	struct keyfile *kf;
	sqlite3 *db;
	char path[128], pw[128], err[512];
	int rc;

	at(pw, sizeof(pw), "pw");
	/* a plain file with a key, then a passphrase */
	kf = keyfile_open(at(path, sizeof(path), "plain.db"), pw, err,
	    sizeof(err));
	CHECK(kf == NULL && strstr(err, "not encrypted") != NULL,
	    "plain keys under a passphrase: %s", kf ? "opened" : err);
	keyfile_close(kf);
	/* a plain file without keys becomes encrypted */
	keyfile_close(keyfile_open(at(path, sizeof(path), "empty.db"), NULL,
	    err, sizeof(err)));
	kf = keyfile_open(path, pw, err, sizeof(err));
	CHECK(kf != NULL && keyfile_encrypted(kf), "an empty file under a "
	    "passphrase: %s", kf ? "" : err);
	keyfile_close(kf);
	/* whoever writes: the file refuses a plain key in an encrypted file */
	at(path, sizeof(path), "enc.db");
	if (sqlite3_open(path, &db) != SQLITE_OK)
		fatalx("sqlite3_open %s", path);
	rc = sqlite3_exec(db, "INSERT INTO keys (fingerprint, cert, kind, "
	    "pkey, added) VALUES ('00', x'30', 'pkcs8', x'30', 0)", NULL,
	    NULL, NULL);
	CHECK(rc != SQLITE_OK && strstr(sqlite3_errmsg(db), "do not mix"),
	    "plain key inserted in an encrypted file: %s",
	    sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* A store that still holds a key (what schema 6 kept): key added, then
 * its row given the PKCS#8 and location of an upgraded database. */
static struct store *
old_store(const char *path, int64_t *id)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	struct store *st;
	sqlite3 *db;
	sqlite3_stmt *stmt;
	unsigned char *der;
	char err[512];
	int existed, len;

	if ((st = store_open_path(path, err, sizeof(err))) == NULL ||
	    store_key_add(st, rsa_cert, chain, "file", id, &existed, err,
	    sizeof(err)) == -1)
		fatalx("store: %s", err);
	sk_X509_free(chain);
	der = pkcs8_der(rsa_key, &len);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE keys SET pkey = ?, location = "
	    "'store'", -1, &stmt, NULL) != SQLITE_OK)
		fatalx("old store: %s", sqlite3_errmsg(db));
	sqlite3_bind_blob(stmt, 1, der, len, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE)
		fatalx("old store: %s", sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	OPENSSL_clear_free(der, (size_t)len);
	return st;
}

/* store_key_list callback: the location of the one key. */
static int
loc_cb(const struct store_certinfo *ci, void *arg)
{
	snprintf(arg, 64, "%s", ci->location ? ci->location : "(null)");
	return 0;
}

/* Keys leave the store for the key file, and leave no trace in it. */
static void
test_migrate(void)
{
	struct store_key **all;
	struct keyfile *kf;
	struct store *st;
	unsigned char *der;
	char path[128], kpath[128], err[512], loc[64];
	int64_t id;
	size_t n;
	int len;

	st = old_store(at(path, sizeof(path), "old.db"), &id);
	der = pkcs8_der(rsa_key, &len);
	CHECK(db_has(path, der, len), "control: the key is not in old.db");
	if ((kf = keyfile_open(at(kpath, sizeof(kpath), "migrated.db"), NULL,
	    err, sizeof(err))) == NULL)
		fatalx("keyfile: %s", err);
	/* interrupted after the key file's commit: the key is there, the
	 * store still holds it; running again finishes */
	CHECK(keyfile_put(kf, rsa_cert, rsa_key, err, sizeof(err)) == 0,
	    "put: %s", err);
	CHECK(store_keys_migrate(st, kf, err, sizeof(err)) == 1,
	    "migrate: %s", err);
	CHECK(store_keys_migrate(st, kf, err, sizeof(err)) == 0,
	    "migrate again: %s", err);
	store_key_list(st, loc_cb, loc);
	CHECK(strcmp(loc, "file") == 0, "location %s", loc);
	all = store_all_keys(st, &n);
	CHECK(n == 1 && store_key_attach(all[0], kf, err, sizeof(err)) == 1 &&
	    EVP_PKEY_eq(all[0]->pkey, rsa_key) == 1, "key after migrate: %s",
	    err);
	store_keys_free(all);
	CHECK(!db_has(path, der, len), "the key is still in the store file");
	CHECK(file_has(kpath, der, len), "the key is not in the key file");
	store_close(st);
	keyfile_close(kf);
	OPENSSL_clear_free(der, (size_t)len);
}

/* A migration that emptied the keys but was stopped before the scrub:
 * the next run scrubs. */
static void
test_scrub_pending(void)
{
	struct keyfile *kf;
	struct store *st;
	sqlite3 *db;
	unsigned char *der;
	char path[128], kpath[128], err[512];
	int64_t id;
	int len;

	st = old_store(at(path, sizeof(path), "old2.db"), &id);
	der = pkcs8_der(rsa_key, &len);
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db,
	    "UPDATE keys SET pkey = x'', location = 'file';"
	    "INSERT INTO meta (name, value) VALUES ('scrub', 1)", NULL, NULL,
	    NULL) != SQLITE_OK)
		fatalx("scrub: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
	CHECK(db_has(path, der, len), "control: no old key bytes in old2.db");
	if ((kf = keyfile_open(at(kpath, sizeof(kpath), "k2.db"), NULL, err,
	    sizeof(err))) == NULL)
		fatalx("keyfile: %s", err);
	CHECK(store_keys_migrate(st, kf, err, sizeof(err)) == 0,
	    "scrub: %s", err);
	CHECK(!db_has(path, der, len), "pending scrub not done");
	store_close(st);
	keyfile_close(kf);
	OPENSSL_clear_free(der, (size_t)len);
}

int
main(void)
{
	char cmd[128];

	log_init("test_keyfile", 1, LOG_LVL_WARN);
	snprintf(root, sizeof(root), "/tmp/test_keyfile.XXXXXX");
	if (mkdtemp(root) == NULL)
		fatal("mkdtemp");
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	if (rsa_key == NULL || ec_key == NULL)
		fatalx("key generation");
	rsa_cert = mkcert(rsa_key, "me", "me@example.com");
	ec_cert = mkcert(ec_key, "me ec", "me@example.com");
	test_mode();
	test_plain();
	test_encrypted();
	test_mixing();
	test_migrate();
	test_scrub_pending();
	X509_free(rsa_cert);
	X509_free(ec_cert);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
	printf("test_keyfile: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
