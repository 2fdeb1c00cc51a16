/* ctl_queue.c: smrelayctl queue: the spool, read and changed through its
 * database (spooldb.c) while the daemon runs. */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "ctl.h"
#include "lib/lib.h"
#include "policy/policy.h"
#include "daemon/queue/queue.h"
#include "store/store.h"

static int
queue_usage(const char *verb)
{
	fprintf(stderr, "usage: smrelayctl [-c FILE] [--json] queue %s\n",
	    strcmp(verb, "list") == 0 ? "list" :
	    strcmp(verb, "flush") == 0 ? "flush [ID]" : "show|remove|hold|"
	    "release ID");
	return CTL_USAGE;
}

/* Recipients still pending, and all of them. */
static void
counts(const struct spool_entry *e, size_t *pending)
{
	size_t i;

	*pending = 0;
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING)
			(*pending)++;
}

/* An entry as a JSON object; `full` adds each recipient's last reply. */
static json_t *
entry_json(const struct spool_entry *e, int full)
{
	char t1[32], t2[32], acts[64];
	json_t *o, *rcpts = json_array(), *r;
	size_t i;

	store_time_str(e->created, t1, sizeof(t1));
	store_time_str(e->next_attempt, t2, sizeof(t2));
	for (i = 0; i < e->nrcpts; i++) {
		r = json_pack("{s:o, s:s}", "address",
		    ctl_json_str(e->rcpts[i].addr), "state",
		    spool_rcpt_state_str(e->rcpts[i].state));
		if (full)
			json_object_set_new(r, "reply", e->rcpts[i].reply ?
			    ctl_json_str(e->rcpts[i].reply) : json_null());
		json_array_append_new(rcpts, r);
	}
	policy_actions_str(e->actions, acts, sizeof(acts));
	o = json_pack("{s:s, s:s, s:o, s:i, s:s, s:I, s:o, s:b, s:o, s:o, "
	    "s:o}", "id", e->id, "created", t1, "next_attempt",
	    e->next_attempt ? json_string(t2) : json_null(), "attempts",
	    e->attempts, "state", spool_hold_str(e->held), "size",
	    (json_int_t)e->size, "sender", ctl_json_str(e->sender), "dsn",
	    e->dsn, "pending_transform", ctl_json_csv(e->actions ? acts : ""),
	    "last_error", e->last_error ? ctl_json_str(e->last_error) :
	    json_null(), "recipients", rcpts);
	return o;
}

/* queue list: id, created, state, attempts, next attempt, size, sender,
 * pending recipients, last error. */
static int
queue_list(struct spooldb *db, json_t *a)
{
	struct spool_entry **v;
	char t1[32], t2[32];
	const char *sep;
	size_t n, i, k, pending;

	if ((v = spooldb_load(db, &n)) == NULL) {
		fprintf(stderr, "smrelayctl: queue list: cannot read the "
		    "spool\n");
		return CTL_FAIL;
	}
	for (i = 0; i < n; i++) {
		if (a != NULL) {
			json_array_append_new(a, entry_json(v[i], 0));
			continue;
		}
		counts(v[i], &pending);
		store_time_str(v[i]->created, t1, sizeof(t1));
		store_time_str(v[i]->next_attempt, t2, sizeof(t2));
		printf("%s\t%s\t%s\t%d\t%s\t%lld\t<%s>\t", v[i]->id, t1,
		    spool_hold_str(v[i]->held), v[i]->attempts,
		    v[i]->next_attempt ? t2 : "now", (long long)v[i]->size,
		    v[i]->sender);
		for (k = 0, sep = ""; k < v[i]->nrcpts; k++)
			if (v[i]->rcpts[k].state == SPOOL_RCPT_PENDING) {
				printf("%s%s", sep, v[i]->rcpts[k].addr);
				sep = ",";
			}
		if (pending == 0)
			printf("-");
		printf("\t%s\n", v[i]->last_error ? v[i]->last_error : "");
	}
	spool_entries_free(v, n);
	return CTL_OK;
}

static int
queue_show(struct spooldb *db, const char *id, int json)
{
	struct spool_entry *e;
	struct msgbuf *mb;
	char t[32], acts[64];
	size_t i;
	json_t *o;

	if ((e = spooldb_get(db, id)) == NULL)
		return CTL_NO;
	if (json) {
		o = entry_json(e, 1);
		spool_entry_free(e);
		return ctl_json_print(o);
	}
	printf("id: %s\n", e->id);
	store_time_str(e->created, t, sizeof(t));
	printf("created: %s\n", t);
	printf("state: %s\n", spool_hold_str(e->held));
	printf("attempts: %d\n", e->attempts);
	store_time_str(e->next_attempt, t, sizeof(t));
	printf("next attempt: %s\n", e->next_attempt ? t : "now");
	printf("size: %lld\n", (long long)e->size);
	printf("sender: <%s>\n", e->sender);
	printf("parameters: %s\n", e->params ? e->params : "");
	if (e->actions != 0)
		printf("pending transform: %s (rule %lld)\n",
		    policy_actions_str(e->actions, acts, sizeof(acts)),
		    (long long)e->rule_id);
	if (e->dsn)
		printf("dsn: yes (a delivery status notification we made)\n");
	printf("last error: %s\n", e->last_error ? e->last_error : "");
	for (i = 0; i < e->nrcpts; i++)
		printf("recipient: <%s> %s%s%s\n", e->rcpts[i].addr,
		    spool_rcpt_state_str(e->rcpts[i].state),
		    e->rcpts[i].reply ? " " : "",
		    e->rcpts[i].reply ? e->rcpts[i].reply : "");
	/* then the message itself, as it will go to the next hop */
	printf("--- message\n");
	if ((mb = spooldb_body_get(db, e->id)) == NULL)
		printf("(the body cannot be read: %s)\n", strerror(errno));
	else if (ctl_write_mb(mb) == -1)        /* in pieces */
		printf("\n(the body cannot be read: %s)\n", strerror(errno));
	msgbuf_free(mb);
	spool_entry_free(e);
	return 0;
}

