/* ctl_store.c: smrelayctl key, cert, trust and crl: import, list, show
 * and remove what the store (and, for keys, the key file) keeps. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "ctl.h"
#include "lib/lib.h"
#include "store/store.h"

/* What a store command was given, and the store it works on. */
struct ctl {
	struct config *cfg;
	struct store *st;
	struct keyfile *kf;
	int json;
	int force;
	const char *email;		/* cert list --email */
	const char *password_file;	/* key import --password-file */
	const char *arg;		/* FILE or ID */
	json_t *records;		/* --json: the listing's array */
	int show_rc;			/* cert show --json: the print's */
};

typedef int ctl_fn(struct ctl *);

/* One column of a listing: its name in --json and where it lives. */
enum field_type { F_INT, F_STR, F_TIME, F_EMAILS, F_LOCATION };
struct ctl_field {
	const char *name;
	enum field_type type;
	size_t off;
};
#define FLD(n, t, m) { n, t, offsetof(struct store_certinfo, m) }

static const struct ctl_field cert_fields[] = {
	FLD("id", F_INT, id), FLD("emails", F_EMAILS, emails),
	FLD("subject", F_STR, subject), FLD("not_after", F_TIME, not_after),
	FLD("fingerprint", F_STR, fingerprint), FLD("source", F_STR, source),
	{ NULL, F_INT, 0 }
};
static const struct ctl_field key_fields[] = {
	FLD("id", F_INT, id), FLD("emails", F_EMAILS, emails),
	FLD("subject", F_STR, subject), FLD("not_after", F_TIME, not_after),
	FLD("fingerprint", F_STR, fingerprint),
	FLD("location", F_LOCATION, location), { NULL, F_INT, 0 }
};
static const struct ctl_field trust_fields[] = {
	FLD("id", F_INT, id), FLD("subject", F_STR, subject),
	FLD("not_after", F_TIME, not_after),
	FLD("fingerprint", F_STR, fingerprint), { NULL, F_INT, 0 }
};
static const struct ctl_field crl_fields[] = {
	FLD("id", F_INT, id), FLD("issuer", F_STR, subject),
	FLD("this_update", F_TIME, not_before),
	FLD("next_update", F_TIME, not_after),
	FLD("fingerprint", F_STR, fingerprint), FLD("source", F_STR, source),
	{ NULL, F_INT, 0 }
};

/* A time for people and scripts: ISO 8601 UTC, "-" for none. */
static void
put_time(FILE *f, int64_t t)
{
	char buf[64];

	if (t == 0) {
		fputs("-", f);
		return;
	}
	store_time_str(t, buf, sizeof(buf));
	fputs(buf, f);
}

/* The same for JSON: a string, null for none. */
static json_t *
json_time(int64_t t)
{
	char buf[64];

	if (t == 0)
		return json_null();
	store_time_str(t, buf, sizeof(buf));
	return ctl_json_str(buf);
}

/* Where a key lives: "file:PATH" (the key file; "(missing)" when it has
 * no entry for the key), its pkcs11: URI, or still in the store. */
static void
key_location(struct ctl *c, const struct store_certinfo *ci, char *buf,
    size_t len)
{
	const char *loc = ci->location ? ci->location : "store";

	if (strcmp(loc, "file") == 0)
		snprintf(buf, len, "file:%s%s", keyfile_path(c->kf),
		    keyfile_has(c->kf, ci->fingerprint) == 1 ? "" :
		    " (missing)");
	else if (strcmp(loc, "store") == 0)
		snprintf(buf, len, "%s (not moved yet)", STORE_DB_NAME);
	else
		snprintf(buf, len, "%s", loc);
}

