/* keyd_p11.c: private keys on PKCS#11 tokens through libp11 (keyd_p11.h):
 * modules shared by path, token and object matching, login, and keys that
 * keep their module loaded. */
#include "autoconfig.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libp11.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/lib.h"

#include "keyd_p11.h"

/*
 * One loaded module.  C_Finalize ends every session of a module in the
 * process, so a module is loaded once however many keys use it, and
 * unloaded when the last of them is freed (refs: keys alive, plus the
 * call under way).
 */
struct p11_module {
	char			*path;
	PKCS11_CTX		*ctx;
	PKCS11_SLOT		*slots;
	unsigned int		 nslots;
	unsigned int		 refs;
	struct p11_module	*next;
};

static struct p11_module *modules;
static int pkey_index = -1;

/* PKCS#11 return values (pkcs11t.h; libp11 puts them on OpenSSL's error
 * queue as reasons of its CKR library) that say the token will never do
 * an operation with a key, whatever the data. */
#define CKR_KEY_TYPE_INCONSISTENT	0x63
#define CKR_KEY_FUNCTION_NOT_PERMITTED	0x68
#define CKR_MECHANISM_INVALID		0x70
#define CKR_MECHANISM_PARAM_INVALID	0x71

/* Where a module is looked for when the URI has no module-path=. */
static const char *const softhsm_paths[] = {
	"/usr/lib/softhsm/libsofthsm2.so",		/* Debian, Ubuntu */
	"/usr/lib64/pkcs11/libsofthsm2.so",		/* Fedora, RHEL */
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",	/* BSDs, source */
	NULL
};
static const char *const proxy_paths[] = {
	KEYD_P11_PROXY,				/* from p11-kit-1.pc */
	"/usr/lib64/p11-kit-proxy.so",
	"/usr/lib/p11-kit-proxy.so",
	NULL
};

/* libp11's or the module's reason for the last failure; the queue is
 * emptied. */
static const char *
p11_why(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : "unknown error";
}

/* Whether path is a regular file; errno otherwise. */
static int
is_file(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return 0;
	if (!S_ISREG(st.st_mode)) {
		errno = EISDIR;
		return 0;
	}
	return 1;
}

/* The module for a URI without module-path= (see keyd_p11.h). */
static const char *
default_module(char *err, size_t errlen)
{
	int i;

	if (KEYD_P11_MODULE[0] != '\0')
		return KEYD_P11_MODULE;
	for (i = 0; proxy_paths[i] != NULL; i++)
		if (proxy_paths[i][0] != '\0' && is_file(proxy_paths[i]))
			return proxy_paths[i];
	for (i = 0; softhsm_paths[i] != NULL; i++)
		if (is_file(softhsm_paths[i]))
			return softhsm_paths[i];
	snprintf(err, errlen, "no PKCS#11 module: give module-path= (neither "
	    "p11-kit-proxy.so nor libsofthsm2.so was found)");
	return NULL;
}

