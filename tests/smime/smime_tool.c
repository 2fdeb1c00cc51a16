/* smime_tool.c: the S/MIME engine (proto/cms.c) on the command line, for
 * interop tests.  Reads a message on stdin, writes the result on stdout.
 * Header handling is minimal: Content-* fields and the body form the MIME
 * entity, every other field stays outside.  smrelayctl smime replaces it. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "proto/cms.h"
#include "pemload.h"

struct msg {
	char	*buf;		/* whole message, CRLF */
	size_t	 len;
	size_t	 hlen;		/* header block incl. its final CRLF */
	size_t	 body;		/* offset of the body */
};

/* Print the synopsis and exit 2. */
static void
usage(void)
{
	fprintf(stderr,
	    "usage: smime_tool sign --cert C --key K [--chain F] [--pss]\n"
	    "           [--opaque] [--raw] [--stats]\n"
	    "       smime_tool encrypt --to CERT... [--gcm] [--oaep] [--raw]"
	    " [--stats]\n"
	    "       smime_tool decrypt --cert C --key K [--cert C --key K]...\n"
	    "       smime_tool verify --ca CA [--crl F] [--certs F]"
	    " [--from ADDR]\n"
	    "           [--host H] [--out F]\n"
	    "       smime_tool kind [--keep N]   (CMS DER/BER on stdin)\n");
	exit(2);
}

/* Report a setup error with the OpenSSL queue and exit 2. */
static void
die(const char *what)
{
	fprintf(stderr, "smime_tool: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* Read all of stdin. */
static char *
read_all(size_t *lenp)
{
	size_t len = 0, cap = 1 << 16, n;
	char *p = malloc(cap);

	while (p != NULL && (n = fread(p + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap && (p = realloc(p, cap *= 2)) == NULL)
			break;
	}
	if (p == NULL)
		die("out of memory");
	*lenp = len;
	return p;
}

/* Line ends to CRLF, in a new buffer. */
static char *
to_crlf(const char *in, size_t len, size_t *outlen)
{
	char *o = malloc(len * 2 + 1);
	size_t i, n = 0;

	if (o == NULL)
		die("out of memory");
	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			o[n++] = '\r';
		o[n++] = in[i];
	}
	o[n] = '\0';
	*outlen = n;
	return o;
}

/* Read a message on stdin and find its header/body split. */
static void
msg_read(struct msg *m)
{
	size_t rlen;
	char *raw = read_all(&rlen), *e;

	m->buf = to_crlf(raw, rlen, &m->len);
	free(raw);
	if (m->len >= 2 && memcmp(m->buf, "\r\n", 2) == 0) {
		m->hlen = 0;
		m->body = 2;
	} else if ((e = strstr(m->buf, "\r\n\r\n")) != NULL) {
		m->hlen = (size_t)(e - m->buf) + 2;
		m->body = m->hlen + 2;
	} else {
		m->hlen = m->len;
		m->body = m->len;
	}
}

/* Length of the header field starting at p (with continuation lines). */
static size_t
field_len(const char *p, const char *end)
{
	const char *q = p;

	for (;;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		if (nl == NULL)
			return (size_t)(end - p);
		q = nl + 1;
		if (q >= end || (*q != ' ' && *q != '\t'))
			return (size_t)(q - p);
	}
}

/* Split the header block into outer fields and entity (Content-*) fields. */
static void
msg_split(const struct msg *m, BIO *outer, BIO *entity)
{
	const char *p = m->buf, *end = m->buf + m->hlen;
	size_t n;

	while (p < end) {
		n = field_len(p, end);
		if (strncasecmp(p, "Content-", 8) == 0)
			BIO_write(entity, p, (int)n);
		else if (strncasecmp(p, "MIME-Version:", 13) != 0)
			BIO_write(outer, p, (int)n);
		p += n;
	}
}

/* Value of header field `name` (unfolded, first occurrence) or NULL. */
static char *
msg_header(const struct msg *m, const char *name)
{
	const char *p = m->buf, *end = m->buf + m->hlen;
	size_t n, nl = strlen(name), i, k = 0;
	char *v;

	while (p < end) {
		n = field_len(p, end);
		if (n > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			if ((v = malloc(n)) == NULL)
				die("out of memory");
			for (i = nl + 1; i < n; i++)
				if (p[i] != '\r' && p[i] != '\n')
					v[k++] = p[i];
			v[k] = '\0';
			return v;
		}
		p += n;
	}
	return NULL;
}

/* The address in a From value: inside <>, else the bare word. */
static char *
addr_of(char *v)
{
	char *a, *e;

	if ((a = strchr(v, '<')) != NULL && (e = strchr(a, '>')) != NULL) {
		*e = '\0';
		return a + 1;
	}
	a = v + strspn(v, " \t");
	a[strcspn(a, " \t")] = '\0';
	return a;
}

/* A parameter of a Content-Type value, unquoted, or NULL. */
static char *
ct_param(const char *ct, const char *name)
{
	const char *p = ct;
	size_t nl = strlen(name);
	char *v, *q;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		p += strspn(p, " \t");
		if (strncasecmp(p, name, nl) != 0 || p[nl] != '=')
			continue;
		p += nl + 1;
		if (*p == '"') {
			v = strdup(p + 1);
			if (v != NULL && (q = strchr(v, '"')) != NULL)
				*q = '\0';
		} else {
			v = strdup(p);
			if (v != NULL)
				v[strcspn(v, "; \t")] = '\0';
		}
		return v;
	}
	return NULL;
}

/* Every CRL in a PEM file. */
static void
load_crls(STACK_OF(X509_CRL) *sk, const char *f)
{
	BIO *b = BIO_new_file(f, "r");
	X509_CRL *c;

	if (b == NULL)
		die(f);
	while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL)
		sk_X509_CRL_push(sk, c);
	ERR_clear_error();
	BIO_free(b);
}

