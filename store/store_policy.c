/* store_policy.c: policy rules in the store: add, remove, load. */
#include "autoconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"
#include "store_priv.h"
#include "lib/lib.h"

/* A rule worth storing: the same checks policy_set_new makes. */
static int
rule_check(const struct policy_rule *r, char *err, size_t errlen)
{
	struct policy_set *ps;
	struct policy_rule one = *r;

	one.id = 0;
	if ((ps = policy_set_new(&one, 1, err, errlen)) == NULL)
		return -1;
	policy_set_free(ps);
	return 0;
}

/* Add a rule in its own transaction; *id gets its id. */
int
store_policy_add(struct store *st, const struct policy_rule *r, int64_t *id,
    char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (rule_check(r, err, errlen) == -1)
		return -1;
	if (store_begin(st, err, errlen) == -1)
		return -1;
	if (store_prepare(st, "INSERT INTO policy_rules (sender, recipient, "
	    "actions, nocert, priority, added) VALUES (?, ?, ?, ?, ?, ?)",
	    &stmt, err, errlen) == -1) {
		store_rollback(st);
		return -1;
	}
	db_bind_text(stmt, 1, r->sender ? r->sender : "*");
	db_bind_text(stmt, 2, r->recipient ? r->recipient : "*");
	db_bind_int64(stmt, 3, (int64_t)r->actions);
	db_bind_int(stmt, 4, (int)r->nocert);
	db_bind_int(stmt, 5, r->priority);
	db_bind_int64(stmt, 6, (int64_t)time(NULL));
	if ((rc = db_step(stmt)) != DB_DONE)
		store_sqlerr(st, "insert policy rule", err, errlen);
	db_finalize(stmt);
	if (rc != DB_DONE) {
		store_rollback(st);
		return -1;
	}
	*id = db_last_insert_id(st->db);
	return store_commit(st, err, errlen);
}

/* Remove a rule: 1 removed, 0 no such id, -1 error. */
int
store_policy_remove(struct store *st, int64_t id, char *err, size_t errlen)
{
	return store_remove_id(st, "DELETE FROM policy_rules WHERE id = ?",
	    id, NULL, err, errlen);
}

/* Copy the current row into r; -1 (why set, r untouched) when the row
 * is not a rule this program can apply: NULLs, values out of range or
 * too long (read as NULL), unknown actions, malformed patterns. */
static int
row_rule(struct db_stmt *stmt, struct policy_rule *r, char *why,
    size_t whylen)
{
	static const char *names[] = { "id", "sender", "recipient",
	    "actions", "nocert", "priority" };
	struct policy_rule one;
	int64_t actions, nocert, priority;
	int c;

	for (c = 1; c < 6; c++)
		if (db_column_is_null(stmt, c)) {
			snprintf(why, whylen, "%s is NULL%s", names[c],
			    c <= 2 ? " or over " STORE_STR(STORE_MAX_TEXT)
			    " characters" : "");
			return -1;
		}
	actions = db_column_int64(stmt, 3);
	nocert = db_column_int64(stmt, 4);
	priority = db_column_int64(stmt, 5);
	if (actions <= 0 || actions > (int64_t)UINT_MAX) {
		snprintf(why, whylen, "actions %lld: unknown action bits",
		    (long long)actions);
		return -1;
	}
	if (nocert < 0 || nocert > (int64_t)POLICY_NOCERT_HOLD) {
		snprintf(why, whylen, "nocert %lld: unknown if-no-cert value",
		    (long long)nocert);
		return -1;
	}
	if (priority < INT_MIN || priority > INT_MAX) {
		snprintf(why, whylen, "priority %lld out of range",
		    (long long)priority);
		return -1;
	}
	memset(&one, 0, sizeof(one));
	one.id = db_column_int64(stmt, 0);
	one.sender = (char *)db_column_text(stmt, 1);
	one.recipient = (char *)db_column_text(stmt, 2);
	one.actions = (unsigned)actions;
	one.nocert = (enum policy_nocert)nocert;
	one.priority = (int)priority;
	if (one.sender == NULL || one.recipient == NULL) {
		snprintf(why, whylen, "a pattern is not text");
		return -1;
	}
	if (rule_check(&one, why, whylen) == -1) {
		/* its "rule 0: " (rule_check checks a copy without id) */
		if (strncmp(why, "rule 0: ", 8) == 0)
			memmove(why, why + 8, strlen(why + 8) + 1);
		return -1;
	}
	*r = one;
	r->sender = xstrdup(one.sender);
	r->recipient = xstrdup(one.recipient);
	return 0;
}

/* Every rule this program can apply, ordered by id (the others skipped,
 * each named in a warning); NULL on error. */
struct policy_rule *
store_policy_load(struct store *st, size_t *np, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	struct policy_rule *v;
	size_t n = 0, cap = 16;
	char why[256];
	int rc;

	*np = 0;
	if (store_prepare(st, "SELECT id, " STORE_TEXT_COLUMN("sender") ", "
	    STORE_TEXT_COLUMN("recipient") ", actions, nocert, priority FROM "
	    "policy_rules ORDER BY id", &stmt, err, errlen) == -1)
		return NULL;
	v = xcalloc(cap, sizeof(*v));
	while ((rc = db_step(stmt)) == DB_ROW) {
		if (n == cap) {
			v = xreallocarray(v, cap * 2, sizeof(*v));
			memset(v + cap, 0, cap * sizeof(*v));
			cap *= 2;
		}
		if (row_rule(stmt, &v[n], why, sizeof(why)) == -1)
			store_bad_row("policy_rules", db_column_int64(stmt, 0),
			    "%s", why);
		else
			n++;
	}
	if (rc != DB_DONE)
		store_sqlerr(st, "load policy rules", err, errlen);
	db_finalize(stmt);
	if (rc != DB_DONE) {
		store_policy_rules_free(v, n);
		return NULL;
	}
	*np = n;
	return v;
}

/* Free what store_policy_load returned. */
void
store_policy_rules_free(struct policy_rule *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].sender);
		free(v[i].recipient);
	}
	free(v);
}
