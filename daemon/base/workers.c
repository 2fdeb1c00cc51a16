/* workers.c: the worker thread pool (see workers.h).  One mutex guards a
 * queue of pending jobs and a queue of finished ones; a pipe wakes the
 * event loop when a job finishes. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/lib.h"
#include "metrics.h"
#include "workers.h"

#define WORKERS_MAX	64

struct wjob {
	workers_run_fn	*run;
	workers_done_fn	*done;
	void		*job;
	struct wjob	*next;
};

struct wqueue {
	struct wjob	*head, *tail;
};

struct workers {
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cond;
	struct wqueue	 todo, finished;
	int		 stopping;
	int		 n;
	pthread_t	 tids[WORKERS_MAX];
	int		 wake[2];	/* pipe: worker -> loop */
	int		 wake_pending;
	struct event	*ev;
	void		*(*thread_init)(void *);
	void		(*thread_fini)(void *);
	void		*arg;
};

static void
q_push(struct wqueue *q, struct wjob *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct wjob *
q_pop(struct wqueue *q)
{
	struct wjob *j = q->head;

	if (j != NULL && (q->head = j->next) == NULL)
		q->tail = NULL;
	return j;
}

static void *
worker_main(void *arg)
{
	struct workers *w = arg;
	struct wjob *j;
	void *tctx = w->thread_init ? w->thread_init(w->arg) : NULL;
	char c = 1;
	int wake;

	pthread_mutex_lock(&w->mtx);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->mtx);
		if ((j = q_pop(&w->todo)) == NULL)
			break;          /* stopping and nothing left */
		metrics_gauge_add(M_WORKERS_QUEUED, -1);
		pthread_mutex_unlock(&w->mtx);
		j->run(j->job, tctx);
		pthread_mutex_lock(&w->mtx);
		q_push(&w->finished, j);
		wake = !w->wake_pending;
		w->wake_pending = 1;
		if (wake) {
			pthread_mutex_unlock(&w->mtx);
			while (write(w->wake[1], &c, 1) == -1 && errno == EINTR)
				;
			pthread_mutex_lock(&w->mtx);
		}
	}
	pthread_mutex_unlock(&w->mtx);
	if (w->thread_fini != NULL)
		w->thread_fini(tctx);
	return NULL;
}

/* Online CPUs, at least 1. */
int
workers_cpus(void)
{
	long c = sysconf(_SC_NPROCESSORS_ONLN);

	return c > 0 ? (int)c : 1;
}

/* Run the `done` of every finished job, on the loop. */
static void
workers_reap(struct workers *w)
{
	struct wjob *j, *list;
	char buf[64];

	while (read(w->wake[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&w->mtx);
	list = w->finished.head;
	w->finished.head = w->finished.tail = NULL;
	w->wake_pending = 0;
	pthread_mutex_unlock(&w->mtx);
	while ((j = list) != NULL) {
		list = j->next;
		j->done(j->job);
		free(j);
	}
}

static void
workers_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	workers_reap(arg);
}

struct workers *
workers_new(struct event_base *base, int n, void *(*thread_init)(void *),
    void (*thread_fini)(void *), void *arg)
{
	struct workers *w = xcalloc(1, sizeof(*w));
	int i;

	if (n <= 0)
		n = workers_cpus();
	if (n > WORKERS_MAX)
		n = WORKERS_MAX;
	if (pthread_mutex_init(&w->mtx, NULL) != 0 ||
	    pthread_cond_init(&w->cond, NULL) != 0)
		fatal("workers: pthread init");
	if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("workers: pipe");
	w->thread_init = thread_init;
	w->thread_fini = thread_fini;
	w->arg = arg;
	if ((w->ev = event_new(base, w->wake[0], EV_READ | EV_PERSIST,
	    workers_wake_cb, w)) == NULL || event_add(w->ev, NULL) == -1)
		fatalx("workers: event");
	for (i = 0; i < n; i++) {
		if ((errno = pthread_create(&w->tids[i], NULL, worker_main,
		    w)) != 0)
			fatal("workers: pthread_create");
		w->n++;
	}
	return w;
}

void
workers_submit(struct workers *w, workers_run_fn *run, workers_done_fn *done,
    void *job)
{
	struct wjob *j = xcalloc(1, sizeof(*j));

	j->run = run;
	j->done = done;
	j->job = job;
	pthread_mutex_lock(&w->mtx);
	q_push(&w->todo, j);
	metrics_gauge_add(M_WORKERS_QUEUED, 1);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mtx);
}

int
workers_count(const struct workers *w)
{
	return w->n;
}

void
workers_free(struct workers *w)
{
	int i;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mtx);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mtx);
	for (i = 0; i < w->n; i++)
		pthread_join(w->tids[i], NULL);
	workers_reap(w);
	event_free(w->ev);
	close(w->wake[0]);
	close(w->wake[1]);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mtx);
	free(w);
}
