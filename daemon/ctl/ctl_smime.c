/* ctl_smime.c: smrelayctl smime sign|encrypt|decrypt|verify: one
 * transformation of a message from stdin with the daemon's engine. */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "ctl.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "store/store.h"

/* What `smime VERB` was given. */
struct smime_cmd {
	const char *verb;
	const char *from;		/* sign, encrypt --sign: --from */
	const char **to;		/* encrypt: --to */
	size_t nto;
	int sign;			/* encrypt --sign */
	struct smime_msg_opts opts;
};

/* --cipher NAME; -1 (message printed) for an unknown one. */
static int
smime_cipher(const char *name, struct smime_msg_opts *o)
{
	if (strcmp(name, "aes256-cbc") == 0)
		o->cipher = SMIME_MSG_CBC;
	else if (strcmp(name, "aes256-gcm") == 0)
		o->cipher = SMIME_MSG_GCM;
	else {
		fprintf(stderr, "smrelayctl: smime encrypt: unknown cipher "
		    "\"%s\" (aes256-cbc or aes256-gcm)\n", name);
		return -1;
	}
	return 0;
}

/* The arguments of smime VERB; -1 (message printed) if they do not fit. */
static int
smime_args(struct smime_cmd *sc, int argc, char *argv[])
{
	int i, enc = strcmp(sc->verb, "encrypt") == 0;
	int sign = strcmp(sc->verb, "sign") == 0;

	sc->to = xcalloc((size_t)argc + 1, sizeof(*sc->to));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc &&
		    (sign || enc))
			sc->from = argv[++i];
		else if (strcmp(argv[i], "--opaque") == 0 && (sign || enc))
			sc->opts.opaque = 1;
		else if (strcmp(argv[i], "--pss") == 0 && (sign || enc))
			sc->opts.pss = 1;
		else if (strcmp(argv[i], "--sign") == 0 && enc)
			sc->sign = 1;
		else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc && enc) {
			while (i + 1 < argc && argv[i + 1][0] != '-')
				sc->to[sc->nto++] = argv[++i];
		} else if (strcmp(argv[i], "--cipher") == 0 && i + 1 < argc &&
		    enc) {
			if (smime_cipher(argv[++i], &sc->opts) == -1)
				return -1;
		} else {
			fprintf(stderr, "smrelayctl: smime %s: unexpected "
			    "argument \"%s\"\n", sc->verb, argv[i]);
			return -1;
		}
	}
	if ((sign || sc->sign) && sc->from == NULL) {
		fprintf(stderr, "smrelayctl: smime %s: missing --from ADDR\n",
		    sc->verb);
		return -1;
	}
	if (enc && sc->nto == 0) {
		fprintf(stderr, "smrelayctl: smime encrypt: missing --to "
		    "ADDR\n");
		return -1;
	}
	return 0;
}

/* The decrypted message *dec, with what was signed inside verified as
 * the daemon's pipeline does; takes *dec. */
static struct msgbuf *
decrypted(const struct certsrc *src, const char *host, struct msgbuf **dec,
    struct smime_msg_res *res)
{
	struct smime_msg_res v;
	struct mime_tree t;
	struct msgbuf *m = *dec, *out = NULL;
	char *hdr;
	size_t hlen, body;

	*dec = NULL;
	memset(&v, 0, sizeof(v));
	if ((hdr = smime_stream_header(m, SMIME_STREAM_HDR_MAX, &hlen,
	    &body)) == NULL || smime_stream_parse(m, &t) == -1) {
		free(hdr);
		return m;
	}
	/* signed as the daemon's pipeline finds it (opaque too) */
	if (smime_stream_verify_signed(src, m, &t, hdr, hlen, host, tmp_dir(),
	    &out, &v) == 0) {
		smime_msg_res_free(res);
		*res = v;
	}
	mime_tree_free(&t);
	free(hdr);
	if (out == NULL)
		return m;
	msgbuf_free(m);
	return out;
}

/* Run the transformation in pieces: CTL_OK; 1 when it cannot be done (no
 * key, no certificate, bad input) or verify's verdict is not pass
 * (reported), or the output cannot be written. */
static int
smime_exec_stream(struct smime_cmd *sc, const struct certsrc *src,
    const char *host, struct msgbuf *in)
{
	struct smime_msg_res res;
	struct mime_tree t;
	struct msgbuf *out = NULL, *dec = NULL;
	char *hdr;
	size_t hlen, body;
	int r, rc = 0, enc = strcmp(sc->verb, "encrypt") == 0;

	memset(&res, 0, sizeof(res));
	if ((hdr = smime_stream_header(in, SMIME_STREAM_HDR_MAX, &hlen,
	    &body)) == NULL || smime_stream_parse(in, &t) == -1) {
		fprintf(stderr, "smrelayctl: smime %s: %s\n", sc->verb, hdr ==
		    NULL ? "header block over 1 MB" : "message over the MIME "
		    "limits");
		free(hdr);
		return 1;
	}
	if (strcmp(sc->verb, "sign") == 0 || enc)
		r = smime_stream_wrap(src, in, &t, tmp_dir(), sc->from, sc->to,
		    sc->nto, &sc->opts, !enc || sc->sign, enc, &out, &res);
	else if (strcmp(sc->verb, "decrypt") == 0) {
		r = smime_stream_decrypt(src, in, &t, hdr, hlen, host,
		    tmp_dir(), &dec, &res);
		if (r == 0)
			out = decrypted(src, host, &dec, &res);
	} else {
		r = smime_stream_verify(src, in, &t, hdr, hlen, host,
		    tmp_dir(), &out, &res);
		rc = r == 0 && res.outcome != SMIME_PASS;
	}
	if (r != 0 || out == NULL) {
		fprintf(stderr, "smrelayctl: smime %s: %s\n", sc->verb,
		    res.err);
		rc = 1;
	} else if (ctl_write_mb(out) == -1)
		rc = 1;
	msgbuf_free(out);
	msgbuf_free(dec);
	smime_msg_res_free(&res);
	mime_tree_free(&t);
	free(hdr);
	return rc;
}

/* smime VERB: one transformation of the message on stdin, to stdout. */
int
ctl_smime_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct smime_cmd sc;
	struct certsrc src = { NULL, NULL, NULL };
	struct config *cfg;
	struct keyfile *kf;
	struct store *st;
	struct msgbuf *mb;
	char err[1024];
	int rc = CTL_FAIL;

	memset(&sc, 0, sizeof(sc));
	sc.verb = cmd->verb;
	if (smime_args(&sc, argc - 1, argv + 1) == -1) {
		free(sc.to);
		return CTL_USAGE;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		free(sc.to);
		return CTL_FAIL;
	}
	if (ctl_open_store(cfg, &st, &kf) == -1)
		st = NULL;
	else if (certcache_set_revocation(src.cc = certcache_new(),
	    cfg->revocation), keys_set_keyfile(certcache_keys(src.cc), kf),
	    certcache_sync(src.cc, src.st = st, 1, err, sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s\n", err);
	else if ((mb = ctl_read_stdin_mb(cfg->max_message_size)) != NULL) {
		rc = smime_exec_stream(&sc, &src, cfg->hostname, mb);
		msgbuf_free(mb);
	}
	certcache_free(src.cc);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smrelayctl: stdout: %s\n", strerror(errno));
		rc = CTL_FAIL;
	}
	if (st != NULL)
		store_close(st);
	config_free(cfg);
	free(sc.to);
	return rc;
}

