/*
 * keyd_p11.h: private keys on PKCS#11 tokens, named by RFC 7512 URIs and
 * used through libp11, in the key process only.
 *
 *   pkcs11:token=smrelay;object=alice?module-path=/usr/lib/softhsm/
 *       libsofthsm2.so&pin-source=file:/etc/smrelay/token.pin
 *
 * The path selects a token (token, manufacturer, serial, model) and an
 * object on it (object: the label, id: the CKA_ID, percent-encoded
 * bytes; type: private or cert).  The query names the module
 * (module-path, an absolute path) and the PIN (pin-value, or pin-source
 * with a file: URI whose file holds the PIN, one trailing newline
 * allowed).  Every other attribute is refused by name rather than
 * ignored: a URI must not select something other than what it says.
 *
 * Without module-path= the module is KEYD_P11_MODULE when configure was
 * given --with-pkcs11-module, else p11-kit's proxy (the system's registry
 * of modules, which libp11's own engine and GnuTLS use too: a URI then
 * reaches every token the administrator installed a module for), else
 * SoftHSM2's libsofthsm2.so where the usual packages put it.
 *
 * A URI must select exactly one token and one private key: two matches
 * are an error, not a guess.  The key's certificate is the token's
 * certificate with the key's CKA_ID and its public key.
 *
 * The EVP_PKEY given out is a legacy RSA or EC key with libp11's methods:
 * EVP_PKEY_sign (RSA PKCS#1 v1.5 and PSS, ECDSA on a digest),
 * EVP_PKEY_decrypt (RSA PKCS#1 v1.5 and OAEP) and EVP_PKEY_derive (ECDH)
 * run on the token.  PSS and OAEP are padded by OpenSSL and need raw RSA
 * (CKM_RSA_X_509) on the token; PKCS#1 v1.5 uses CKM_RSA_PKCS, so a bad
 * padding is an error rather than OpenSSL's implicit rejection (the
 * keyring does implicit rejection over raw RSA where the token allows it,
 * else replaces that error with its stand-in; the key server's unwrap
 * rate limit stands against the rest).  A token
 * that refuses a mechanism for a key (keyd_p11_refused) makes the keyring
 * answer KP_E_KEYTYPE, not a failure of that one request.
 * The key holds a reference to its module: the library, its sessions and
 * its login stay until the last key of that module is freed.  All of
 * this is single-threaded, as the key process is.
 */
#ifndef SMRELAY_KEYD_P11_H
#define SMRELAY_KEYD_P11_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define KEYD_P11_MAX_URI	2048	/* a whole URI, bytes */
#define KEYD_P11_MAX_TOKEN	32	/* token, manufacturer: CK_TOKEN_INFO */
#define KEYD_P11_MAX_MODEL	16	/* model, serial: CK_TOKEN_INFO */
#define KEYD_P11_MAX_LABEL	128	/* object=, decoded */
#define KEYD_P11_MAX_ID		128	/* id=, decoded bytes */
#define KEYD_P11_MAX_PIN	128	/* pin-value=, or the pin-source file */
#define KEYD_P11_MAX_PATH	1024	/* module-path=, pin-source= */

/* Which attributes a URI gave (struct keyd_p11_uri.have). */
#define KEYD_P11_TOKEN		0x001
#define KEYD_P11_MANUFACTURER	0x002
#define KEYD_P11_SERIAL		0x004
#define KEYD_P11_MODEL		0x008
#define KEYD_P11_OBJECT		0x010
#define KEYD_P11_ID		0x020
#define KEYD_P11_TYPE		0x040
#define KEYD_P11_MODULE_PATH	0x080
#define KEYD_P11_PIN_VALUE	0x100
#define KEYD_P11_PIN_SOURCE	0x200

enum keyd_p11_type { KEYD_P11_ANY, KEYD_P11_PRIVATE, KEYD_P11_CERT };

/* A parsed pkcs11: URI, values percent-decoded; strings have no NUL. */
struct keyd_p11_uri {
	unsigned int		 have;
	char			 token[KEYD_P11_MAX_TOKEN + 1];
	char			 manufacturer[KEYD_P11_MAX_TOKEN + 1];
	char			 serial[KEYD_P11_MAX_MODEL + 1];
	char			 model[KEYD_P11_MAX_MODEL + 1];
	char			 object[KEYD_P11_MAX_LABEL + 1];
	uint8_t			 id[KEYD_P11_MAX_ID];
	size_t			 idlen;
	enum keyd_p11_type	 type;
	char			 module_path[KEYD_P11_MAX_PATH + 1];
	char			 pin[KEYD_P11_MAX_PIN + 1];	/* pin-value */
	char			 pin_file[KEYD_P11_MAX_PATH + 1]; /* pin-source */
};

/* keyd_p11_uri.c */
/*
 * Parse a pkcs11: URI (at most KEYD_P11_MAX_URI bytes); 0, or -1 with err
 * naming the attribute at fault.  Pure: no file is read.  Clear u with
 * keyd_p11_uri_clear (it may hold a PIN).
 */
int keyd_p11_uri_parse(const char *uri, struct keyd_p11_uri *u, char *err,
    size_t errlen);
/* Wipe u, PIN included. */
void keyd_p11_uri_clear(struct keyd_p11_uri *u);

/* keyd_p11.c */
/*
 * The private key uri names (*keyp) and its certificate on the token
 * (*certp, NULL when the token has none); 0, or -1 with err (wrong PIN,
 * no such token or key, two of them, no module...).  The caller frees
 * both.
 */
int keyd_p11_load(const char *uri, EVP_PKEY **keyp, X509 **certp,
    char *err, size_t errlen);
/*
 * Only the certificate uri names, for `smrelayctl key import pkcs11:...`:
 * the certificate objects that match object=/id= (no login unless the
 * URI has a PIN); when none does and there is a PIN, the certificate of
 * the private key it names.  NULL with err.
 */
X509 *keyd_p11_cert(const char *uri, char *err, size_t errlen);
/*
 * After a failed EVP operation on a token key: whether the token refused
 * the mechanism or the key's use (CKR_MECHANISM_INVALID, e.g. raw RSA for
 * PSS or OAEP on a key whose CKA_ALLOWED_MECHANISMS lack it, or
 * CKR_KEY_FUNCTION_NOT_PERMITTED), so that it will never work, rather
 * than this one input (a bad padding).  Empties OpenSSL's error queue.
 */
int keyd_p11_refused(void);

#endif
