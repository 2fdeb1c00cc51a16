/* store_keyfile.c: the key file (keyfile_* in store.h): our private keys,
 * or the PKCS#11 URIs of keys on a token, each with its certificate and
 * named by the certificate's fingerprint, in a SQLite file of their own,
 * mode 0600, the keys as PKCS#8 or, under a passphrase, as encrypted
 * PKCS#8 that `openssl pkcs8` reads too. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include "lib/lib.h"
#include "store.h"

#define KF_BUSY_TIMEOUT_MS	10000
#define KF_SCHEMA_VERSION	1
/* scrypt as `openssl pkcs8 -scrypt` makes it: N = 2^14 is the most its
 * reader accepts by default (32 MiB). */
#define KF_SCRYPT_N		16384
#define KF_SCRYPT_R		8
#define KF_SCRYPT_P		1
#define KF_SALT_LEN		16
#define KF_VERIFIER_LEN		32	/* random bytes, then their SHA-256 */

#define KIND_PLAIN	"pkcs8"
#define KIND_ENC	"pkcs8-encrypted"
#define KIND_URI	"pkcs11"

/* A decoded key, so that a reader that reloads (the daemon at every store
 * change) pays the passphrase's KDF once per key, not once per reload. */
struct kf_cached {
	char		 fp[65];
	EVP_PKEY	*pkey;
};

struct keyfile {
	sqlite3		*db;
	char		*path;
	char		*pass;		/* NULL: keys are plain PKCS#8 */
	int		 encrypted;
	struct kf_cached *cache;
	size_t		 ncache;
	int64_t		 cache_changes;
};

/*
 * Version 0 -> 1.  meta: the change counter, and 'verifier' when the keys
 * are encrypted.  A trigger refuses a plain key in an encrypted file and
 * an encrypted one in a plain file, whatever writes to it.
 */
static const char kf_schema[] =
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY,"
	"  value NOT NULL);"
	"INSERT INTO meta (name, value) VALUES ('changes', 0);"
	"CREATE TABLE keys ("
	"  fingerprint TEXT PRIMARY KEY,"	/* SHA-256 of cert, lower hex */
	"  cert BLOB NOT NULL,"			/* DER */
	"  kind TEXT NOT NULL CHECK (kind IN ('" KIND_PLAIN "', '"
	    KIND_ENC "', '" KIND_URI "')),"
	"  pkey BLOB,"		/* PKCS#8 or EncryptedPrivateKeyInfo DER */
	"  uri TEXT CHECK (uri IS NULL OR uri LIKE 'pkcs11:%'),"
	"  added INTEGER NOT NULL,"
	"  CHECK ((kind = '" KIND_URI "') = (pkey IS NULL)),"
	"  CHECK ((kind = '" KIND_URI "') = (uri IS NOT NULL)));"
	"CREATE TRIGGER keys_kind BEFORE INSERT ON keys "
	"  WHEN NEW.kind <> '" KIND_URI "' AND (NEW.kind = '" KIND_PLAIN "') = "
	"  EXISTS (SELECT 1 FROM meta WHERE name = 'verifier') "
	"  BEGIN SELECT RAISE(ABORT, 'plain and encrypted keys do not mix "
	"in one key file'); END;"
	"PRAGMA user_version = 1;";

/* "PATH: what: sqlite message" into err; returns -1. */
static int
kf_sqlerr(struct keyfile *kf, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s", kf->path, what,
	    sqlite3_errmsg(kf->db));
	return -1;
}

