/* ctl_check.c: smrelayctl cert check ID | --email ADDR: the certificate's
 * path to a trust anchor, each link's validity and revocation status with
 * its source, and whether we would encrypt to it. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ctl.h"
#include "daemon/base/base.h"
#include "daemon/smime/smime.h"
#include "proto/proto.h"
#include "lib/lib.h"
#include "store/store.h"

#define CHECK_DEPTH	16      /* links reported (OpenSSL stops at 100) */

/* What verification said about each link of the path. */
struct check_state {
	int	 err[CHECK_DEPTH];      /* first X509_V_ERR_* at that depth */
	int	 nocrl[CHECK_DEPTH];    /* no usable CRL for that link */
	int	 revoked[CHECK_DEPTH];
	int	 stale[CHECK_DEPTH];    /* its CRL is past nextUpdate */
	int	 ocsp[CHECK_DEPTH];     /* decided by an OCSP answer */
	char	 ocsp_src[CHECK_DEPTH][512];
	struct store *st;
	STACK_OF(X509_CRL) *crls;       /* the store's */
};

/* The stored OCSP answer about the link at depth d (its source noted). */
static enum cms_ocsp
check_ocsp(struct check_state *cs, X509_STORE_CTX *ctx, int d)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	struct store_ocsp o;
	enum cms_ocsp r;

	if (chain == NULL || d + 1 >= sk_X509_num(chain))
		return CMS_OCSP_NONE;
	r = certcache_ocsp_stored(cs->st, sk_X509_value(chain, d),
	    sk_X509_value(chain, d + 1), &o);
	if (r != CMS_OCSP_NONE)
		snprintf(cs->ocsp_src[d], sizeof(cs->ocsp_src[d]), "%s",
		    o.source);
	return r;
}

/* Note every problem by depth and go on, to report the whole path. */
static int
check_cb(int ok, X509_STORE_CTX *ctx)
{
	struct check_state *cs = X509_STORE_CTX_get_app_data(ctx);
	int d = X509_STORE_CTX_get_error_depth(ctx);
	int e = X509_STORE_CTX_get_error(ctx);

	if (ok || cs == NULL)
		return 1;
	if (d < 0 || d >= CHECK_DEPTH)
		d = CHECK_DEPTH - 1;
	switch (e) {
	case X509_V_ERR_CERT_REVOKED:
		cs->revoked[d] = 1;
		break;
	case X509_V_ERR_CRL_HAS_EXPIRED:
		cs->stale[d] = 1;
		break;
	default:
		if (cms_crl_missing(e) && cms_at_anchor(ctx))
			break;          /* an anchor: not checked */
		if (cms_crl_missing(e)) {
			switch (check_ocsp(cs, ctx, d)) {
			case CMS_OCSP_GOOD:
				cs->ocsp[d] = 1;
				break;
			case CMS_OCSP_REVOKED:
				cs->ocsp[d] = cs->revoked[d] = 1;
				break;
			default:
				cs->nocrl[d] = 1;
			}
		} else if (cs->err[d] == 0)
			cs->err[d] = e;
	}
	return 1;
}

/* The certificate named on the command line; NULL (said why) if none. */
static X509 *
check_target(struct store *st, int argc, char *argv[])
{
	X509 *x = NULL;
	char *end;
	long long id;
	int caps;

	if (argc == 3 && strcmp(argv[1], "--email") == 0) {
		if ((x = store_best_cert_for(st, argv[2], time(NULL),
		    &caps)) == NULL)
			fprintf(stderr, "smrelayctl: cert check: no usable "
			    "certificate for %s\n", argv[2]);
		return x;
	}
	id = strtoll(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || id <= 0 ||
	    (x = store_cert_get(st, id)) == NULL)
		fprintf(stderr, "smrelayctl: cert check: no certificate %s\n",
		    argv[1]);
	return x;
}

/* Where the CRL that decided the link issued by issuer came from. */
static void
crl_from(const struct check_state *cs, X509 *issuer, char *buf, size_t len)
{
	X509_CRL *crl = issuer != NULL ? cms_crl_of(cs->crls, issuer) : NULL;

	if (crl == NULL || store_crl_source(cs->st, crl, buf, len) != 1 ||
	    strcmp(buf, "import") == 0)
		snprintf(buf, len, "imported");
}

/* One link (issued by issuer, NULL at the top): its name, validity and
 * revocation.  1 if it is a problem. */