/* Base64 text to a memory BIO of the decoded bytes. */
static BIO *
b64_decode(const char *p, size_t len)
{
	BIO *in = BIO_new_mem_buf(p, (int)len), *b64 = BIO_new(BIO_f_base64());
	BIO *out = BIO_new(BIO_s_mem());
	char buf[8192];
	int n;

	BIO_push(b64, in);
	while ((n = BIO_read(b64, buf, sizeof(buf))) > 0)
		BIO_write(out, buf, n);
	BIO_free_all(b64);
	return out;
}

/* Copy a memory BIO's contents to stdout. */
static void
print_mem(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	if (n > 0)
		fwrite(data, 1, (size_t)n, stdout);
	fflush(stdout);
}

/* Peak resident set size on stderr, for the memory bound test. */
static void
stats(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "maxrss_kb=%ld\n", ru.ru_maxrss);
}

/* sign or encrypt: wrap the entity and print the message. */
static int
cmd_transform(int argc, char **argv, int encrypt)
{
	STACK_OF(X509) *chain = sk_X509_new_null(), *to = sk_X509_new_null();
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *outer = BIO_new(BIO_s_mem()), *ent = BIO_new(BIO_s_mem());
	BIO *in, *out = BIO_new_fp(stdout, BIO_NOCLOSE);
	struct msg m;
	char err[512], *raw;
	size_t rlen;
	int i, opts = 0, rawmode = 0, st = 0, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = load_cert(argv[++i]);
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = load_key(argv[++i]);
		else if (strcmp(argv[i], "--chain") == 0 && i + 1 < argc)
			load_certs(chain, argv[++i]);
		else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			sk_X509_push(to, load_cert(argv[++i]));
		else if (strcmp(argv[i], "--pss") == 0)
			opts |= SMIME_OPT_PSS;
		else if (strcmp(argv[i], "--opaque") == 0)
			opts |= SMIME_OPT_OPAQUE;
		else if (strcmp(argv[i], "--gcm") == 0)
			opts |= SMIME_OPT_GCM;
		else if (strcmp(argv[i], "--oaep") == 0)
			opts |= SMIME_OPT_OAEP;
		else if (strcmp(argv[i], "--raw") == 0)
			rawmode = 1;
		else if (strcmp(argv[i], "--stats") == 0)
			st = 1;
		else
			usage();
	}
	if (!encrypt && (cert == NULL || key == NULL))
		usage();
	if (rawmode) {
		/* The entity as the daemon would hold it: in memory. */
		raw = read_all(&rlen);
		in = BIO_new_mem_buf(raw, (int)rlen);
	} else {
		msg_read(&m);
		msg_split(&m, outer, ent);
		if (BIO_ctrl_pending(ent) == 0)
			BIO_puts(ent, "Content-Type: text/plain; charset=us-ascii\r\n");
		BIO_write(ent, "\r\n", 2);
		BIO_write(ent, m.buf + m.body, (int)(m.len - m.body));
		BIO_puts(outer, "MIME-Version: 1.0\r\n");
		in = ent;
		raw = m.buf;
		/* Print nothing unless the transformation works. */
		BIO_free(out);
		out = BIO_new(BIO_s_mem());
	}
	if (encrypt)
		r = cms_encrypt(in, to, opts, out, err, sizeof(err));
	else
		r = cms_sign(in, cert, key, chain, opts, out, err, sizeof(err));
	if (r == -1)
		fprintf(stderr, "smime_tool: %s\n", err);
	else if (!rawmode) {
		print_mem(outer);
		print_mem(out);
	}
	if (st)
		stats();
	if (rawmode)
		BIO_free(in);
	BIO_free(outer);
	BIO_free(ent);
	BIO_free(out);
	free(raw);
	X509_free(cert);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(to, X509_free);
	return r == -1 ? 1 : 0;
}