/* A fixed statement without rows; -1 (err set). */
static int
kf_exec(struct keyfile *kf, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(kf->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", kf->path,
		    msg ? msg : sqlite3_errmsg(kf->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Undo the open transaction, if any. */
static void
kf_rollback(struct keyfile *kf)
{
	if (!sqlite3_get_autocommit(kf->db))
		sqlite3_exec(kf->db, "ROLLBACK", NULL, NULL, NULL);
}

/* One integer from a fixed query; -1 on error or no row. */
static int64_t
kf_int(struct keyfile *kf, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t v = -1;

	if (sqlite3_prepare_v2(kf->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}

/* The passphrase: the first line of path, not empty; NULL (err set). */
static char *
kf_passphrase(const char *path, char *err, size_t errlen)
{
	char *pw;

	if ((pw = store_load_password(path, err, errlen)) == NULL)
		return NULL;
	if (*pw == '\0') {
		snprintf(err, errlen, "key_passphrase_file %s: empty "
		    "passphrase", path);
		free(pw);
		return NULL;
	}
	return pw;
}

static int kf_mode_check(const char *, const struct stat *, char *, size_t);

/*
 * Create the file 0600 (fchmod: the umask may have taken bits away), or
 * check the mode of the one there.  An existing file is only stat()ed,
 * never opened: close() would drop the SQLite locks another connection
 * of this process holds on it.
 */
static int
kf_create(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) != -1) {
		if (fchmod(fd, 0600) == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
		return 0;
	}
	if (errno != EEXIST || stat(path, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return kf_mode_check(path, &sb, err, errlen);
}

/* An existing key file must be a regular file only its owner can read
 * or change. */
static int
kf_mode_check(const char *path, const struct stat *sb, char *err,
    size_t errlen)
{
	if (!S_ISREG(sb->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (sb->st_mode & 077) {
		snprintf(err, errlen, "%s: mode %04o lets others than its "
		    "owner read or change the private keys: chmod 600 %s",
		    path, (unsigned)(sb->st_mode & 07777), path);
		return -1;
	}
	return 0;
}

/* The PBES2 parameters of a new encryption: scrypt, a random salt,
 * AES-256-CBC with a random IV. */
static X509_ALGOR *
kf_pbe(void)
{
	unsigned char salt[KF_SALT_LEN];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return NULL;
	return PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), salt, sizeof(salt),
	    NULL, KF_SCRYPT_N, KF_SCRYPT_R, KF_SCRYPT_P);
}

/* The verifier: KF_VERIFIER_LEN random bytes and their SHA-256, encrypted
 * under the passphrase, as DER (an X509_SIG: algorithm and ciphertext,
 * the shape of an encrypted PKCS#8).  Free it with OPENSSL_free. */
static unsigned char *
kf_verifier_make(struct keyfile *kf, int *len)
{
	unsigned char pt[KF_VERIFIER_LEN + 32], *ct = NULL, *der = NULL;
	X509_ALGOR *pbe, *alg;
	ASN1_OCTET_STRING *oct;
	X509_SIG *sig = NULL;
	int ctlen = 0;

	*len = 0;
	if (RAND_bytes(pt, KF_VERIFIER_LEN) != 1 || EVP_Digest(pt,
	    KF_VERIFIER_LEN, pt + KF_VERIFIER_LEN, NULL, EVP_sha256(),
	    NULL) != 1 || (pbe = kf_pbe()) == NULL)
		return NULL;
	if (PKCS12_pbe_crypt(pbe, kf->pass, (int)strlen(kf->pass), pt,
	    sizeof(pt), &ct, &ctlen, 1) != NULL &&
	    (sig = X509_SIG_new()) != NULL) {
		X509_SIG_getm(sig, &alg, &oct);
		if (X509_ALGOR_copy(alg, pbe) != 1 ||
		    ASN1_OCTET_STRING_set(oct, ct, ctlen) != 1 ||
		    (*len = i2d_X509_SIG(sig, &der)) <= 0)
			der = NULL;
	}
	OPENSSL_cleanse(pt, sizeof(pt));
	OPENSSL_free(ct);
	X509_SIG_free(sig);
	X509_ALGOR_free(pbe);
	return der;
}

/* Whether the passphrase opens the verifier: 0, or -1. */
static int
kf_verifier_check(struct keyfile *kf, const unsigned char *p, int n)
{
	const X509_ALGOR *alg;
	const ASN1_OCTET_STRING *oct;
	unsigned char *pt = NULL, md[32];
	X509_SIG *sig;
	int ptlen = 0, rc = -1;

	if ((sig = d2i_X509_SIG(NULL, &p, n)) == NULL)
		return -1;
	X509_SIG_get0(sig, &alg, &oct);
	if (PKCS12_pbe_crypt(alg, kf->pass, (int)strlen(kf->pass),
	    ASN1_STRING_get0_data(oct), ASN1_STRING_length(oct), &pt, &ptlen,
	    0) != NULL && ptlen == KF_VERIFIER_LEN + 32 &&
	    EVP_Digest(pt, KF_VERIFIER_LEN, md, NULL, EVP_sha256(),
	    NULL) == 1 && CRYPTO_memcmp(md, pt + KF_VERIFIER_LEN, 32) == 0)
		rc = 0;
	if (pt != NULL)
		OPENSSL_clear_free(pt, (size_t)ptlen);
	X509_SIG_free(sig);
	ERR_clear_error();
	return rc;
}

/* Store a new verifier: the file is encrypted from now on. */
static int
kf_verifier_add(struct keyfile *kf, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	unsigned char *der;
	int len, rc;

	if ((der = kf_verifier_make(kf, &len)) == NULL) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: cannot encrypt the verifier",
		    kf->path);
		return -1;
	}
	if (sqlite3_prepare_v2(kf->db, "INSERT INTO meta (name, value) "
	    "VALUES ('verifier', ?)", -1, &stmt, NULL) != SQLITE_OK) {
		OPENSSL_free(der);
		return kf_sqlerr(kf, "prepare", err, errlen);
	}
	sqlite3_bind_blob(stmt, 1, der, len, SQLITE_STATIC);
	rc = sqlite3_step(stmt) == SQLITE_DONE ? 0 :
	    kf_sqlerr(kf, "verifier", err, errlen);
	sqlite3_finalize(stmt);
	OPENSSL_free(der);
	return rc;
}

/*
 * Whether the keys are encrypted, and the passphrase fits (inside the
 * open transaction): an encrypted file needs the right one; a file
 * without a verifier becomes encrypted when given one while it holds no
 * plain key, and is refused when it does.
 */
static int
kf_check_pass(struct keyfile *kf, const char *pwfile, char *err,
    size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc = 0, found = 0;

	if (sqlite3_prepare_v2(kf->db, "SELECT value FROM meta WHERE name = "
	    "'verifier'", -1, &stmt, NULL) != SQLITE_OK)
		return kf_sqlerr(kf, "prepare", err, errlen);
	if (sqlite3_step(stmt) == SQLITE_ROW) {
		found = 1;
		if (kf->pass == NULL) {
			snprintf(err, errlen, "%s holds encrypted keys: set "
			    "key_passphrase_file", kf->path);
			rc = -1;
		} else if (kf_verifier_check(kf, sqlite3_column_blob(stmt, 0),
		    sqlite3_column_bytes(stmt, 0)) == -1) {
			snprintf(err, errlen, "%s: wrong passphrase (in "
			    "key_passphrase_file %s)", kf->path, pwfile);
			rc = -1;
		}
	}
	sqlite3_finalize(stmt);
	if (rc == -1 || found || kf->pass == NULL) {
		kf->encrypted = found;
		return rc;
	}
	if (kf_int(kf, "SELECT count(*) FROM keys WHERE kind = '"
	    KIND_PLAIN "'") != 0) {
		snprintf(err, errlen, "%s holds keys that are not encrypted, "
		    "but key_passphrase_file is set", kf->path);
		return -1;
	}
	kf->encrypted = 1;
	return kf_verifier_add(kf, err, errlen);
}

/* Create the schema if new, check the passphrase, in one transaction. */
static int
kf_setup(struct keyfile *kf, const char *pwfile, char *err, size_t errlen)
{
	int64_t v;

	sqlite3_busy_timeout(kf->db, KF_BUSY_TIMEOUT_MS);
	if (kf_exec(kf, "PRAGMA secure_delete = ON", err, errlen) == -1 ||
	    kf_exec(kf, "BEGIN IMMEDIATE", err, errlen) == -1)
		return -1;
	if ((v = kf_int(kf, "PRAGMA user_version")) < 0) {
		kf_rollback(kf);
		return kf_sqlerr(kf, "user_version", err, errlen);
	}
	if (v > KF_SCHEMA_VERSION) {
		kf_rollback(kf);
		snprintf(err, errlen, "%s: schema version %lld is newer than "
		    "this program knows (%d)", kf->path, (long long)v,
		    KF_SCHEMA_VERSION);
		return -1;
	}
	if ((v == 0 && kf_exec(kf, kf_schema, err, errlen) == -1) ||
	    kf_check_pass(kf, pwfile, err, errlen) == -1 ||
	    kf_exec(kf, "COMMIT", err, errlen) == -1) {
		kf_rollback(kf);
		return -1;
	}
	return 0;
}

/* Open (creating if needed) the key file. */
struct keyfile *
keyfile_open(const char *path, const char *passphrase_file, char *err,
    size_t errlen)
{
	struct keyfile *kf;

	if (kf_create(path, err, errlen) == -1)
		return NULL;
	kf = xcalloc(1, sizeof(*kf));
	kf->path = xstrdup(path);
	kf->cache_changes = -1;
	if (passphrase_file != NULL && (kf->pass = kf_passphrase(
	    passphrase_file, err, errlen)) == NULL) {
		keyfile_close(kf);
		return NULL;
	}
	if (sqlite3_open_v2(path, &kf->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, kf->db ?
		    sqlite3_errmsg(kf->db) : "cannot open");
		keyfile_close(kf);
		return NULL;
	}
	if (kf_setup(kf, passphrase_file, err, errlen) == -1) {
		keyfile_close(kf);
		return NULL;
	}
	return kf;
}

/* Check a key file without writing to it (see store.h). */
int
keyfile_check(const char *path, const char *passphrase_file, char *err,
    size_t errlen)
{
	struct keyfile kf;
	sqlite3_stmt *stmt;
	struct stat sb;
	int rc = -1, step;

	if (stat(path, &sb) == -1)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s",
		    path, strerror(errno)), -1);
	if (kf_mode_check(path, &sb, err, errlen) == -1)
		return -1;
	memset(&kf, 0, sizeof(kf));
	kf.path = (char *)path;
	if (passphrase_file != NULL && (kf.pass = kf_passphrase(
	    passphrase_file, err, errlen)) == NULL)
		return -1;
	if (sqlite3_open_v2(path, &kf.db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, kf.db ?
		    sqlite3_errmsg(kf.db) : "cannot open");
		goto done;
	}
	if (sqlite3_prepare_v2(kf.db, "SELECT value FROM meta WHERE name = "
	    "'verifier'", -1, &stmt, NULL) != SQLITE_OK) {
		kf_sqlerr(&kf, "not a key file", err, errlen);
		goto done;
	}
	step = sqlite3_step(stmt);
	if (step == SQLITE_ROW && kf.pass == NULL)
		snprintf(err, errlen, "%s holds encrypted keys: set "
		    "key_passphrase_file", path);
	else if (step == SQLITE_ROW && kf_verifier_check(&kf,
	    sqlite3_column_blob(stmt, 0), sqlite3_column_bytes(stmt, 0)) == -1)
		snprintf(err, errlen, "%s: wrong passphrase (in "
		    "key_passphrase_file %s)", path, passphrase_file);
	else if (step != SQLITE_ROW && step != SQLITE_DONE)
		kf_sqlerr(&kf, "verifier", err, errlen);
	else if (step == SQLITE_DONE && kf.pass != NULL &&
	    kf_int(&kf, "SELECT count(*) FROM keys WHERE kind = '"
	    KIND_PLAIN "'") != 0)
		snprintf(err, errlen, "%s holds keys that are not encrypted, "
		    "but key_passphrase_file is set", path);
	else
		rc = 0;
	sqlite3_finalize(stmt);
 done:
	if (kf.pass != NULL)
		OPENSSL_clear_free(kf.pass, strlen(kf.pass));
	sqlite3_close(kf.db);
	return rc;
}

/* Forget the decoded keys. */
static void
kf_cache_clear(struct keyfile *kf)
{
	size_t i;

	for (i = 0; i < kf->ncache; i++)
		EVP_PKEY_free(kf->cache[i].pkey);
	free(kf->cache);
	kf->cache = NULL;
	kf->ncache = 0;
}

/* Close the file and forget the passphrase. */
void
keyfile_close(struct keyfile *kf)
{
	if (kf == NULL)
		return;
	kf_cache_clear(kf);
	if (kf->pass != NULL)
		OPENSSL_clear_free(kf->pass, strlen(kf->pass));
	sqlite3_close(kf->db);
	free(kf->path);
	free(kf);
}

/* Its path, for messages and `key list`. */
const char *
keyfile_path(const struct keyfile *kf)
{
	return kf->path;
}

/* Whether keys are stored encrypted under the passphrase. */
int
keyfile_encrypted(const struct keyfile *kf)
{
	return kf->encrypted;
}

/* Lowercase hex SHA-256 of the DER. */
int
keyfile_fingerprint(X509 *x, char fp[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	fp[0] = '\0';
	if (!X509_digest(x, EVP_sha256(), md, &n) || n != 32) {
		ERR_clear_error();
		return -1;
	}
	keyfile_hex(md, fp);
	return 0;
}

/* 32 bytes as 64 lowercase hex digits and a NUL. */
void
keyfile_hex(const unsigned char md[32], char fp[65])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		fp[2 * i] = hex[md[i] >> 4];
		fp[2 * i + 1] = hex[md[i] & 0xf];
	}
	fp[64] = '\0';
}

/* The change counter. */
int64_t
keyfile_changes(struct keyfile *kf)
{
	return kf_int(kf, "SELECT value FROM meta WHERE name = 'changes'");
}

/* The meta row of secret name: "secret:NAME" (NULL if name is too long). */
static const char *
kf_secret_row(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "secret:%s", name);

	return n < 0 || (size_t)n >= len ? NULL : buf;
}

