/* keyd_server.c: the key process's side of the socketpair (keyd_server.h):
 * frames in, operations on the keyring, answers out in order. */
#include "autoconfig.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include "keyd_server.h"
#include "daemon/base/base.h"
#include "lib/lib.h"

/* Input: complete frames are handled as they come, so at most a partial
 * frame plus what arrived with it waits here. */
#define KEYD_IN_HIGH	(16 * KEYPROTO_MAX_FRAME)
/* Output: stop reading requests above HIGH, read again at LOW. */
#define KEYD_OUT_HIGH	(64 * 1024)
#define KEYD_OUT_LOW	(16 * 1024)
/* The scratch area: one answer frame, then one operation's result. */
#define KEYD_SCRATCH	(KEYPROTO_MAX_FRAME + KEYPROTO_MAX_DATA)
/* Operations on the worker threads at once; reading stops beyond. */
#define KEYD_INFLIGHT	256

struct keyd_server {
	struct bufferevent	*bev;
	struct keyd_keyring	*kr;
	unsigned long long	 id;		/* for the logs */
	const char		*closing;	/* flush, then close: why */
	int			 paused;	/* output over KEYD_OUT_HIGH */
	keyd_server_closed_cb	*closed_cb;
	void			*arg;
	uint8_t			*scratch;	/* MADV_DONTDUMP: results */
	size_t			 scratchlen;
	time_t			 fail_sec;	/* failed unwraps in that second */
	unsigned		 fail_n;
	unsigned		 busy_n;	/* unwraps refused in it */
	struct workers		*workers;	/* NULL: operations inline */
	unsigned		 inflight;	/* jobs on the workers */
	int			 freed;		/* free after the last job */
	keyd_server_miss_cb	*miss_cb;	/* a key not in kr was named */
	void			*miss_arg;
};

/* One operation on a worker thread: the request copied out of the frame,
 * its result in the secure heap (out of core dumps, cleared when freed). */
struct keyd_job {
	struct keyd_server	*s;
	struct keyd_keyring	*kr;		/* a reference */
	struct keyproto_req	 req;
	uint8_t			 data[KEYPROTO_MAX_DATA];
	uint8_t			*out;
	size_t			 outlen;
	int			 code;
	const char		*why;
};

static void server_process(struct keyd_server *);
static void job_submit(struct keyd_server *, const struct keyproto_req *);
static void server_read_cb(struct bufferevent *, void *);
static void server_write_cb(struct bufferevent *, void *);
static void server_event_cb(struct bufferevent *, short, void *);

/* Not dumpable, no core (see keyd_server.h). */
int
keyd_harden(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return -1;
	return setrlimit(RLIMIT_CORE, &rl);
}

/* Pages for results (unwrapped keys, shared secrets) that a core file
 * leaves out, cleared before they are unmapped. */
static uint8_t *
scratch_new(size_t *lenp)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t len = KEYD_SCRATCH;
	void *p;

	if (pg > 0)
		len = (len + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		alloc_fail("mmap %zu", len);
#ifdef MADV_DONTDUMP
	if (madvise(p, len, MADV_DONTDUMP) == -1)
		log_warn("keyd: madvise MADV_DONTDUMP");
#endif
	*lenp = len;
	return p;
}