/* decrypt: the inner entity replaces the envelope. */
static int
cmd_decrypt(int argc, char **argv)
{
	struct cms_identity ids[8];
	size_t nids = 0, nkeys = 0;
	BIO *outer = BIO_new(BIO_s_mem()), *ent = BIO_new(BIO_s_mem());
	BIO *der, *out = BIO_new(BIO_s_mem());
	struct msg m;
	char err[1024];
	int i, r;

	memset(ids, 0, sizeof(ids));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc && nids < 8)
			ids[nids++].cert = load_cert(argv[++i]);
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc &&
		    nkeys < 8)
			ids[nkeys++].key = load_key(argv[++i]);
		else
			usage();
	}
	if (nids == 0 || nids != nkeys)
		usage();
	msg_read(&m);
	msg_split(&m, outer, ent);
	der = b64_decode(m.buf + m.body, m.len - m.body);
	BIO_puts(outer, "MIME-Version: 1.0\r\n");
	r = cms_decrypt(der, ids, nids, out, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "smime_tool: %s\n", err);
	else {
		print_mem(outer);
		print_mem(out);
	}
	BIO_free(out);
	BIO_free(der);
	BIO_free(outer);
	BIO_free(ent);
	free(m.buf);
	for (i = 0; i < (int)nids; i++) {
		X509_free(ids[i].cert);
		EVP_PKEY_free(ids[i].key);
	}
	return r < 0 ? 1 : 0;
}

/* Locate the signed part and the signature of a multipart/signed body. */
static int
split_signed(const struct msg *m, const char *bnd, BIO **content, BIO **der)
{
	char *delim, *p, *q, *end = m->buf + m->len, *sig;
	size_t dl;

	if (asprintf(&delim, "--%s\r\n", bnd) < 0)
		die("out of memory");
	dl = strlen(delim);
	if ((p = strstr(m->buf + m->body, delim)) == NULL)
		return -1;
	p += dl;
	delim[dl - 2] = '\0';	/* "--bnd" preceded by CRLF */
	for (q = p; (q = strstr(q, delim)) != NULL; q++)
		if (q >= p + 2 && q[-2] == '\r' && q[-1] == '\n')
			break;
	if (q == NULL)
		return -1;
	*content = BIO_new_mem_buf(p, (int)(q - 2 - p));
	if ((sig = strstr(q, "\r\n\r\n")) == NULL)
		return -1;
	sig += 4;
	for (q = sig; (q = strstr(q, delim)) != NULL; q++)
		if (q[-2] == '\r' && q[-1] == '\n')
			break;
	*der = b64_decode(sig, (size_t)((q ? q : end) - sig));
	free(delim);
	return 0;
}