/* One record as a JSON object. */
static json_t *
record_json(struct ctl *c, const struct ctl_field *fl,
    const struct store_certinfo *ci)
{
	const char *base = (const char *)ci, *s;
	json_t *o = json_object(), *v = NULL;
	char buf[1024];
	int i;

	for (i = 0; fl[i].name != NULL; i++) {
		s = NULL;
		if (fl[i].type == F_STR || fl[i].type == F_EMAILS)
			memcpy(&s, base + fl[i].off, sizeof(s));
		switch (fl[i].type) {
		case F_INT:
			v = json_integer(*(const int64_t *)(base + fl[i].off));
			break;
		case F_TIME:
			v = json_time(*(const int64_t *)(base + fl[i].off));
			break;
		case F_EMAILS:
			v = ctl_json_csv(s);
			break;
		case F_STR:
			v = ctl_json_str(s);
			break;
		case F_LOCATION:
			key_location(c, ci, buf, sizeof(buf));
			v = ctl_json_str(buf);
			break;
		}
		json_object_set_new(o, fl[i].name, v);
	}
	return o;
}

/* One record: a tab-separated line, or a JSON object in the array. */
static void
put_record(struct ctl *c, const struct ctl_field *fl,
    const struct store_certinfo *ci)
{
	const char *base = (const char *)ci, *s;
	char buf[1024];
	int i;

	if (c->json) {
		json_array_append_new(c->records, record_json(c, fl, ci));
		return;
	}
	for (i = 0; fl[i].name != NULL; i++) {
		if (i > 0)
			fputc('\t', stdout);
		s = NULL;
		if (fl[i].type == F_STR || fl[i].type == F_EMAILS)
			memcpy(&s, base + fl[i].off, sizeof(s));
		switch (fl[i].type) {
		case F_INT:
			printf("%lld", (long long)*(const int64_t *)
			    (base + fl[i].off));
			break;
		case F_TIME:
			put_time(stdout, *(const int64_t *)(base + fl[i].off));
			break;
		case F_EMAILS:
		case F_STR:
			fputs(s && *s ? s : "-", stdout);
			break;
		case F_LOCATION:
			key_location(c, ci, buf, sizeof(buf));
			fputs(buf, stdout);
			break;
		}
	}
	fputc('\n', stdout);
}

/* End a listing: the JSON array (empty or not). */
static int
end_listing(struct ctl *c)
{
	json_t *a = c->records;

	if (!c->json)
		return CTL_OK;
	c->records = NULL;
	return ctl_json_print(a);
}

struct list_arg {
	struct ctl *c;
	const struct ctl_field *fields;
};

/* store_list_cb printing one record. */
static int
list_cb(const struct store_certinfo *ci, void *arg)
{
	struct list_arg *la = arg;

	put_record(la->c, la->fields, ci);
	return 0;
}

/* Run a store listing with the given columns. */
static int
run_listing(struct ctl *c, const struct ctl_field *fields,
    int (*list)(struct store *, store_list_cb *, void *))
{
	struct list_arg la = { c, fields };

	if (c->json)
		c->records = json_array();
	if (list(c->st, list_cb, &la) < 0) {
		fprintf(stderr, "smrelayctl: %s\n", store_errmsg(c->st));
		json_decref(c->records);
		c->records = NULL;
		return CTL_FAIL;
	}
	return end_listing(c);
}

/* A positive decimal id, or -1. */
static int64_t
parse_id(const char *s)
{
	long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	return v;
}

/* "expired on DATE" if m is not valid now, else NULL (buf holds it). */
static const char *
validity_problem(const struct store_certmeta *m, char *buf, size_t len)
{
	char t[64];
	time_t now = time(NULL);

	if (m->not_after < now) {
		store_time_str(m->not_after, t, sizeof(t));
		snprintf(buf, len, "expired on %s", t);
		return buf;
	}
	if (m->not_before > now) {
		store_time_str(m->not_before, t, sizeof(t));
		snprintf(buf, len, "not valid before %s", t);
		return buf;
	}
	return NULL;
}

/* Comma-separated e-mail addresses of a parsed certificate. */
static void
put_emails(const struct store_certmeta *m)
{
	size_t i;

	for (i = 0; i < m->nemails; i++)
		printf("%s%s", i ? "," : "", m->emails[i]);
	if (m->nemails == 0)
		fputs("-", stdout);
}