/* One change in its own transaction: how many rows changed, or -1. */
static int
queue_change(struct spooldb *db, const char *verb, const char *id)
{
	int n = -1;

	if (spooldb_begin(db) == -1) {
		fprintf(stderr, "smrelayctl: queue %s: the spool is busy\n",
		    verb);
		return -1;
	}
	if (strcmp(verb, "flush") == 0)
		n = spooldb_flush(db, id);
	else if (strcmp(verb, "remove") == 0)
		n = spooldb_delete(db, id);
	else if (strcmp(verb, "hold") == 0)
		n = spooldb_set_hold(db, id, 1);
	else if (strcmp(verb, "release") == 0)
		n = spooldb_set_hold(db, id, 0);
	if (n < 0 || spooldb_commit(db) == -1) {
		spooldb_rollback(db);
		fprintf(stderr, "smrelayctl: queue %s: failed\n", verb);
		return -1;
	}
	if (n > 0 && strcmp(verb, "remove") == 0)
		spooldb_unlink_body(db, id);
	return n;
}

/*
 * The verb on one share of the spool; *found counts the messages changed
 * (or shown).  Shares are independent: an id is in one of them.
 */
static int
queue_share(struct spooldb *db, const char *verb, const char *id,
    json_t *a, int json, int *found)
{
	int n, rc;

	if (strcmp(verb, "list") == 0)
		return queue_list(db, a);
	if (strcmp(verb, "show") == 0) {
		if (*found)
			return CTL_OK;
		if ((rc = queue_show(db, id, json)) != CTL_NO)
			(*found)++;
		return rc == CTL_NO ? CTL_OK : rc;
	}
	if (id != NULL && *found)
		return CTL_OK;
	if ((n = queue_change(db, verb, id)) == -1)
		return CTL_FAIL;
	*found += n;
	return CTL_OK;
}

/* queue VERB: on each share of the spool of the configuration. */
int
ctl_queue_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	const char *verb = cmd->verb, *id = argc > 1 ? argv[1] : NULL;
	struct spooldb *db;
	struct config *cfg;
	json_t *a = NULL;
	char err[1024];
	int shares[SPOOL_SHARES_MAX];
	int nargs = argc - 1, rc;	/* the words after VERB */
	int i, nshares, found = 0;

	if (strcmp(verb, "list") == 0 ? nargs != 0 :
	    strcmp(verb, "flush") == 0 ? nargs > 1 : nargs != 1)
		return queue_usage(verb);
	if (id != NULL && (strlen(id) != SPOOL_ID_LEN ||
	    strspn(id, "0123456789abcdef") != SPOOL_ID_LEN)) {
		fprintf(stderr, "smrelayctl: queue %s: bad queue id \"%s\" "
		    "(%d hex digits)\n", verb, id, SPOOL_ID_LEN);
		return CTL_USAGE;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	/* every share of the spool (processes, issue 18): spool, spool.N */
	if ((nshares = spooldb_shares(cfg->data_dir, shares,
	    (int)(sizeof(shares) / sizeof(shares[0])))) <= 0) {
		shares[0] = 0;
		nshares = 1;
	}
	if (strcmp(verb, "list") == 0 && o->json)
		a = json_array();
	for (i = 0, rc = CTL_OK; i < nshares && rc == CTL_OK; i++) {
		if ((db = spooldb_open(cfg->data_dir, shares[i], 0, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "smrelayctl: %s\n", err);
			rc = CTL_FAIL;
			break;
		}
		rc = queue_share(db, verb, id, a, o->json, &found);
		spooldb_close(db);
	}
	config_free(cfg);
	if (a != NULL) {
		if (rc != CTL_OK) {
			json_decref(a);
			return rc;
		}
		return ctl_json_print(a);
	}
	if (rc != CTL_OK || strcmp(verb, "list") == 0)
		return rc;
	if (id != NULL && found == 0) {
		fprintf(stderr, "smrelayctl: queue %s %s: no such message\n",
		    verb, id);
		return CTL_NO;
	}
	if (strcmp(verb, "flush") == 0 && id == NULL)
		printf("%d message(s) due now\n", found);
	return CTL_OK;
}