/* Serve requests on fd. */
struct keyd_server *
keyd_server_new(struct event_base *base, int fd, struct keyd_keyring *kr)
{
	struct keyd_server *s;

	s = xcalloc(1, sizeof(*s));
	s->kr = kr;
	s->id = (unsigned long long)new_session_id();
	s->scratch = scratch_new(&s->scratchlen);
	if ((s->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		alloc_fail("bufferevent_socket_new");
	bufferevent_setcb(s->bev, server_read_cb, server_write_cb,
	    server_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, KEYD_IN_HIGH);
	bufferevent_setwatermark(s->bev, EV_WRITE, KEYD_OUT_LOW, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_debug("keyd id=%016llx start fd=%d keys=%zu", s->id, fd,
	    keyd_keyring_count(kr));
	return s;
}

/* Answer from kr from now on (a reload); the caller frees the old one
 * (jobs still on the workers hold their own reference). */
void
keyd_server_set_keyring(struct keyd_server *s, struct keyd_keyring *kr)
{
	s->kr = kr;
}

/* Call cb before answering a request for a key kr does not have. */
void
keyd_server_set_miss_cb(struct keyd_server *s, keyd_server_miss_cb *cb,
    void *arg)
{
	s->miss_cb = cb;
	s->miss_arg = arg;
}

/* Run the operations on w's threads; answers then come as they finish. */
void
keyd_server_set_workers(struct keyd_server *s, struct workers *w)
{
	s->workers = w;
}

/* Be told when the connection closes. */
void
keyd_server_set_closed_cb(struct keyd_server *s, keyd_server_closed_cb *cb,
    void *arg)
{
	s->closed_cb = cb;
	s->arg = arg;
}

/* Close the connection and free the server. */
void
keyd_server_free(struct keyd_server *s)
{
	if (s == NULL)
		return;
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->inflight > 0) {          /* the last job's done frees it */
		s->freed = 1;
		return;
	}
	OPENSSL_cleanse(s->scratch, s->scratchlen);
	munmap(s->scratch, s->scratchlen);
	free(s);
}

/* The connection is over: close it and tell the owner, who may free s. */
static void
server_closed(struct keyd_server *s, const char *why)
{
	log_info("keyd id=%016llx closed reason=%s", s->id, why);
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->closed_cb != NULL)
		s->closed_cb(s, s->arg);
}

/* Queue one answer. */
static void
server_answer(struct keyd_server *s, uint32_t id, uint16_t code,
    const void *data, size_t len)
{
	struct keyproto_rep rep;
	size_t n;

	memset(&rep, 0, sizeof(rep));
	rep.type = code == 0 ? KP_OK : KP_ERR;
	rep.id = id;
	rep.code = code;
	rep.data = data;
	rep.len = code == 0 || len <= KEYPROTO_MAX_TEXT ? len :
	    KEYPROTO_MAX_TEXT;
	n = keyproto_rep_encode(&rep, s->scratch, KEYPROTO_MAX_FRAME);
	if (n == 0)
		fatalx("keyd: cannot encode an answer");
	if (bufferevent_write(s->bev, s->scratch, n) == -1)
		alloc_fail("bufferevent_write");
	OPENSSL_cleanse(s->scratch, n);
}

/* Read no more; close once the answers are sent. */
static void
server_closing(struct keyd_server *s, const char *why)
{
	s->closing = why;
	bufferevent_disable(s->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
}

/* A malformed request: say so, stop reading and close once it is sent. */
static void
server_proto_error(struct keyd_server *s, const uint8_t *frame,
    const char *why)
{
	uint32_t id = (uint32_t)frame[8] << 24 | (uint32_t)frame[9] << 16 |
	    (uint32_t)frame[10] << 8 | frame[11];

	log_warnx("keyd id=%016llx malformed request id=%u type=%u: %s; "
	    "closing", s->id, id, frame[5], why);
	server_answer(s, id, KP_E_PROTO, why, strlen(why));
	server_closing(s, "malformed request");
}

/* Whether r is an unwrap the failed-unwrap limit counts and refuses:
 * PKCS#1 v1.5 without a key length, the one whose error tells a bad
 * padding.  With a key length it never fails on one (implicit rejection);
 * OAEP's failures are one error whatever went wrong, and refusing them
 * would only let a sender's bad blocks stop good ones. */
static int
unwrap_counted(const struct keyproto_req *r)
{
	return r->type == KP_DECRYPT && r->alg == KP_PAD_PKCS1 &&
	    r->keylen == 0;
}

/* Whether unwraps are refused for now: too many failed this second. */
static int
unwrap_limited(struct keyd_server *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec != s->fail_sec) {
		if (s->busy_n > 0)
			log_warnx("keyd id=%016llx unwrap rate limit: "
			    "refused=%u failed=%u in one second", s->id,
			    s->busy_n, s->fail_n);
		s->fail_sec = ts.tv_sec;
		s->fail_n = s->busy_n = 0;
	}
	if (s->fail_n < KEYD_UNWRAP_FAILS)
		return 0;
	if (s->busy_n++ == 0)
		log_warnx("keyd id=%016llx unwrap rate limit reached: "
		    "%u failures this second", s->id, s->fail_n);
	return 1;
}

/* Answer a request with the result of its operation. */
static void
server_result(struct keyd_server *s, const struct keyproto_req *r, int code,
    const uint8_t *out, size_t outlen, const char *why)
{
	if (code == 0) {
		server_answer(s, r->id, 0, out, outlen);
		if (why != NULL)	/* done, with something to say */
			log_warnx("keyd id=%016llx %s id=%u ok: %s", s->id,
			    keyproto_type_name(r->type), r->id, why);
		else
			log_debug("keyd id=%016llx %s id=%u ok", s->id,
			    keyproto_type_name(r->type), r->id);
		return;
	}
	if (unwrap_counted(r) && code == KP_E_FAILED)
		s->fail_n++;
	log_info("keyd id=%016llx %s id=%u error=%d reason=%s", s->id,
	    keyproto_type_name(r->type), r->id, code, why);
	server_answer(s, r->id, (uint16_t)code, why, strlen(why));
}

/* On a worker thread: the operation. */
static void
job_run(void *arg, void *tctx)
{
	struct keyd_job *j = arg;

	(void)tctx;
	j->code = keyd_keyring_op(j->kr, &j->req, j->out, KEYPROTO_MAX_DATA,
	    &j->outlen, &j->why);
}

/* Back on the loop: answer (unless the connection is gone), free. */
static void
job_done(void *arg)
{
	struct keyd_job *j = arg;
	struct keyd_server *s = j->s;

	if (s->bev != NULL)     /* closing too: asked before the close */
		server_result(s, &j->req, j->code, j->out, j->outlen,
		    j->why != NULL ? j->why : "failed");
	OPENSSL_secure_clear_free(j->out, KEYPROTO_MAX_DATA);
	keyd_keyring_free(j->kr);
	OPENSSL_cleanse(j->data, sizeof(j->data));
	free(j);
	s->inflight--;
	if (s->freed && s->inflight == 0) {
		keyd_server_free(s);
		return;
	}
	if (s->bev != NULL && s->closing != NULL && s->inflight == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		server_closed(s, s->closing);
		return;
	}
	if (s->bev != NULL && s->paused && s->inflight < KEYD_INFLIGHT / 2) {
		s->paused = 0;
		bufferevent_enable(s->bev, EV_READ);
		server_process(s);
	}
}

/* Hand a request to the workers (its data copied: the frame goes). */
static void
job_submit(struct keyd_server *s, const struct keyproto_req *r)
{
	struct keyd_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->kr = keyd_keyring_ref(s->kr);
	j->req = *r;
	memcpy(j->data, r->data, r->len);
	j->req.data = j->data;
	if ((j->out = OPENSSL_secure_zalloc(KEYPROTO_MAX_DATA)) == NULL)
		alloc_fail("OPENSSL_secure_zalloc");
	s->inflight++;
	workers_submit(s->workers, job_run, job_done, j);
}

/*
 * Carry out one decoded request and answer it: on the workers when its key
 * is slow (RSA, a token) or others wait behind it (more) or run; else on
 * the loop (handing an ECDSA signature to a thread costs more than making
 * it).  Unwraps always on the loop, one at a time.
 */
static void
server_request(struct keyd_server *s, const struct keyproto_req *r, int more)
{
	uint8_t *out = s->scratch + KEYPROTO_MAX_FRAME;
	const char *why = NULL;
	size_t outlen = 0;
	int code;

	if (r->type == KP_PING) {
		server_answer(s, r->id, 0, NULL, 0);
		return;
	}
	/* a key we do not have may have just been imported: the key file
	 * is looked at now rather than at the next tick (the network
	 * process learns of a key from the store, written after the key
	 * file, and may ask before the tick) */
	if ((r->type == KP_SIGN || r->type == KP_DECRYPT ||
	    r->type == KP_DERIVE) && s->miss_cb != NULL &&
	    !keyd_keyring_has(s->kr, r->fp))
		s->miss_cb(s->miss_arg);
	/* only the unwraps whose errors would tell a padding are limited
	 * (unwrap_counted); refusing the others would tell what the limit
	 * counted, and let bad blocks stop good ones */
	if (unwrap_counted(r) && unwrap_limited(s)) {
		why = "too many failed unwraps";
		server_answer(s, r->id, KP_E_BUSY, why, strlen(why));
		return;
	}
	/* Unwraps stay on the loop, one at a time: the failed-unwrap limit
	 * counts each before the next is tried. */
	if (s->workers != NULL && r->type != KP_DECRYPT &&
	    (keyd_keyring_slow(s->kr, r->fp) || s->inflight > 0 || more)) {
		job_submit(s, r);
		return;
	}
	code = keyd_keyring_op(s->kr, r, out, KEYPROTO_MAX_DATA, &outlen, &why);
	server_result(s, r, code, out, outlen, why);
	OPENSSL_cleanse(out, outlen);
}

/* Handle every complete frame of the input, unless answers pile up. */
static void
server_process(struct keyd_server *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct keyproto_req req;
	const uint8_t *p;
	char err[128];
	size_t avail, flen;
	int r, more;

	while (s->closing == NULL) {
		if (evbuffer_get_length(out) > KEYD_OUT_HIGH ||
		    s->inflight >= KEYD_INFLIGHT) {
			s->paused = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		avail = evbuffer_get_length(in);
		if (avail > KEYPROTO_MAX_FRAME)
			avail = KEYPROTO_MAX_FRAME;
		if (avail < KEYPROTO_HDR)
			return;
		if ((p = evbuffer_pullup(in, (ev_ssize_t)avail)) == NULL)
			alloc_fail("evbuffer_pullup");
		if ((r = keyproto_frame(p, avail, &flen)) == 0)
			return;
		if (r == -1)
			server_proto_error(s, p, "bad frame header");
		else if (keyproto_req_decode(p, flen, &req, err,
		    sizeof(err)) == -1)
			server_proto_error(s, p, err);
		else {
			/* another request behind this one, whole or not */
			more = evbuffer_get_length(in) > flen;
			server_request(s, &req, more);
			evbuffer_drain(in, flen);
		}
	}
}

/* Requests came in. */
static void
server_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	server_process(arg);
}

/* Answers went out: close when the last one is sent, or read again. */
static void
server_write_cb(struct bufferevent *bev, void *arg)
{
	struct keyd_server *s = arg;

	if (s->closing != NULL) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
		    s->inflight == 0)
			server_closed(s, s->closing);
		return;
	}
	if (s->paused && s->inflight < KEYD_INFLIGHT) {
		s->paused = 0;
		bufferevent_enable(bev, EV_READ);
		server_process(s);
	}
}

/* The peer closed, or the socket failed. */
static void
server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct keyd_server *s = arg;

	if (what & BEV_EVENT_ERROR)
		server_closed(s, strerror(errno));
	else if ((what & BEV_EVENT_EOF) && s->closing == NULL &&
	    (evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
	    s->inflight > 0))
		server_closing(s, "peer closed");	/* send the answers */
	else if ((what & BEV_EVENT_EOF) && s->inflight > 0)
		bufferevent_disable(bev, EV_READ);	/* answers first */
	else if (what & BEV_EVENT_EOF)
		server_closed(s, s->closing != NULL ? s->closing :
		    "peer closed");
}