/* Keep the certificates worth importing; warn about or refuse others. */
static int
cert_import_filter(struct ctl *c, STACK_OF(X509) *sk)
{
	struct store_certmeta m;
	char err[256], why[128];
	int i;

	for (i = 0; i < sk_X509_num(sk); i++) {
		if (store_certmeta_get(sk_X509_value(sk, i), &m, err,
		    sizeof(err)) == -1) {
			/* one bad certificate does not sink the file */
			fprintf(stderr, "smrelayctl: warning: %s: skipping "
			    "certificate %d: %s\n", c->arg, i + 1, err);
			X509_free(sk_X509_delete(sk, i--));
			continue;
		}
		if (m.nemails == 0 && (m.is_ca ||
		    store_is_crl_signer(sk_X509_value(sk, i)))) {
			if (store_ca_chains(c->st, sk_X509_value(sk, i), sk, why,
			    sizeof(why)) == -1) {
				fprintf(stderr, "smrelayctl: warning: %s: "
				    "skipping CA %s: %s\n", c->arg, m.subject,
				    why);
				X509_free(sk_X509_delete(sk, i--));
			}
		} else if (m.nemails == 0) {
			fprintf(stderr, "smrelayctl: warning: %s: skipping %s: "
			    "no e-mail address\n", c->arg, m.subject);
			X509_free(sk_X509_delete(sk, i--));
		} else if (!c->force && m.not_after < time(NULL)) {
			validity_problem(&m, why, sizeof(why));
			fprintf(stderr, "smrelayctl: %s: certificate %s %s "
			    "(use --force to import anyway)\n", c->arg,
			    m.subject, why);
			store_certmeta_free(&m);
			return -1;
		} else if (validity_problem(&m, why, sizeof(why)) != NULL)
			fprintf(stderr, "smrelayctl: warning: %s: certificate "
			    "%s %s\n", c->arg, m.subject, why);
		store_certmeta_free(&m);
	}
	if (sk_X509_num(sk) == 0) {
		fprintf(stderr, "smrelayctl: %s: no certificate with an e-mail "
		    "address, nor an intermediate CA that chains to a trust "
		    "anchor\n", c->arg);
		return -1;
	}
	return 0;
}

/* Print "ID<TAB>EMAILS<TAB>SUBJECT" per imported certificate. */
static void
report_imported(struct ctl *c, STACK_OF(X509) *sk, const int64_t *ids,
    const int *existed, const char *what, int with_emails)
{
	struct store_certmeta m;
	char err[256];
	int i;

	for (i = 0; i < sk_X509_num(sk); i++) {
		if (store_certmeta_get(sk_X509_value(sk, i), &m, err,
		    sizeof(err)) == -1)
			continue;
		if (existed[i])
			fprintf(stderr, "smrelayctl: %s: %s %lld already "
			    "present\n", c->arg, what, (long long)ids[i]);
		printf("%lld\t", (long long)ids[i]);
		if (with_emails) {
			put_emails(&m);
			putchar('\t');
		}
		printf("%s\n", m.subject);
		store_certmeta_free(&m);
	}
}

