/* keyd_client.c: the key process client (keyd_client.h). */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/lib.h"
#include "proto/proto.h"

#include "keyd_client.h"

/*
 * No reader thread: a calling thread that finds nobody reading the socket
 * reads it itself (the leader) until its own answer is in, handing the
 * other answers it finds to their callers; then it wakes one waiter to take
 * over.  A lone caller thus costs one wake-up per request (its own poll),
 * not two (a reader thread's, then the caller's).
 */

/* A call waiting for its answer; on the caller's stack, or in a struct
 * keyd_async on the heap. */
struct pending {
	struct pending	*next;
	uint32_t	 id;
	int		 efd;		/* async: signalled when done; else -1 */
	pthread_cond_t	 cond;
	int		 done;		/* 1 answered, -1 failed */
	int		 rc;
	uint8_t		*out;
	size_t		 outcap, outlen;
	char		*err;
	size_t		 errlen;
};

struct keyd_client {
	int		 fd;		/* -1 once closed (mu and wmu held) */
	pthread_mutex_t	 mu;		/* everything below but the buffer */
	pthread_mutex_t	 wmu;		/* one writer at a time */
	int		 refs;
	int		 dead;
	int		 closing;	/* freed: the last reader closes fd */
	int		 reading;	/* a thread is the reader */
	int		 stalled;	/* a call timed out; no answer since */
	int		 timeout_ms;
	uint32_t	 next_id;
	struct pending	*waiting;
	char		 why[128];	/* why it is dead */
	/* the reader's: a partial answer carried from one reader to the
	 * next */
	uint8_t		 rbuf[2 * KEYPROTO_MAX_FRAME];
	size_t		 rhave;
};

/* Unlink p from the waiting list (mu held). */
static void
unlink_pending(struct keyd_client *c, struct pending *p)
{
	struct pending **pp;

	for (pp = &c->waiting; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

/* Tell p's caller that it is done: its thread, or the event loop through
 * its descriptor. */
static void
wake(struct pending *p)
{
	uint64_t one = 1;

	if (p->efd == -1)
		pthread_cond_signal(&p->cond);
	else if (write(p->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("keyd client: eventfd");
}

/* The key process is gone: fail every waiter (mu held). */
static void
fail_all(struct keyd_client *c, const char *why)
{
	struct pending *p;

	if (!c->dead) {
		c->dead = 1;
		snprintf(c->why, sizeof(c->why), "%s", why);
	}
	while ((p = c->waiting) != NULL) {
		c->waiting = p->next;
		snprintf(p->err, p->errlen, "key process unavailable (%s)",
		    c->why);
		p->rc = KEYD_E_UNAVAILABLE;
		p->done = -1;
		wake(p);
	}
}

/* Hand one decoded answer to its waiter (mu held); an answer nobody waits
 * for (the call timed out) is dropped. */
static void
deliver(struct keyd_client *c, const struct keyproto_rep *rep)
{
	struct pending *p;

	c->stalled = 0;         /* it answers again, if late */
	for (p = c->waiting; p != NULL && p->id != rep->id; p = p->next)
		;
	if (p == NULL)
		return;
	unlink_pending(c, p);
	if (rep->type == KP_ERR) {
		snprintf(p->err, p->errlen, "key process: %.*s",
		    (int)rep->len, (const char *)rep->data);
		p->rc = KEYD_E_REFUSED;
	} else if (rep->len > p->outcap) {
		snprintf(p->err, p->errlen, "key process answer too long"
		    " (%zu bytes)", rep->len);
		p->rc = KEYD_E_REFUSED;
	} else {
		if (rep->len > 0)
			memcpy(p->out, rep->data, rep->len);
		p->outlen = rep->len;
		p->rc = 0;
	}
	p->done = 1;
	wake(p);
}

/* Decode and deliver the whole frames in the read buffer (the reader's);
 * 0, or -1 on a malformed answer (why set). */
static int
dispatch(struct keyd_client *c, char *why, size_t whylen)
{
	struct keyproto_rep rep;
	size_t off = 0, flen;
	char err[96];
	int r, rc = 0;

	pthread_mutex_lock(&c->mu);
	while ((r = keyproto_frame(c->rbuf + off, c->rhave - off,
	    &flen)) == 1) {
		if (keyproto_rep_decode(c->rbuf + off, flen, &rep, err,
		    sizeof(err)) == -1) {
			snprintf(why, whylen, "bad answer: %s", err);
			rc = -1;
			break;
		}
		deliver(c, &rep);
		off += flen;
	}
	pthread_mutex_unlock(&c->mu);
	if (rc == 0 && r == -1) {
		snprintf(why, whylen, "bad answer frame header");
		rc = -1;
	}
	memmove(c->rbuf, c->rbuf + off, c->rhave - off);
	c->rhave -= off;
	return rc;
}

/* Milliseconds from now to the CLOCK_MONOTONIC time ts (0 if past). */
static int
ms_until(const struct timespec *ts)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(ts->tv_sec - now.tv_sec) * 1000 +
	    (ts->tv_nsec - now.tv_nsec + 999999) / 1000000;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/*
 * As the reader: read answers and hand them out until p has its own, the
 * deadline ts passes (with wait 0: until nothing more is there to read),
 * or the key process is gone (every waiter failed).  Called without mu,
 * with c->reading set by the caller.
 */
static void
read_answers(struct keyd_client *c, struct pending *p,
    const struct timespec *ts, int wait)
{
	struct pollfd pfd;
	char why[128];
	ssize_t n;
	int done;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		done = c->dead || (p != NULL && p->done);
		pthread_mutex_unlock(&c->mu);
		if (done)
			return;
		n = recv(c->fd, c->rbuf + c->rhave, sizeof(c->rbuf) - c->rhave,
		    MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait)
				return;
			pfd.fd = c->fd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, ms_until(ts)) == 0)
				return;         /* the caller's deadline */
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, sizeof(why), "%s", n == 0 ?
			    "connection closed" : strerror(errno));
			break;
		}
		c->rhave += (size_t)n;
		if (dispatch(c, why, sizeof(why)) == -1)
			break;
	}
	pthread_mutex_lock(&c->mu);
	fail_all(c, why);
	pthread_mutex_unlock(&c->mu);
	/* A bad answer: make the key process see the end too. */
	shutdown(c->fd, SHUT_RDWR);
}