/* verify: print the Authentication-Results line; exit 1 unless pass. */
static int
cmd_verify(int argc, char **argv)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	STACK_OF(X509) *known = sk_X509_new_null();
	/* with the memo the daemon uses: its SignedData reader (certificates
	 * through the memo) checks every interop sample */
	struct cms_trust trust = { store, crls, known, CMS_REV_SOFT, NULL, NULL,
	    NULL, cms_memo_new(CMS_MEMO_CERTS, CMS_MEMO_CHAINS) };
	BIO *content = NULL, *der = NULL, *out = NULL;
	struct cms_verify res;
	struct msg m;
	char line[1024], *ct, *bnd, *fromv = NULL, *from = NULL;
	const char *host = "test.example";
	int i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
			if (X509_STORE_load_file(store, argv[++i]) != 1)
				die(argv[i]);
		} else if (strcmp(argv[i], "--crl") == 0 && i + 1 < argc)
			load_crls(crls, argv[++i]);
		else if (strcmp(argv[i], "--certs") == 0 && i + 1 < argc)
			load_certs(known, argv[++i]);
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			from = argv[++i];
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			if ((out = BIO_new_file(argv[++i], "wb")) == NULL)
				die(argv[i]);
		} else
			usage();
	}
	msg_read(&m);
	if (from == NULL && (fromv = msg_header(&m, "From")) != NULL)
		from = addr_of(fromv);
	ct = msg_header(&m, "Content-Type");
	memset(&res, 0, sizeof(res));
	if (ct != NULL && strcasestr(ct, "multipart/signed") != NULL &&
	    (bnd = ct_param(ct, "boundary")) != NULL) {
		if (split_signed(&m, bnd, &content, &der) == 0)
			cms_verify(content, der, &trust, from, out, &res);
		else
			snprintf(res.reason, sizeof(res.reason),
			    "multipart/signed without two parts");
		if (der == NULL)
			res.outcome = SMIME_PERMERROR;
		free(bnd);
	} else if (ct != NULL && strcasestr(ct, "pkcs7-mime") != NULL) {
		der = b64_decode(m.buf + m.body, m.len - m.body);
		cms_verify(NULL, der, &trust, from, out, &res);
	}
	cms_auth_results(line, sizeof(line), host, &res);
	printf("%s\n", line);
	if (res.has_caps)
		printf("caps=%s%s\n",
		    res.caps & SMIME_CAP_AES256_GCM ? "aes256-gcm," : "",
		    res.caps & SMIME_CAP_AES256_CBC ? "aes256-cbc" : "");
	cms_verify_free(&res);
	BIO_free(content);
	BIO_free(der);
	BIO_free(out);
	free(ct);
	free(fromv);
	free(m.buf);
	X509_STORE_free(store);
	cms_memo_free(trust.memo);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_pop_free(known, X509_free);
	return res.outcome == SMIME_PASS ? 0 : 1;
}

/* kind: the content type of the CMS on stdin, its structure checked in
 * pieces (cms_structure_nid_keep); exit 1 when malformed. */
static int
cmd_kind(int argc, char **argv)
{
	size_t keep = 65536;
	char err[256];
	BIO *in;
	int nid;

	if (argc == 2 && strcmp(argv[0], "--keep") == 0)
		keep = strtoul(argv[1], NULL, 10);
	else if (argc != 0)
		usage();
	if ((in = BIO_new_fp(stdin, BIO_NOCLOSE)) == NULL)
		die("stdin");
	nid = cms_structure_nid_keep(in, keep, err, sizeof(err));
	BIO_free(in);
	if (nid == NID_undef) {
		printf("malformed: %s\n", err);
		return 1;
	}
	printf("%s\n", OBJ_nid2sn(nid));
	return 0;
}

/* Dispatch to the sub-command. */
int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "sign") == 0)
		return cmd_transform(argc - 2, argv + 2, 0);
	if (strcmp(argv[1], "encrypt") == 0)
		return cmd_transform(argc - 2, argv + 2, 1);
	if (strcmp(argv[1], "decrypt") == 0)
		return cmd_decrypt(argc - 2, argv + 2);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 2, argv + 2);
	if (strcmp(argv[1], "kind") == 0)
		return cmd_kind(argc - 2, argv + 2);
	usage();
	return 2;
}