/* cert import FILE [--force] */
static int
cmd_cert_import(struct ctl *c)
{
	STACK_OF(X509) *sk;
	int64_t *ids;
	int *existed, rc = CTL_FAIL, n;
	char err[1024];

	if ((sk = store_load_certs(c->arg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	if (cert_import_filter(c, sk) == -1) {     /* refused, said why */
		sk_X509_pop_free(sk, X509_free);
		return CTL_NO;
	}
	n = sk_X509_num(sk);
	ids = xcalloc(n, sizeof(*ids));
	existed = xcalloc(n, sizeof(*existed));
	if (store_cert_add(c->st, sk, STORE_SRC_IMPORT, 0, ids, existed, err,
	    sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s: %s\n", c->arg, err);
	else {
		report_imported(c, sk, ids, existed, "certificate", 1);
		rc = 0;
	}
	free(ids);
	free(existed);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* cert list [--email ADDR] */
static int
cmd_cert_list(struct ctl *c)
{
	struct list_arg la = { c, cert_fields };

	if (c->json)
		c->records = json_array();
	if (store_cert_list(c->st, c->email, list_cb, &la) < 0) {
		fprintf(stderr, "smrelayctl: %s\n", store_errmsg(c->st));
		json_decref(c->records);
		c->records = NULL;
		return CTL_FAIL;
	}
	return end_listing(c);
}

/* Names of the key usage bits set in ku. */
static void
put_ku(int64_t ku)
{
	static const struct { int bit; const char *name; } kus[] = {
		{ KU_DIGITAL_SIGNATURE, "digitalSignature" },
		{ KU_NON_REPUDIATION, "nonRepudiation" },
		{ KU_KEY_ENCIPHERMENT, "keyEncipherment" },
		{ KU_DATA_ENCIPHERMENT, "dataEncipherment" },
		{ KU_KEY_AGREEMENT, "keyAgreement" },
		{ KU_KEY_CERT_SIGN, "keyCertSign" },
		{ KU_CRL_SIGN, "cRLSign" },
		{ KU_ENCIPHER_ONLY, "encipherOnly" },
		{ KU_DECIPHER_ONLY, "decipherOnly" },
	};
	size_t i;
	int n = 0;

	if (ku == -1) {
		fputs("(no extension)", stdout);
		return;
	}
	for (i = 0; i < sizeof(kus) / sizeof(kus[0]); i++)
		if (ku & kus[i].bit)
			printf("%s%s", n++ ? ", " : "", kus[i].name);
}

/* Names of the extended key usage bits that matter here. */
static void
put_eku(int64_t eku)
{
	static const struct { int bit; const char *name; } ekus[] = {
		{ XKU_SMIME, "emailProtection" },
		{ XKU_SSL_CLIENT, "clientAuth" },
		{ XKU_SSL_SERVER, "serverAuth" },
		{ XKU_CODE_SIGN, "codeSigning" },
		{ XKU_TIMESTAMP, "timeStamping" },
		{ XKU_OCSP_SIGN, "OCSPSigning" },
		{ XKU_ANYEKU, "anyExtendedKeyUsage" },
	};
	size_t i;
	int n = 0;

	if (eku == -1) {
		fputs("(no extension)", stdout);
		return;
	}
	for (i = 0; i < sizeof(ekus) / sizeof(ekus[0]); i++)
		if (eku & ekus[i].bit)
			printf("%s%s", n++ ? ", " : "", ekus[i].name);
	if (n == 0)
		fputs("(none known)", stdout);
}

/* cert show ID: everything about one certificate, one "name: value" a
 * line (or one JSON object). */
static int
show_cb(const struct store_certinfo *ci, void *arg)
{
	struct ctl *c = arg;
	static const struct ctl_field show_fields[] = {
		FLD("id", F_INT, id), FLD("subject", F_STR, subject),
		FLD("issuer", F_STR, issuer), FLD("serial", F_STR, serial),
		FLD("not_before", F_TIME, not_before),
		FLD("not_after", F_TIME, not_after),
		FLD("emails", F_EMAILS, emails),
		FLD("key_type", F_STR, key_type),
		FLD("key_bits", F_INT, key_bits),
		FLD("key_usage", F_INT, key_usage),
		FLD("ext_key_usage", F_INT, ext_key_usage),
		FLD("can_encrypt", F_INT, can_encrypt),
		FLD("can_sign", F_INT, can_sign),
		FLD("source", F_STR, source),
		FLD("fingerprint", F_STR, fingerprint),
		FLD("added", F_TIME, added), { NULL, F_INT, 0 }
	};

	if (c->json) {
		c->show_rc = ctl_json_print(record_json(c, show_fields, ci));
		return 0;
	}
	printf("id: %lld\nsubject: %s\nissuer: %s\nserial: %s\n",
	    (long long)ci->id, ci->subject, ci->issuer, ci->serial);
	printf("not_before: ");
	put_time(stdout, ci->not_before);
	printf("\nnot_after: ");
	put_time(stdout, ci->not_after);
	printf("%s\nemails: %s\nkey: %s %lld\nkey_usage: ", ci->not_after <
	    time(NULL) ? " (expired)" : "", ci->emails, ci->key_type,
	    (long long)ci->key_bits);
	put_ku(ci->key_usage);
	printf("\next_key_usage: ");
	put_eku(ci->ext_key_usage);
	printf("\ncan_encrypt: %s\ncan_sign: %s\nsource: %s\n"
	    "fingerprint: sha256 %s\nadded: ", ci->can_encrypt ? "yes" : "no",
	    ci->can_sign ? "yes" : "no", ci->source, ci->fingerprint);
	put_time(stdout, ci->added);
	printf("\n");
	return 0;
}

/* cert show ID */
static int
cmd_cert_show(struct ctl *c)
{
	int64_t id = parse_id(c->arg);
	int rc;

	if (id < 0) {
		fprintf(stderr, "smrelayctl: cert show: bad id \"%s\"\n",
		    c->arg);
		return CTL_USAGE;
	}
	if ((rc = store_cert_info(c->st, id, show_cb, c)) < 0)
		fprintf(stderr, "smrelayctl: %s\n", store_errmsg(c->st));
	else if (rc == 0)
		fprintf(stderr, "smrelayctl: cert %lld: no such certificate\n",
		    (long long)id);
	return rc == 1 ? c->show_rc : rc == 0 ? CTL_NO : CTL_FAIL;
}

/* OBJECT remove ID, with the store function that removes one. */
static int
remove_common(struct ctl *c, const char *what,
    int (*rm)(struct store *, int64_t, char *, size_t))
{
	int64_t id = parse_id(c->arg);
	char err[1024];
	int rc;

	if (id < 0) {
		fprintf(stderr, "smrelayctl: bad id \"%s\"\n", c->arg);
		return CTL_USAGE;
	}
	if ((rc = rm(c->st, id, err, sizeof(err))) < 0)
		fprintf(stderr, "smrelayctl: %s\n", err);
	else if (rc == 0)
		fprintf(stderr, "smrelayctl: %s %lld: no such %s\n", what,
		    (long long)id, what);
	return rc == 1 ? CTL_OK : rc == 0 ? CTL_NO : CTL_FAIL;
}

/* cert remove ID */
static int
cmd_cert_remove(struct ctl *c)
{
	return remove_common(c, "certificate", store_cert_remove);
}

/* The import report of one key's certificate. */
static void
report_key(struct ctl *c, X509 *cert, int64_t id, int existed)
{
	STACK_OF(X509) *one;

	if ((one = sk_X509_new_null()) == NULL || !sk_X509_push(one, cert))
		fatalx("sk_X509_push");
	report_imported(c, one, &id, &existed, "key", 1);
	sk_X509_free(one);
}

/*
 * The key into the key file, then its certificate and chain into the
 * store (a daemon that sees the store change finds the key already
 * there).  A key file entry this import made is taken back when the
 * store refuses the certificate.  0, or -1 (said why).
 */
static int
key_add(struct ctl *c, EVP_PKEY *pkey, X509 *cert, STACK_OF(X509) *chain,
    int64_t *id, int *existed)
{
	char err[1024], why[512], fp[65];
	int had;

	if (keyfile_fingerprint(cert, fp) == -1 ||
	    (had = keyfile_has(c->kf, fp)) == -1) {
		fprintf(stderr, "smrelayctl: %s: cannot look the key up in "
		    "%s\n", c->arg, keyfile_path(c->kf));
		return -1;
	}
	if (keyfile_put(c->kf, cert, pkey, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s: %s\n", c->arg, err);
		return -1;
	}
	if (store_key_add(c->st, cert, chain, "file", id, existed, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s: %s\n", c->arg, err);
		if (!had && keyfile_remove(c->kf, fp, why, sizeof(why)) == -1)
			fprintf(stderr, "smrelayctl: %s\n", why);
		return -1;
	}
	return 0;
}

/* The URI as the store keeps it (smrelay.db is the network process's to
 * read): a pin-value's value is replaced by "***"; the key file, which
 * only the key process reads, keeps the URI whole. */
static char *
uri_public(const char *uri)
{
	const char *p, *end;
	char *out;

	if ((p = strstr(uri, "pin-value=")) == NULL)
		return xstrdup(uri);
	p += strlen("pin-value=");
	end = p + strcspn(p, "&");
	out = xasprintf("%.*s***%s", (int)(p - uri), uri, end);
	return out;
}

/*
 * The chain to send with a token key's signatures: the token holds only
 * the certificate, so its path to an anchor is built from the
 * intermediates the store has (`cert import`), anchor left out.  Empty
 * when there is no path (said as a warning: partners then need the
 * intermediates themselves).
 */
static STACK_OF(X509) *
token_chain(struct ctl *c, X509 *cert)
{
	STACK_OF(X509) *chain, *inter, *path = NULL;
	X509_STORE *trust;
	X509_STORE_CTX *ctx = NULL;
	int i;

	if ((chain = sk_X509_new_null()) == NULL)
		fatalx("sk_X509_new_null");
	trust = store_trust_x509_store(c->st);
	inter = store_ca_certs(c->st);
	if (trust != NULL && inter != NULL &&
	    (ctx = X509_STORE_CTX_new()) != NULL &&
	    X509_STORE_CTX_init(ctx, trust, cert, inter) == 1 &&
	    X509_verify_cert(ctx) == 1)
		path = X509_STORE_CTX_get0_chain(ctx);
	/* the path is leaf, intermediates..., anchor */
	for (i = 1; path != NULL && i < sk_X509_num(path) - 1; i++)
		if (!X509_up_ref(sk_X509_value(path, i)) ||
		    !sk_X509_push(chain, sk_X509_value(path, i)))
			fatalx("sk_X509_push");
	if (path == NULL)
		fprintf(stderr, "smrelayctl: warning: %s: no path from the "
		    "token's certificate to a trust anchor through the stored "
		    "intermediates; signatures go without a chain\n", c->arg);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(trust);
	sk_X509_pop_free(inter, X509_free);
	return chain;
}

/* key import pkcs11:URI: the key stays on its token; the key process logs
 * in with the URI's PIN.  The key is tried here once (it must match the
 * certificate) before anything is written. */
static int
key_import_pkcs11(struct ctl *c)
{
	STACK_OF(X509) *chain;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char err[1024], fp[65], *pub = NULL;
	int64_t id;
	int existed, rc = CTL_FAIL;

	if (keyd_p11_load(c->arg, &key, &cert, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	if (cert == NULL && (cert = keyd_p11_cert(c->arg, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		goto done;
	}
	if (X509_check_private_key(cert, key) != 1) {
		fprintf(stderr, "smrelayctl: the token's key does not match "
		    "its certificate\n");
		goto done;
	}
	chain = token_chain(c, cert);
	pub = uri_public(c->arg);
	if (keyfile_fingerprint(cert, fp) == -1 ||
	    keyfile_put_uri(c->kf, cert, c->arg, err, sizeof(err)) == -1 ||
	    store_key_add(c->st, cert, chain, pub, &id, &existed, err,
	    sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s\n", err);
	else {
		report_key(c, cert, id, existed);
		rc = CTL_OK;
	}
	sk_X509_pop_free(chain, X509_free);
 done:
	free(pub);
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/* key import FILE [--password-file F] | key import pkcs11:URI */
static int
cmd_key_import(struct ctl *c)
{
	STACK_OF(X509) *chain = NULL;
	struct store_certmeta m;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	char err[1024], why[128], *pw = NULL;
	int64_t id;
	int existed, rc = CTL_FAIL;

	if (strncmp(c->arg, "pkcs11:", 7) == 0)
		return key_import_pkcs11(c);
	if (c->password_file != NULL && (pw = store_load_password(
	    c->password_file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	if (store_load_identity(c->arg, pw, &pkey, &cert, &chain, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		goto done;
	}
	if (store_certmeta_get(cert, &m, err, sizeof(err)) == 0) {
		if (validity_problem(&m, why, sizeof(why)) != NULL)
			fprintf(stderr, "smrelayctl: warning: %s: certificate "
			    "%s %s\n", c->arg, m.subject, why);
		store_certmeta_free(&m);
	}
	if (key_add(c, pkey, cert, chain, &id, &existed) == -1)
		goto done;
	report_key(c, cert, id, existed);
	rc = CTL_OK;
 done:
	if (pw != NULL)
		OPENSSL_clear_free(pw, strlen(pw));
	EVP_PKEY_free(pkey);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

/* key list */
static int
cmd_key_list(struct ctl *c)
{
	return run_listing(c, key_fields, store_key_list);
}

/* key remove ID: from the store first (a daemon stops using it), then
 * from the key file. */
static int
cmd_key_remove(struct ctl *c)
{
	int64_t id = parse_id(c->arg);
	char err[1024], fp[65];
	int rc;

	if (id < 0) {
		fprintf(stderr, "smrelayctl: bad id \"%s\"\n", c->arg);
		return CTL_USAGE;
	}
	if ((rc = store_key_remove(c->st, id, fp, err, sizeof(err))) < 0) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	if (rc == 0) {
		fprintf(stderr, "smrelayctl: key %lld: no such key\n",
		    (long long)id);
		return CTL_NO;
	}
	if (keyfile_remove(c->kf, fp, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	return 0;
}

/* trust import FILE */
static int
cmd_trust_import(struct ctl *c)
{
	STACK_OF(X509) *sk;
	struct store_certmeta m;
	char err[1024], why[128];
	int64_t *ids;
	int *existed, i, rc = CTL_FAIL, n;

	if ((sk = store_load_certs(c->arg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	n = sk_X509_num(sk);
	for (i = 0; i < n; i++) {
		if (store_certmeta_get(sk_X509_value(sk, i), &m, err,
		    sizeof(err)) == -1)
			continue;
		if (validity_problem(&m, why, sizeof(why)) != NULL)
			fprintf(stderr, "smrelayctl: warning: %s: certificate "
			    "%s %s\n", c->arg, m.subject, why);
		store_certmeta_free(&m);
	}
	ids = xcalloc(n, sizeof(*ids));
	existed = xcalloc(n, sizeof(*existed));
	if (store_trust_add(c->st, sk, ids, existed, err, sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s: %s\n", c->arg, err);
	else {
		report_imported(c, sk, ids, existed, "trust anchor", 0);
		rc = 0;
	}
	free(ids);
	free(existed);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* trust list */
static int
cmd_trust_list(struct ctl *c)
{
	return run_listing(c, trust_fields, store_trust_list);
}

/* trust remove ID */
static int
cmd_trust_remove(struct ctl *c)
{
	return remove_common(c, "trust anchor", store_trust_remove);
}

/* One CRL of the file imported: 0, or -1 (said why). */
static int
crl_import_one(struct ctl *c, X509_CRL *crl)
{
	char err[1024], *issuer = store_name_str(X509_CRL_get_issuer(crl));
	int64_t id, next = store_asn1_time(X509_CRL_get0_nextUpdate(crl));
	int existed, rc = -1;

	if (store_crl_add(c->st, crl, NULL, &id, &existed, err,
	    sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s: %s\n", c->arg, err);
	else {
		if (existed)
			fprintf(stderr, "smrelayctl: %s: CRL %lld already "
			    "present\n", c->arg, (long long)id);
		if (next != 0 && next < time(NULL))
			fprintf(stderr, "smrelayctl: warning: %s: the CRL of "
			    "%s: its nextUpdate has passed\n", c->arg, issuer);
		printf("%lld\t%s\n", (long long)id, issuer);
		rc = 0;
	}
	free(issuer);
	return rc;
}

/* crl import FILE: every CRL in it; 1 when one was refused. */
static int
cmd_crl_import(struct ctl *c)
{
	STACK_OF(X509_CRL) *sk;
	char err[1024];
	int i, rc = 0;

	if ((sk = store_load_crls(c->arg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return CTL_FAIL;
	}
	/* a CRL refused (unknown or bad issuer): a negative answer */
	for (i = 0; i < sk_X509_CRL_num(sk); i++)
		if (crl_import_one(c, sk_X509_CRL_value(sk, i)) == -1)
			rc = CTL_NO;
	sk_X509_CRL_pop_free(sk, X509_CRL_free);
	return rc;
}

/* crl list */
static int
cmd_crl_list(struct ctl *c)
{
	return run_listing(c, crl_fields, store_crl_list);
}

/* crl remove ID */
static int
cmd_crl_remove(struct ctl *c)
{
	return remove_common(c, "CRL", store_crl_remove);
}

/* The store commands, with what each takes after OBJECT VERB. */
#define A_FILE	0x01	/* one positional argument: FILE or ID */
#define A_EMAIL	0x02	/* --email ADDR */
#define A_PASS	0x04	/* --password-file F */
#define A_FORCE	0x08	/* --force */
static const struct ctl_command {
	const char *object, *verb;
	int args;
	ctl_fn *fn;
} ctl_commands[] = {
	{ "key", "import", A_FILE | A_PASS, cmd_key_import },
	{ "key", "list", 0, cmd_key_list },
	{ "key", "remove", A_FILE, cmd_key_remove },
	{ "cert", "import", A_FILE | A_FORCE, cmd_cert_import },
	{ "cert", "list", A_EMAIL, cmd_cert_list },
	{ "cert", "show", A_FILE, cmd_cert_show },
	{ "cert", "remove", A_FILE, cmd_cert_remove },
	{ "trust", "import", A_FILE, cmd_trust_import },
	{ "trust", "list", 0, cmd_trust_list },
	{ "trust", "remove", A_FILE, cmd_trust_remove },
	{ "crl", "import", A_FILE, cmd_crl_import },
	{ "crl", "list", 0, cmd_crl_list },
	{ "crl", "remove", A_FILE, cmd_crl_remove },
};

/* The arguments after OBJECT VERB; -1 (message printed) if they do not
 * fit the command. */
static int
ctl_args(struct ctl *c, const struct ctl_command *cmd, int argc,
    char *argv[])
{
	int i, npos = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			c->json = 1;
		else if (strcmp(argv[i], "--force") == 0 &&
		    (cmd->args & A_FORCE))
			c->force = 1;
		else if (strcmp(argv[i], "--email") == 0 && i + 1 < argc &&
		    (cmd->args & A_EMAIL))
			c->email = argv[++i];
		else if (strcmp(argv[i], "--password-file") == 0 &&
		    i + 1 < argc && (cmd->args & A_PASS))
			c->password_file = argv[++i];
		else if (argv[i][0] != '-' && (cmd->args & A_FILE) &&
		    npos++ == 0)
			c->arg = argv[i];
		else {
			fprintf(stderr, "smrelayctl: %s %s: unexpected "
			    "argument \"%s\"\n", cmd->object, cmd->verb,
			    argv[i]);
			return -1;
		}
	}
	if ((cmd->args & A_FILE) && c->arg == NULL) {
		fprintf(stderr, "smrelayctl: %s %s: missing %s\n", cmd->object,
		    cmd->verb, strcmp(cmd->verb, "import") == 0 ? "FILE" :
		    "ID");
		return -1;
	}
	return 0;
}

/* A store command: open the store and the key file of the configuration,
 * run, close. */
int
ctl_store_run(const struct ctl_cmd *command, const struct ctl_opts *o,
    int argc, char *argv[])
{
	const struct ctl_command *cmd = NULL;
	struct ctl c;
	char err[1024];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		if (strcmp(ctl_commands[i].object, command->object) == 0 &&
		    strcmp(ctl_commands[i].verb, command->verb) == 0)
			cmd = &ctl_commands[i];
	if (cmd == NULL)
		fatalx("ctl_store_run: no store command %s %s",
		    command->object, command->verb);
	memset(&c, 0, sizeof(c));
	c.json = o->json;
	if (ctl_args(&c, cmd, argc - 1, argv + 1) == -1)
		return CTL_USAGE;
	if ((c.cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	if (ctl_open_store(c.cfg, &c.st, &c.kf) == -1) {
		config_free(c.cfg);
		return CTL_FAIL;
	}
	rc = cmd->fn(&c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smrelayctl: stdout: %s\n", strerror(errno));
		rc = CTL_FAIL;
	}
	keyfile_close(c.kf);
	store_close(c.st);
	store_load_cleanup();
	config_free(c.cfg);
	return rc;
}