/* Close the socket (mu held, nobody reading). */
static void
close_fd(struct keyd_client *c)
{
	pthread_mutex_lock(&c->wmu);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&c->wmu);
}

/* The reader is done (mu held): close a freed client's socket, or wake a
 * waiter to read in its place. */
static void
reader_done(struct keyd_client *c)
{
	struct pending *p;

	c->reading = 0;
	if (c->closing) {
		close_fd(c);
		return;
	}
	/* a thread that waits can read next (the loop polls for its own) */
	for (p = c->waiting; p != NULL && p->efd != -1; p = p->next)
		;
	if (p != NULL)
		pthread_cond_signal(&p->cond);
}

struct keyd_client *
keyd_client_new(int fd)
{
	struct keyd_client *c = xcalloc(1, sizeof(*c));

	c->fd = fd;
	c->refs = 1;
	c->timeout_ms = KEYD_TIMEOUT_MS;
	c->next_id = 1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wmu, NULL);
	return c;
}

void
keyd_client_set_timeout(struct keyd_client *c, int ms)
{
	pthread_mutex_lock(&c->mu);
	c->timeout_ms = ms;
	pthread_mutex_unlock(&c->mu);
}

int
keyd_client_alive(struct keyd_client *c)
{
	int alive;

	/* nobody reads between calls: look for an EOF (or late answers)
	 * without waiting */
	keyd_client_poll(c);
	pthread_mutex_lock(&c->mu);
	alive = !c->dead && !c->stalled;
	pthread_mutex_unlock(&c->mu);
	return alive;
}