/* The secret called name (see store.h). */
int
keyfile_secret(struct keyfile *kf, const char *name, unsigned char *buf,
    size_t len, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	char row[64];
	int rc = 0, step;

	if (kf_secret_row(name, row, sizeof(row)) == NULL) {
		snprintf(err, errlen, "%s: bad secret name", kf->path);
		return -1;
	}
	if (sqlite3_prepare_v2(kf->db, "SELECT value FROM meta WHERE name = ?",
	    -1, &stmt, NULL) != SQLITE_OK)
		return kf_sqlerr(kf, "secret", err, errlen);
	sqlite3_bind_text(stmt, 1, row, -1, SQLITE_STATIC);
	if ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
		    (size_t)sqlite3_column_bytes(stmt, 0) != len ||
		    sqlite3_column_blob(stmt, 0) == NULL) {
			snprintf(err, errlen, "%s: secret \"%s\" is not %zu "
			    "bytes", kf->path, name, len);
			rc = -1;
		} else {
			memcpy(buf, sqlite3_column_blob(stmt, 0), len);
			rc = 1;
		}
	} else if (step != SQLITE_DONE)
		rc = kf_sqlerr(kf, "secret", err, errlen);
	sqlite3_finalize(stmt);
	return rc;
}

/* Store a secret unless there is one (see store.h). */
int
keyfile_secret_add(struct keyfile *kf, const char *name,
    const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	char row[64];
	int rc;

	if (kf_secret_row(name, row, sizeof(row)) == NULL || len == 0) {
		snprintf(err, errlen, "%s: bad secret", kf->path);
		return -1;
	}
	if (sqlite3_prepare_v2(kf->db, "INSERT OR IGNORE INTO meta (name, "
	    "value) VALUES (?, ?)", -1, &stmt, NULL) != SQLITE_OK)
		return kf_sqlerr(kf, "secret", err, errlen);
	sqlite3_bind_text(stmt, 1, row, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 2, buf, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(stmt) == SQLITE_DONE ? sqlite3_changes(kf->db) > 0 :
	    kf_sqlerr(kf, "secret", err, errlen);
	sqlite3_finalize(stmt);
	return rc;
}

/* The key as stored: PKCS#8, or encrypted PKCS#8 under the passphrase;
 * NULL when it cannot be encoded.  OPENSSL_clear_free(*len) it. */
static unsigned char *
kf_encode(struct keyfile *kf, EVP_PKEY *pkey, int *len)
{
	PKCS8_PRIV_KEY_INFO *p8;
	X509_ALGOR *pbe;
	X509_SIG *sig;
	unsigned char *der = NULL;

	*len = 0;
	if ((p8 = EVP_PKEY2PKCS8(pkey)) == NULL)
		return NULL;
	if (!kf->encrypted)
		*len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	else if ((pbe = kf_pbe()) != NULL) {
		/* PKCS8_set0_pbe clears the DER it encrypts; on failure the
		 * algorithm is still ours */
		if ((sig = PKCS8_set0_pbe(kf->pass, (int)strlen(kf->pass), p8,
		    pbe)) == NULL)
			X509_ALGOR_free(pbe);
		else {
			*len = i2d_X509_SIG(sig, &der);
			X509_SIG_free(sig);
		}
	}
	PKCS8_PRIV_KEY_INFO_free(p8);	/* clears the key it held */
	if (*len <= 0) {
		ERR_clear_error();
		return NULL;
	}
	return der;
}

/* A stored key of this kind back to an EVP_PKEY, or NULL. */
static EVP_PKEY *
kf_decode(struct keyfile *kf, const char *kind, const unsigned char *p,
    int n)
{
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *pkey = NULL;
	X509_SIG *sig;

	if (p == NULL)
		return NULL;
	if (!kf->encrypted && strcmp(kind, KIND_PLAIN) == 0)
		p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, n);
	else if (kf->encrypted && strcmp(kind, KIND_ENC) == 0 &&
	    (sig = d2i_X509_SIG(NULL, &p, n)) != NULL) {
		p8 = PKCS8_decrypt(sig, kf->pass, (int)strlen(kf->pass));
		X509_SIG_free(sig);
	}
	if (p8 != NULL) {
		pkey = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
	}
	ERR_clear_error();
	return pkey;
}