static int
check_link(X509 *x, X509 *issuer, int depth, int top,
    const struct check_state *cs, enum config_revocation mode, json_t *links)
{
	char *name = store_name_str(X509_get_subject_name(x)), nb[32], na[32];
	char revbuf[600], src[512];
	const char *rev;
	int bad = cs->err[depth] != 0 || cs->revoked[depth];

	store_time_str(store_asn1_time(X509_get0_notBefore(x)), nb,
	    sizeof(nb));
	store_time_str(store_asn1_time(X509_get0_notAfter(x)), na,
	    sizeof(na));
	if (top)
		rev = "trust anchor";
	else if (mode == CONFIG_REV_OFF)
		rev = "revocation not checked (revocation = off)";
	else if (cs->ocsp[depth]) {
		snprintf(revbuf, sizeof(revbuf), "%s (OCSP, %s)",
		    cs->revoked[depth] ? "REVOKED" : "good",
		    cs->ocsp_src[depth]);
		rev = revbuf;
	} else if (cs->nocrl[depth]) {
		rev = "revocation unknown (no usable CRL)";
		bad |= mode == CONFIG_REV_HARD;
	} else {
		crl_from(cs, issuer, src, sizeof(src));
		snprintf(revbuf, sizeof(revbuf), "%s (CRL, %s%s)",
		    cs->revoked[depth] ? "REVOKED" : "good", src,
		    cs->stale[depth] ? ", past its nextUpdate" : "");
		rev = revbuf;
	}
	if (links != NULL)
		json_array_append_new(links, json_pack("{s:i, s:o, s:s, s:s, "
		    "s:b, s:b, s:o, s:o}", "depth", depth, "subject",
		    ctl_json_str(name), "not_before", nb, "not_after", na,
		    "trust_anchor", top, "revoked", cs->revoked[depth],
		    "revocation", ctl_json_str(rev), "error", cs->err[depth] ?
		    json_string(X509_verify_cert_error_string(cs->err[depth])) :
		    json_null()));
	else
		printf("%d\t%s\t%s .. %s\t%s%s%s\n", depth, name, nb, na,
		    rev, cs->err[depth] ? "\t" : "", cs->err[depth] ?
		    X509_verify_cert_error_string(cs->err[depth]) : "");
	free(name);
	return bad;
}

/* Verify x with every problem noted; print the path (a JSON object with
 * json); CTL_OK when usable, CTL_NO when not, CTL_FAIL. */
static int
check_path(struct store *st, X509 *x, enum config_revocation mode, int json)
{
	json_t *links = json ? json_array() : NULL;
	struct check_state cs;
	STACK_OF(X509) *inter = store_ca_certs(st), *chain;
	X509_STORE *xs = store_trust_x509_store(st);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int i, n, bad = 0, anchored;

	memset(&cs, 0, sizeof(cs));
	cs.st = st;
	if (inter == NULL || xs == NULL || ctx == NULL ||
	    (cs.crls = store_trust_crls(xs)) == NULL ||
	    X509_STORE_CTX_init(ctx, xs, x, inter) != 1) {
		fprintf(stderr, "smrelayctl: cert check: cannot read the "
		    "store\n");
		json_decref(links);
		bad = CTL_FAIL;
		goto done;
	}
	if (mode != CONFIG_REV_OFF)
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK |
		    X509_V_FLAG_CRL_CHECK_ALL);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_ENCRYPT);
	X509_STORE_CTX_set_app_data(ctx, &cs);
	X509_STORE_CTX_set_verify_cb(ctx, check_cb);
	(void)X509_verify_cert(ctx);
	chain = X509_STORE_CTX_get0_chain(ctx);
	n = chain != NULL ? sk_X509_num(chain) : 0;
	anchored = n > 0 && X509_check_issued(sk_X509_value(chain, n - 1),
	    sk_X509_value(chain, n - 1)) == X509_V_OK;
	for (i = 0; i < n && i < CHECK_DEPTH; i++)
		bad |= check_link(sk_X509_value(chain, i), i + 1 < n ?
		    sk_X509_value(chain, i + 1) : NULL, i, anchored &&
		    i == n - 1, &cs, mode, links);
	bad = bad ? CTL_NO : CTL_OK;
	if (links != NULL) {
		if (ctl_json_print(json_pack("{s:b, s:o}", "usable", bad ==
		    CTL_OK, "chain", links)) != 0)
			bad = CTL_FAIL;
	} else
		printf("usable: %s\n", bad == CTL_OK ? "yes" : "no");
 done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(xs);
	sk_X509_pop_free(inter, X509_free);
	sk_X509_CRL_pop_free(cs.crls, X509_CRL_free);
	return bad;
}

int
ctl_check_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct config *cfg;
	struct keyfile *kf;
	struct store *st;
	char err[1024];
	X509 *x;
	int rc = CTL_FAIL;

	if (argc != 2 && !(argc == 3 && strcmp(argv[1], "--email") == 0)) {
		fprintf(stderr, "usage: smrelayctl cert check %s\n", cmd->args);
		return CTL_USAGE;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	if (ctl_open_store(cfg, &st, &kf) == 0) {
		if ((x = check_target(st, argc, argv)) != NULL) {
			rc = check_path(st, x, cfg->revocation, o->json);
			X509_free(x);
		} else
			rc = CTL_NO;    /* no such certificate */
		keyfile_close(kf);
		store_close(st);
	}
	config_free(cfg);
	return rc;
}