/* Write a whole frame without SIGPIPE; 0, or -1 with errno. */
static int
send_frame(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The absolute CLOCK_MONOTONIC time ms from now. */
static void
deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Register p and send its frame; 0, or -1 with p->rc and p->err set. */
static int
call_send(struct keyd_client *c, struct pending *p,
    const struct keyproto_req *req)
{
	struct keyproto_req r = *req;
	uint8_t frame[KEYPROTO_MAX_FRAME];
	size_t flen;
	int e;

	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		snprintf(p->err, p->errlen, "key process unavailable (%s)",
		    c->why);
		pthread_mutex_unlock(&c->mu);
		p->rc = KEYD_E_UNAVAILABLE;
		return -1;
	}
	if ((p->id = c->next_id++) == 0)
		p->id = c->next_id++;
	p->next = c->waiting;
	c->waiting = p;
	pthread_mutex_unlock(&c->mu);
	r.id = p->id;
	if ((flen = keyproto_req_encode(&r, frame, sizeof(frame))) == 0) {
		snprintf(p->err, p->errlen, "invalid %s request",
		    keyproto_type_name(req->type));
		p->rc = KEYD_E_REFUSED;
		goto unregister;
	}
	pthread_mutex_lock(&c->wmu);
	if (c->fd == -1)
		e = EPIPE;
	else
		e = send_frame(c->fd, frame, flen) == -1 ? errno : 0;
	pthread_mutex_unlock(&c->wmu);
	if (e == 0)
		return 0;
	pthread_mutex_lock(&c->mu);
	fail_all(c, strerror(e));	/* p included */
	pthread_mutex_unlock(&c->mu);
	return -1;
 unregister:
	pthread_mutex_lock(&c->mu);
	unlink_pending(c, p);
	pthread_mutex_unlock(&c->mu);
	return -1;
}

/* Wait for p's answer until ts (mu held): read the socket when nobody
 * else does, else sleep until answered or asked to read.  0 answered or
 * failed, -1 timed out. */
static int
call_wait(struct keyd_client *c, struct pending *p, const struct timespec *ts)
{
	while (!p->done) {
		if (!c->reading && !c->dead && !c->closing) {
			c->reading = 1;
			pthread_mutex_unlock(&c->mu);
			read_answers(c, p, ts, 1);
			pthread_mutex_lock(&c->mu);
			reader_done(c);
			if (!p->done && ms_until(ts) == 0)
				return -1;
			continue;
		}
		if (pthread_cond_timedwait(&p->cond, &c->mu, ts) ==
		    ETIMEDOUT && !p->done)
			return -1;
	}
	return 0;
}

int
keyd_client_call(struct keyd_client *c, const struct keyproto_req *req,
    uint8_t *out, size_t *outlen, char *err, size_t errlen)
{
	struct pending p;
	pthread_condattr_t ca;
	struct timespec ts;

	memset(&p, 0, sizeof(p));
	p.efd = -1;
	p.out = out;
	p.outcap = *outlen;
	p.err = err;
	p.errlen = errlen;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (call_send(c, &p, req) == -1)
		goto done;
	pthread_mutex_lock(&c->mu);
	/* while it does not answer, later calls wait little: the event loop
	 * may be the one waiting (a TLS handshake) */
	deadline(&ts, c->stalled && c->timeout_ms > KEYD_STALLED_MS ?
	    KEYD_STALLED_MS : c->timeout_ms);
	if (call_wait(c, &p, &ts) == -1) {
		unlink_pending(c, &p);
		c->stalled = 1;
		snprintf(err, errlen, "key process unavailable (no answer in"
		    " time)");
		p.rc = KEYD_E_UNAVAILABLE;
		/* a waiter this one was to wake as the next reader */
		if (!c->reading)
			reader_done(c);
	}
	pthread_mutex_unlock(&c->mu);
	if (p.rc == 0)
		*outlen = p.outlen;
 done:
	pthread_cond_destroy(&p.cond);
	return p.rc;
}

/* An operation the event loop waits for (keyd_client.h). */
struct keyd_async {
	struct keyd_client *c;
	struct pending	 p;		/* in c's waiting list until done */
	double		 deadline;	/* mono_now() */
	uint8_t		 out[KEYPROTO_MAX_DATA];
	char		 err[256];
};

/* Send req for a caller that must not block; NULL with err (a refusal or
 * the key process gone: *rc says which). */