/* Insert or replace one entry and bump the counter, in a transaction. */
static int
kf_write(struct keyfile *kf, X509 *cert, const char *kind,
    const unsigned char *key, int keylen, const char *uri, char *err,
    size_t errlen)
{
	sqlite3_stmt *stmt;
	unsigned char *cder = NULL;
	char fp[65];
	int clen, rc;

	if (keyfile_fingerprint(cert, fp) == -1 ||
	    (clen = i2d_X509(cert, &cder)) <= 0) {
		snprintf(err, errlen, "cannot encode the certificate");
		return -1;
	}
	if (kf_exec(kf, "BEGIN IMMEDIATE", err, errlen) == -1) {
		OPENSSL_free(cder);
		return -1;
	}
	rc = sqlite3_prepare_v2(kf->db, "INSERT OR REPLACE INTO keys "
	    "(fingerprint, cert, kind, pkey, uri, added) "
	    "VALUES (?, ?, ?, ?, ?, ?)", -1, &stmt, NULL) == SQLITE_OK ? 0 :
	    kf_sqlerr(kf, "prepare", err, errlen);
	if (rc == 0) {
		sqlite3_bind_text(stmt, 1, fp, -1, SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 2, cder, clen, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, kind, -1, SQLITE_STATIC);
		if (key != NULL)
			sqlite3_bind_blob(stmt, 4, key, keylen, SQLITE_STATIC);
		if (uri != NULL)
			sqlite3_bind_text(stmt, 5, uri, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 6, (int64_t)time(NULL));
		rc = sqlite3_step(stmt) == SQLITE_DONE ? 0 :
		    kf_sqlerr(kf, "write", err, errlen);
		sqlite3_finalize(stmt);
	}
	OPENSSL_free(cder);
	if (rc == -1 || kf_exec(kf, "UPDATE meta SET value = value + 1 "
	    "WHERE name = 'changes'; COMMIT", err, errlen) == -1) {
		kf_rollback(kf);
		return -1;
	}
	return 0;
}