/* Drop a reference; the last one unloads the module. */
static void
module_put(struct p11_module *m)
{
	struct p11_module **pp;

	if (--m->refs > 0)
		return;
	for (pp = &modules; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
	PKCS11_CTX_unload(m->ctx);
	PKCS11_CTX_free(m->ctx);
	ERR_clear_error();
	free(m->path);
	free(m);
}

/* The module at path, loaded and its slots listed, with a reference for
 * the caller; NULL with err. */
static struct p11_module *
module_get(const char *path, char *err, size_t errlen)
{
	struct p11_module *m;

	for (m = modules; m != NULL; m = m->next)
		if (strcmp(m->path, path) == 0) {
			m->refs++;
			return m;
		}
	if (!is_file(path)) {
		snprintf(err, errlen, "PKCS#11 module %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	if ((m->ctx = PKCS11_CTX_new()) == NULL)
		alloc_fail("PKCS11_CTX_new");
	if (PKCS11_CTX_load(m->ctx, path) != 0) {
		snprintf(err, errlen, "cannot load PKCS#11 module %s: %s",
		    path, p11_why());
		PKCS11_CTX_free(m->ctx);
		free(m);
		return NULL;
	}
	m->path = xstrdup(path);
	m->refs = 1;
	m->next = modules;
	modules = m;
	if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
		snprintf(err, errlen, "PKCS#11 module %s: cannot list its "
		    "slots: %s", path, p11_why());
		m->slots = NULL;
		m->nslots = 0;
		module_put(m);
		return NULL;
	}
	return m;
}

/* Whether a token is the one u selects. */
static int
token_matches(const PKCS11_TOKEN *t, const struct keyd_p11_uri *u)
{
	if (!t->initialized)
		return 0;
	return (!(u->have & KEYD_P11_TOKEN) ||
	    (t->label != NULL && strcmp(t->label, u->token) == 0)) &&
	    (!(u->have & KEYD_P11_MANUFACTURER) || (t->manufacturer != NULL &&
	    strcmp(t->manufacturer, u->manufacturer) == 0)) &&
	    (!(u->have & KEYD_P11_SERIAL) ||
	    (t->serialnr != NULL && strcmp(t->serialnr, u->serial) == 0)) &&
	    (!(u->have & KEYD_P11_MODEL) ||
	    (t->model != NULL && strcmp(t->model, u->model) == 0));
}

/* The one slot whose token u selects; NULL with err. */
static PKCS11_SLOT *
token_find(struct p11_module *m, const struct keyd_p11_uri *u, char *err,
    size_t errlen)
{
	PKCS11_SLOT *found = NULL;
	unsigned int i, n = 0;

	for (i = 0; i < m->nslots; i++)
		if (m->slots[i].token != NULL &&
		    token_matches(m->slots[i].token, u)) {
			found = &m->slots[i];
			n++;
		}
	if (n == 1)
		return found;
	if (n == 0)
		snprintf(err, errlen, "no token%s%s%s in PKCS#11 module %s "
		    "matches the URI", u->have & KEYD_P11_TOKEN ? " '" : "",
		    u->have & KEYD_P11_TOKEN ? u->token : "",
		    u->have & KEYD_P11_TOKEN ? "'" : "", m->path);
	else
		snprintf(err, errlen, "%u tokens in PKCS#11 module %s match "
		    "the URI: name one with token= or serial=", n, m->path);
	return NULL;
}

/*
 * The URI's PIN in pin (KEYD_P11_MAX_PIN + 1 bytes): from pin-value=, or
 * the file of pin-source= without its one trailing newline.  1, 0 when
 * the URI has none, -1 with err.
 */
static int
pin_get(const struct keyd_p11_uri *u, char *pin, char *err, size_t errlen)
{
	char buf[KEYD_P11_MAX_PIN + 3];
	ssize_t n;
	size_t len = 0;
	int fd;

	if (u->have & KEYD_P11_PIN_VALUE) {
		memcpy(pin, u->pin, sizeof(u->pin));
		return 1;
	}
	if (!(u->have & KEYD_P11_PIN_SOURCE))
		return 0;
	if ((fd = open(u->pin_file, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "PIN file %s: %s", u->pin_file,
		    strerror(errno));
		return -1;
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len,
	    sizeof(buf) - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > KEYD_P11_MAX_PIN || memchr(buf, '\0', len) != NULL ||
	    memchr(buf, '\n', len) != NULL) {
		snprintf(err, errlen, "PIN file %s: not one line of at most "
		    "%d bytes", u->pin_file, KEYD_P11_MAX_PIN);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	memcpy(pin, buf, len);
	pin[len] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return 1;
}

/*
 * Log in to the slot's token with the URI's PIN: when the token asks for
 * a login (required), or whenever the URI has a PIN (!required).  A token
 * already logged in (another key of it) stays so: PKCS#11 logins are per
 * token, not per key.  0, or -1 with err.
 */
static int
token_login(PKCS11_SLOT *slot, const struct keyd_p11_uri *u, int required,
    char *err, size_t errlen)
{
	char pin[KEYD_P11_MAX_PIN + 1];
	int have, in = 0, rc = 0;

	if ((required && !slot->token->loginRequired) ||
	    (PKCS11_is_logged_in(slot, 0, &in) == 0 && in))
		return 0;
	if ((have = pin_get(u, pin, err, errlen)) == -1)
		return -1;
	if (have == 0) {
		if (required)
			snprintf(err, errlen, "token '%s' needs a PIN: give "
			    "pin-value= or pin-source=", slot->token->label);
		return required ? -1 : 0;
	}
	if (PKCS11_open_session(slot, 0) != 0 ||
	    PKCS11_login(slot, 0, pin) != 0) {
		snprintf(err, errlen, "login to token '%s' failed: %s",
		    slot->token->label, p11_why());
		rc = -1;
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	return rc;
}

/* Parse uri, load its module (a reference for the caller), find its token
 * and log in (see token_login); 0, or -1 with err. */
static int
p11_open(const char *uri, struct keyd_p11_uri *u, int login_required,
    struct p11_module **mp, PKCS11_SLOT **slotp, char *err, size_t errlen)
{
	const char *path;

	if (keyd_p11_uri_parse(uri, u, err, errlen) == -1)
		return -1;
	path = u->have & KEYD_P11_MODULE_PATH ? u->module_path :
	    default_module(err, errlen);
	if (path == NULL || (*mp = module_get(path, err, errlen)) == NULL)
		return -1;
	if ((*slotp = token_find(*mp, u, err, errlen)) == NULL ||
	    token_login(*slotp, u, login_required, err, errlen) == -1) {
		module_put(*mp);
		return -1;
	}
	return 0;
}

/* Whether an object's label and id are those u selects. */
static int
object_matches(const char *label, const unsigned char *id, size_t idlen,
    const struct keyd_p11_uri *u)
{
	return (!(u->have & KEYD_P11_OBJECT) ||
	    (label != NULL && strcmp(label, u->object) == 0)) &&
	    (!(u->have & KEYD_P11_ID) || (idlen == u->idlen &&
	    (idlen == 0 || memcmp(id, u->id, idlen) == 0)));
}

/* The one private key of the token u selects; NULL with err. */
static PKCS11_KEY *
key_find(PKCS11_SLOT *slot, const struct keyd_p11_uri *u, char *err,
    size_t errlen)
{
	PKCS11_KEY *keys, *found = NULL;
	unsigned int i, nkeys, n = 0;

	if (PKCS11_enumerate_keys(slot->token, &keys, &nkeys) != 0) {
		snprintf(err, errlen, "token '%s': cannot list its keys: %s",
		    slot->token->label, p11_why());
		return NULL;
	}
	for (i = 0; i < nkeys; i++)
		if (keys[i].isPrivate && object_matches(keys[i].label,
		    keys[i].id, keys[i].id_len, u)) {
			found = &keys[i];
			n++;
		}
	if (n == 1)
		return found;
	if (n == 0)
		snprintf(err, errlen, "token '%s' has no private key that "
		    "matches the URI's object=/id=", slot->token->label);
	else
		snprintf(err, errlen, "token '%s' has %u private keys that "
		    "match the URI: name one with object= or id=",
		    slot->token->label, n);
	return NULL;
}

/* The token's certificate for key (whose EVP_PKEY is pk): the key's id
 * and public key, else its public key alone; a reference, or NULL. */
static X509 *
cert_for_key(PKCS11_SLOT *slot, const PKCS11_KEY *key, EVP_PKEY *pk)
{
	PKCS11_CERT *certs, *best = NULL;
	unsigned int i, n;

	if (PKCS11_enumerate_certs(slot->token, &certs, &n) != 0) {
		ERR_clear_error();
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (certs[i].x509 == NULL ||
		    X509_check_private_key(certs[i].x509, pk) != 1) {
			ERR_clear_error();
			continue;
		}
		if (key->id_len > 0 && certs[i].id_len == key->id_len &&
		    memcmp(certs[i].id, key->id, key->id_len) == 0) {
			best = &certs[i];
			break;
		}
		if (best == NULL)
			best = &certs[i];
	}
	if (best == NULL || !X509_up_ref(best->x509))
		return NULL;
	return best->x509;
}

/* ex_data of the keys we give out: their module, dropped with the key. */
static void
pkey_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL)
		module_put(ptr);
}

/* A copy of such a key (EVP_PKEY_dup) holds the module too. */
static int
pkey_ex_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
    int idx, long argl, void *argp)
{
	struct p11_module *m = *from_d;

	(void)to;
	(void)from;
	(void)idx;
	(void)argl;
	(void)argp;
	if (m != NULL)
		m->refs++;
	return 1;
}

/*
 * Our own EVP_PKEY around libp11's RSA or EC_KEY.  libp11 keeps the
 * EVP_PKEY it made until its slots are released, so that one's last free
 * would come too late to tell when a key is no longer used; ours is
 * freed by its last user, and its ex_data then drops the module.  The
 * RSA and EC_KEY calls are deprecated in OpenSSL 3, and the only way to
 * share a legacy key between two EVP_PKEYs.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static EVP_PKEY *
pkey_wrap(EVP_PKEY *in)
{
	EVP_PKEY *out;
	RSA *rsa;
	EC_KEY *ec;
	int ok = 0;

	if ((out = EVP_PKEY_new()) == NULL)
		alloc_fail("EVP_PKEY_new");
	if (EVP_PKEY_get_base_id(in) == EVP_PKEY_RSA &&
	    (rsa = EVP_PKEY_get1_RSA(in)) != NULL) {
		ok = EVP_PKEY_set1_RSA(out, rsa);
		RSA_free(rsa);
	} else if (EVP_PKEY_get_base_id(in) == EVP_PKEY_EC &&
	    (ec = EVP_PKEY_get1_EC_KEY(in)) != NULL) {
		ok = EVP_PKEY_set1_EC_KEY(out, ec);
		EC_KEY_free(ec);
	}
	if (!ok) {
		EVP_PKEY_free(out);
		return NULL;
	}
	return out;
}
#pragma GCC diagnostic pop

/* The key of the token u selects, holding a reference to m; NULL with
 * err. */
static EVP_PKEY *
key_load(struct p11_module *m, PKCS11_SLOT *slot,
    const struct keyd_p11_uri *u, PKCS11_KEY **keyp, char *err,
    size_t errlen)
{
	EVP_PKEY *pk, *own;

	if ((*keyp = key_find(slot, u, err, errlen)) == NULL)
		return NULL;
	if ((pk = PKCS11_get_private_key(*keyp)) == NULL) {
		snprintf(err, errlen, "token '%s': cannot use key '%s': %s",
		    slot->token->label, (*keyp)->label != NULL ?
		    (*keyp)->label : "", p11_why());
		return NULL;
	}
	own = pkey_wrap(pk);
	EVP_PKEY_free(pk);
	if (own == NULL) {
		snprintf(err, errlen, "token '%s': key '%s' is neither RSA "
		    "nor EC", slot->token->label, (*keyp)->label != NULL ?
		    (*keyp)->label : "");
		ERR_clear_error();
		return NULL;
	}
	if (pkey_index == -1 && (pkey_index = CRYPTO_get_ex_new_index(
	    CRYPTO_EX_INDEX_EVP_PKEY, 0, NULL, NULL, pkey_ex_dup,
	    pkey_ex_free)) == -1)
		alloc_fail("CRYPTO_get_ex_new_index");
	if (!EVP_PKEY_set_ex_data(own, pkey_index, m))
		alloc_fail("EVP_PKEY_set_ex_data");
	m->refs++;
	return own;
}

/* Load the private key uri names and its certificate (keyd_p11.h). */
int
keyd_p11_load(const char *uri, EVP_PKEY **keyp, X509 **certp, char *err,
    size_t errlen)
{
	struct keyd_p11_uri u;
	struct p11_module *m;
	PKCS11_SLOT *slot;
	PKCS11_KEY *key;

	*keyp = NULL;
	*certp = NULL;
	if (p11_open(uri, &u, 1, &m, &slot, err, errlen) == -1) {
		keyd_p11_uri_clear(&u);
		return -1;
	}
	if (u.type == KEYD_P11_CERT)
		snprintf(err, errlen, "type=cert names a certificate: a key "
		    "URI names the private key (type=private)");
	else if ((*keyp = key_load(m, slot, &u, &key, err, errlen)) != NULL)
		*certp = cert_for_key(slot, key, *keyp);
	keyd_p11_uri_clear(&u);
	module_put(m);
	ERR_clear_error();
	return *keyp != NULL ? 0 : -1;
}

/* The one certificate object u selects by object=/id=; NULL with err, or
 * NULL and err empty when there is none. */
static X509 *
cert_find(PKCS11_SLOT *slot, const struct keyd_p11_uri *u, char *err,
    size_t errlen)
{
	PKCS11_CERT *certs, *found = NULL;
	unsigned int i, ncerts, n = 0;

	err[0] = '\0';
	if (PKCS11_enumerate_certs(slot->token, &certs, &ncerts) != 0) {
		snprintf(err, errlen, "token '%s': cannot list its "
		    "certificates: %s", slot->token->label, p11_why());
		return NULL;
	}
	for (i = 0; i < ncerts; i++)
		if (certs[i].x509 != NULL && object_matches(certs[i].label,
		    certs[i].id, certs[i].id_len, u)) {
			found = &certs[i];
			n++;
		}
	if (n > 1)
		snprintf(err, errlen, "token '%s' has %u certificates that "
		    "match the URI: name one with object= or id=",
		    slot->token->label, n);
	if (n != 1 || !X509_up_ref(found->x509))
		return NULL;
	return found->x509;
}

/* Only the certificate of uri (keyd_p11.h). */
X509 *
keyd_p11_cert(const char *uri, char *err, size_t errlen)
{
	struct keyd_p11_uri u;
	struct p11_module *m;
	PKCS11_SLOT *slot;
	PKCS11_KEY *key;
	EVP_PKEY *pk;
	X509 *cert = NULL;
	int in = 0;

	if (p11_open(uri, &u, 0, &m, &slot, err, errlen) == -1) {
		keyd_p11_uri_clear(&u);
		return NULL;
	}
	if ((cert = cert_find(slot, &u, err, errlen)) == NULL &&
	    err[0] == '\0') {
		if (u.type != KEYD_P11_CERT &&
		    PKCS11_is_logged_in(slot, 0, &in) == 0 && in &&
		    (pk = key_load(m, slot, &u, &key, err, errlen)) != NULL) {
			cert = cert_for_key(slot, key, pk);
			EVP_PKEY_free(pk);
		}
		if (cert == NULL && err[0] == '\0')
			snprintf(err, errlen, "token '%s' has no certificate "
			    "that matches the URI", slot->token->label);
	}
	keyd_p11_uri_clear(&u);
	module_put(m);
	ERR_clear_error();
	return cert;
}

/* Whether the failure on OpenSSL's error queue is the token's refusal of
 * the mechanism or of the key's use (keyd_p11.h); empties the queue. */
int
keyd_p11_refused(void)
{
	unsigned long e;
	int ckr = ERR_get_CKR_code(), refused = 0;

	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) != ckr)
			continue;
		switch (ERR_GET_REASON(e)) {
		case CKR_KEY_TYPE_INCONSISTENT:
		case CKR_KEY_FUNCTION_NOT_PERMITTED:
		case CKR_MECHANISM_INVALID:
		case CKR_MECHANISM_PARAM_INVALID:
			refused = 1;
			break;
		}
	}
	return refused;
}