struct keyd_async *
keyd_client_start(struct keyd_client *c, const struct keyproto_req *req,
    int *rc, char *err, size_t errlen)
{
	struct keyd_async *a = xcalloc(1, sizeof(*a));

	a->c = c;
	a->p.out = a->out;
	a->p.outcap = sizeof(a->out);
	a->p.err = a->err;
	a->p.errlen = sizeof(a->err);
	if ((a->p.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		*rc = KEYD_E_UNAVAILABLE;
		free(a);
		return NULL;
	}
	pthread_mutex_lock(&c->mu);
	a->deadline = mono_now() + (c->stalled && c->timeout_ms >
	    KEYD_STALLED_MS ? KEYD_STALLED_MS : c->timeout_ms) / 1000.0;
	pthread_mutex_unlock(&c->mu);
	if (call_send(c, &a->p, req) == -1) {
		snprintf(err, errlen, "%s", a->err);
		*rc = a->p.rc;
		close(a->p.efd);
		free(a);
		return NULL;
	}
	keyd_client_ref(c);
	return a;
}

/* The descriptor that becomes readable when a is done. */
int
keyd_async_fd(const struct keyd_async *a)
{
	return a->p.efd;
}

/* Whether a is answered or failed; a that ran out of time fails now. */
int
keyd_async_done(struct keyd_async *a)
{
	struct keyd_client *c = a->c;
	int done;

	keyd_client_poll(c);
	pthread_mutex_lock(&c->mu);
	if (!a->p.done && mono_now() >= a->deadline) {
		unlink_pending(c, &a->p);
		c->stalled = 1;
		snprintf(a->err, sizeof(a->err), "key process unavailable "
		    "(no answer in time)");
		a->p.rc = KEYD_E_UNAVAILABLE;
		a->p.done = -1;
	}
	done = a->p.done != 0;
	pthread_mutex_unlock(&c->mu);
	return done;
}

/* Free a, its answer not wanted (any more): it leaves the waiting list. */
void
keyd_async_free(struct keyd_async *a)
{
	struct keyd_client *c;

	if (a == NULL)
		return;
	c = a->c;
	pthread_mutex_lock(&c->mu);
	if (!a->p.done)         /* deliver, fail_all and the deadline unlink */
		unlink_pending(c, &a->p);
	pthread_mutex_unlock(&c->mu);
	close(a->p.efd);
	OPENSSL_cleanse(a->out, sizeof(a->out));
	free(a);
	keyd_client_unref(c);
}

/* The outcome of a done a (then free it): 0 with the answer in out, or a
 * KEYD_E_* code with err. */
int
keyd_async_result(struct keyd_async *a, uint8_t *out, size_t *outlen,
    char *err, size_t errlen)
{
	int rc = a->p.rc;

	if (rc == 0 && a->p.outlen > *outlen) {
		snprintf(err, errlen, "key process answer too long");
		rc = KEYD_E_REFUSED;
	} else if (rc == 0) {
		memcpy(out, a->out, a->p.outlen);
		*outlen = a->p.outlen;
	} else
		snprintf(err, errlen, "%s", a->err);
	return rc;
}

/* Read what the key process answered, without waiting, unless a thread
 * is reading already (for the event loop, whose waits are keyd_async);
 * -1 once the key process is gone, else 0. */
int
keyd_client_poll(struct keyd_client *c)
{
	int gone;

	pthread_mutex_lock(&c->mu);
	if (!c->reading && !c->dead && !c->closing) {
		c->reading = 1;
		pthread_mutex_unlock(&c->mu);
		read_answers(c, NULL, NULL, 0);
		pthread_mutex_lock(&c->mu);
		reader_done(c);
	}
	gone = c->dead || c->closing;
	pthread_mutex_unlock(&c->mu);
	return gone ? -1 : 0;
}

/* The socket, for the event loop to watch (keyd_client_poll when it is
 * readable); -1 once closed. */
int
keyd_client_fd(struct keyd_client *c)
{
	return c->fd;
}

void
keyd_client_ref(struct keyd_client *c)
{
	pthread_mutex_lock(&c->mu);
	c->refs++;
	pthread_mutex_unlock(&c->mu);
}

/* Drop a reference; the last one frees. */
static void
client_unref(struct keyd_client *c)
{
	int last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wmu);
	free(c);
}

void
keyd_client_unref(struct keyd_client *c)
{
	client_unref(c);
}

void
keyd_client_free(struct keyd_client *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->closing = 1;
	fail_all(c, "client closed");
	if (c->fd != -1)
		shutdown(c->fd, SHUT_RDWR);	/* wakes a reader */
	if (!c->reading)
		close_fd(c);
	pthread_mutex_unlock(&c->mu);
	client_unref(c);
}