/* Store the key of cert. */
int
keyfile_put(struct keyfile *kf, X509 *cert, EVP_PKEY *pkey, char *err,
    size_t errlen)
{
	unsigned char *der;
	int len, rc;

	if (X509_check_private_key(cert, pkey) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the key does not match its certificate");
		return -1;
	}
	if ((der = kf_encode(kf, pkey, &len)) == NULL) {
		snprintf(err, errlen, "cannot %s the private key",
		    kf->encrypted ? "encrypt" : "encode");
		return -1;
	}
	rc = kf_write(kf, cert, kf->encrypted ? KIND_ENC : KIND_PLAIN, der,
	    len, NULL, err, errlen);
	OPENSSL_clear_free(der, (size_t)len);
	return rc;
}

/* Store where cert's key lives on a token. */
int
keyfile_put_uri(struct keyfile *kf, X509 *cert, const char *uri, char *err,
    size_t errlen)
{
	if (strncmp(uri, "pkcs11:", 7) != 0) {
		snprintf(err, errlen, "\"%s\" is not a pkcs11: URI", uri);
		return -1;
	}
	return kf_write(kf, cert, KIND_URI, NULL, 0, uri, err, errlen);
}

/* Remove the entry for fp. */
int
keyfile_remove(struct keyfile *kf, const char *fp, char *err,
    size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc = -1, n = 0;

	if (kf_exec(kf, "BEGIN IMMEDIATE", err, errlen) == -1)
		return -1;
	if (sqlite3_prepare_v2(kf->db, "DELETE FROM keys WHERE "
	    "fingerprint = ?", -1, &stmt, NULL) != SQLITE_OK) {
		kf_sqlerr(kf, "prepare", err, errlen);
		kf_rollback(kf);
		return -1;
	}
	sqlite3_bind_text(stmt, 1, fp, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) == SQLITE_DONE) {
		n = sqlite3_changes(kf->db);
		rc = 0;
	} else
		kf_sqlerr(kf, "delete", err, errlen);
	sqlite3_finalize(stmt);
	if (rc == 0 && n == 0) {
		kf_rollback(kf);
		return 0;
	}
	if (rc == -1 || kf_exec(kf, "UPDATE meta SET value = value + 1 "
	    "WHERE name = 'changes'; COMMIT", err, errlen) == -1) {
		kf_rollback(kf);
		return -1;
	}
	return 1;
}

/* Whether fp has an entry. */
int
keyfile_has(struct keyfile *kf, const char *fp)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(kf->db, "SELECT 1 FROM keys WHERE "
	    "fingerprint = ?", -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(stmt, 1, fp, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The decoded key of fp if it is cached (a new reference), else NULL;
 * the cache is dropped first when the file changed since it was made. */
static EVP_PKEY *
kf_cache_find(struct keyfile *kf, const char *fp)
{
	int64_t changes = keyfile_changes(kf);
	size_t i;

	if (changes != kf->cache_changes) {
		kf_cache_clear(kf);
		kf->cache_changes = changes;
		return NULL;
	}
	for (i = 0; i < kf->ncache; i++)
		if (strcmp(kf->cache[i].fp, fp) == 0) {
			EVP_PKEY_up_ref(kf->cache[i].pkey);
			return kf->cache[i].pkey;
		}
	return NULL;
}

/* Remember a decoded key (a reference is taken). */
static void
kf_cache_add(struct keyfile *kf, const char *fp, EVP_PKEY *pkey)
{
	kf->cache = xreallocarray(kf->cache, kf->ncache + 1,
	    sizeof(*kf->cache));
	snprintf(kf->cache[kf->ncache].fp, sizeof(kf->cache[0].fp), "%s", fp);
	EVP_PKEY_up_ref(pkey);
	kf->cache[kf->ncache++].pkey = pkey;
}

/* The key of a row (fingerprint, cert, kind, pkey, uri): a new reference,
 * or NULL (err set) when it cannot be read. */
static EVP_PKEY *
kf_row_key(struct keyfile *kf, sqlite3_stmt *stmt, char *err, size_t errlen)
{
	const char *fp = (const char *)sqlite3_column_text(stmt, 0);
	const char *kind = (const char *)sqlite3_column_text(stmt, 2);
	EVP_PKEY *pkey;

	if (fp == NULL || kind == NULL) {
		snprintf(err, errlen, "%s: a malformed entry", kf->path);
		return NULL;
	}
	if ((pkey = kf_cache_find(kf, fp)) != NULL)
		return pkey;
	if ((pkey = kf_decode(kf, kind, sqlite3_column_blob(stmt, 3),
	    sqlite3_column_bytes(stmt, 3))) == NULL) {
		snprintf(err, errlen, "%s: key %s: %s", kf->path, fp,
		    strcmp(kind, kf->encrypted ? KIND_ENC : KIND_PLAIN) != 0 ?
		    (kf->encrypted ? "not encrypted, in an encrypted key file" :
		    "encrypted, in a key file of plain keys") :
		    "cannot be decoded");
		return NULL;
	}
	kf_cache_add(kf, fp, pkey);
	return pkey;
}

#define KF_SELECT "SELECT fingerprint, cert, kind, pkey, uri FROM keys "

/* The entry for fp. */
int
keyfile_get(struct keyfile *kf, const char *fp, EVP_PKEY **pkey, char **uri,
    char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	const unsigned char *u;
	int rc;

	if (pkey != NULL)
		*pkey = NULL;
	if (uri != NULL)
		*uri = NULL;
	if (sqlite3_prepare_v2(kf->db, KF_SELECT "WHERE fingerprint = ?", -1,
	    &stmt, NULL) != SQLITE_OK)
		return kf_sqlerr(kf, "prepare", err, errlen);
	sqlite3_bind_text(stmt, 1, fp, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(stmt)) == SQLITE_DONE)
		rc = 0;
	else if (rc != SQLITE_ROW)
		rc = kf_sqlerr(kf, "read", err, errlen);
	else if ((u = sqlite3_column_text(stmt, 4)) != NULL) {
		if (uri != NULL)
			*uri = xstrdup((const char *)u);
		rc = 1;
	} else if (pkey == NULL)
		rc = 1;
	else
		rc = (*pkey = kf_row_key(kf, stmt, err, errlen)) ? 1 : -1;
	sqlite3_finalize(stmt);
	return rc;
}

/* Call cb for every entry. */
int
keyfile_foreach(struct keyfile *kf, keyfile_cb *cb, void *arg, char *err,
    size_t errlen)
{
	struct keyfile_entry e;
	sqlite3_stmt *stmt;
	const unsigned char *p;
	char why[512];
	int rc = 0, bad = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(kf->db, KF_SELECT "ORDER BY fingerprint", -1,
	    &stmt, NULL) != SQLITE_OK)
		return kf_sqlerr(kf, "prepare", err, errlen);
	while (rc == 0 && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.fingerprint = (const char *)sqlite3_column_text(stmt, 0);
		e.uri = (const char *)sqlite3_column_text(stmt, 4);
		p = sqlite3_column_blob(stmt, 1);
		if (p == NULL || (e.cert = d2i_X509(NULL, &p,
		    sqlite3_column_bytes(stmt, 1))) == NULL)
			snprintf(why, sizeof(why), "%s: key %s: its certificate "
			    "cannot be decoded", kf->path, e.fingerprint);
		if (e.cert != NULL && (e.uri != NULL ||
		    (e.pkey = kf_row_key(kf, stmt, why, sizeof(why))) != NULL))
			rc = cb(&e, arg);
		else if (bad++ == 0)
			snprintf(err, errlen, "%s", why);
		EVP_PKEY_free(e.pkey);
		X509_free(e.cert);
	}
	if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = kf_sqlerr(kf, "read", err, errlen);
	sqlite3_finalize(stmt);
	return rc != 0 ? rc : bad ? -1 : 0;
}
