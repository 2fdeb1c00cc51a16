/* policy.c: policy rules: pattern and action syntax, and the first match. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "policy.h"
#include "proto/proto.h"

#define LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX	253	/* RFC 1035, without the root dot */

/* A rule as the set keeps it: its own strings and precomputed sort keys. */
struct policy_entry {
	struct policy_rule	 rule;
	char			*skey, *rkey;	/* the patterns as matched:
						   mail_addr_key() domains */
	enum policy_pat_kind	 skind, rkind;
	size_t			 slen, rlen;	/* length of the part compared */
	size_t			 index;		/* position in the caller's array */
};

struct policy_set {
	struct policy_entry	*v;
	size_t			 n;
};

static const char *pattern_key(const char *, char *, size_t);

static const struct {
	const char	*name;
	unsigned	 bit;
} action_names[] = {		/* in the canonical order of policy_actions_str */
	{ "decrypt", POLICY_DECRYPT },
	{ "verify", POLICY_VERIFY },
	{ "sign", POLICY_SIGN },
	{ "encrypt", POLICY_ENCRYPT },
	{ "pass", POLICY_PASS },
	{ "reject", POLICY_REJECT },
};
#define NACTIONS (sizeof(action_names) / sizeof(action_names[0]))
#define POLICY_ALL (POLICY_SIGN | POLICY_ENCRYPT | POLICY_DECRYPT | \
	POLICY_VERIFY | POLICY_PASS | POLICY_REJECT)

static const char *nocert_names[] = { "reject", "plain", "hold" };

/* ASCII lowercase, leaving every other byte (UTF-8 included) alone. */
static int
lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ASCII case-insensitive comparison of n bytes; 1 when equal. */
static int
eq_n(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Formatted reason into err (when given); returns -1. */
static int
seterr(char *err, size_t errlen, const char *pat, const char *why)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "bad pattern '%s': %s", pat, why);
	return -1;
}

/* Check a domain (no wildcard left in it): labels of letters, digits,
 * '-', '_' or non-ASCII bytes, none empty; NULL or the reason. */
static const char *
domain_problem(const char *d)
{
	const unsigned char *p;
	size_t label = 0;

	if (*d == '\0')
		return "empty domain";
	if (strlen(d) > DOMAIN_MAX)
		return "domain longer than 253 characters";
	for (p = (const unsigned char *)d; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return "empty label in domain";
			label = 0;
			continue;
		}
		if (*p == '*')
			return "'*' only as the whole pattern, the whole "
			    "local part or the first label";
		if (*p == '@')
			return "more than one '@'";
		if (*p < 0x80 && !(*p == '-' || *p == '_' ||
		    (*p >= '0' && *p <= '9') || (lc(*p) >= 'a' &&
		    lc(*p) <= 'z')))
			return "invalid character in domain";
		if (++label > 63)
			return "domain label longer than 63 characters";
	}
	if (label == 0)
		return "empty label in domain";
	return NULL;
}

/* Check a local part of n bytes: printable, no space, '@' or '*'. */
static const char *
local_problem(const char *l, size_t n)
{
	const unsigned char *p = (const unsigned char *)l;
	size_t i;

	if (n > LOCAL_MAX)
		return "local part longer than 64 characters";
	for (i = 0; i < n; i++) {
		if (p[i] == '*')
			return "'*' only as the whole pattern, the whole "
			    "local part or the first label";
		if (p[i] <= ' ' || p[i] == 0x7f || p[i] == '<' || p[i] == '>')
			return "invalid character in local part";
	}
	return NULL;
}

/* Check a pattern and tell its kind. */
int
policy_pattern_check(const char *pat, enum policy_pat_kind *kind,
    char *err, size_t errlen)
{
	const char *at, *why;
	enum policy_pat_kind k;

	if (pat == NULL || *pat == '\0')
		return seterr(err, errlen, pat ? pat : "", "empty pattern");
	if (strcmp(pat, "*") == 0)
		k = POLICY_PAT_ANY;
	else if (strncmp(pat, "*.", 2) == 0) {
		k = POLICY_PAT_SUBDOMAINS;
		if ((why = domain_problem(pat + 2)) != NULL)
			return seterr(err, errlen, pat, why);
	} else if ((at = strchr(pat, '@')) == NULL)
		return seterr(err, errlen, pat, "no '@' (a domain is @domain, "
		    "its subdomains *.domain)");
	else if (at == pat || (at == pat + 1 && *pat == '*')) {
		k = POLICY_PAT_DOMAIN;
		if ((why = domain_problem(at + 1)) != NULL)
			return seterr(err, errlen, pat, why);
	} else {
		k = POLICY_PAT_ADDRESS;
		if ((why = local_problem(pat, (size_t)(at - pat))) != NULL ||
		    (why = domain_problem(at + 1)) != NULL)
			return seterr(err, errlen, pat, why);
	}
	if (kind != NULL)
		*kind = k;
	return 0;
}

/* Match addr against a pattern already known to be of kind k. */
static int
match_kind(const char *pat, enum policy_pat_kind k, const char *addr)
{
	const char *at, *dom;
	size_t dl, pl;

	if (k == POLICY_PAT_ANY)
		return 1;
	if (addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return 0;			/* null sender, bare "postmaster" */
	dom = at + 1;
	dl = strlen(dom);
	switch (k) {
	case POLICY_PAT_SUBDOMAINS:
		pl = strlen(pat + 1);		/* ".example.com" */
		return dl > pl && eq_n(dom + dl - pl, pat + 1, pl);
	case POLICY_PAT_DOMAIN:
		pat = strchr(pat, '@') + 1;
		return strlen(pat) == dl && eq_n(dom, pat, dl);
	case POLICY_PAT_ADDRESS:
		return strlen(pat) == strlen(addr) &&
		    eq_n(pat, addr, strlen(addr));
	default:
		return 0;
	}
}

/* 1 if addr matches pat (0 for a bad pattern). */
int
policy_pattern_match(const char *pat, const char *addr)
{
	enum policy_pat_kind k;
	char pb[POLICY_ADDR_MAX + 2], ab[POLICY_ADDR_MAX];

	if (policy_pattern_check(pat, &k, NULL, 0) == -1)
		return 0;
	return match_kind(pattern_key(pat, pb, sizeof(pb)), k,
	    mail_addr_key(addr, ab, sizeof(ab)));
}

/* The bit of one action word of n bytes, 0 if unknown. */
static unsigned
action_bit(const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < NACTIONS; i++)
		if (strlen(action_names[i].name) == n &&
		    eq_n(action_names[i].name, w, n))
			return action_names[i].bit;
	return 0;
}

/* pass and reject stand alone; NULL or the reason. */
static const char *
actions_problem(unsigned a)
{
	if (a == 0)
		return "no action";
	if (a & ~POLICY_ALL)
		return "unknown action bits";
	if ((a & POLICY_PASS) && a != POLICY_PASS)
		return "pass cannot be combined with other actions";
	if ((a & POLICY_REJECT) && a != POLICY_REJECT)
		return "reject cannot be combined with other actions";
	return NULL;
}

/* Parse "sign,encrypt" (spaces around words allowed). */
int
policy_actions_parse(const char *list, unsigned *actions, char *err,
    size_t errlen)
{
	const char *p = list, *w, *why;
	unsigned a = 0, bit;
	size_t n;

	if (list == NULL || list[strspn(list, " \t")] == '\0') {
		snprintf(err, errlen, "empty action list");
		return -1;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		w = p;
		n = strcspn(w, ", \t");
		p = w + n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (n == 0) {
			snprintf(err, errlen, "bad action list '%s': empty "
			    "item", list);
			return -1;
		}
		if ((bit = action_bit(w, n)) == 0) {
			snprintf(err, errlen, "unknown action '%.*s' (sign, "
			    "encrypt, decrypt, verify, pass, reject)", (int)n,
			    w);
			return -1;
		}
		a |= bit;
		if (*p == '\0')
			break;
		if (*p++ != ',') {
			snprintf(err, errlen, "bad action list '%s': "
			    "separate actions with commas", list);
			return -1;
		}
	}
	if ((why = actions_problem(a)) != NULL) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	*actions = a;
	return 0;
}

/* The canonical text of an action set ("none" for 0). */
const char *
policy_actions_str(unsigned actions, char *buf, size_t len)
{
	size_t i, off = 0;
	int n;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < NACTIONS; i++) {
		if (!(actions & action_names[i].bit))
			continue;
		n = snprintf(buf + off, len - off, "%s%s", off ? "," : "",
		    action_names[i].name);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(buf, len, "none");
	return buf;
}

/* "reject", "plain", "hold". */
const char *
policy_nocert_str(enum policy_nocert nc)
{
	if ((unsigned)nc >= sizeof(nocert_names) / sizeof(nocert_names[0]))
		return "?";
	return nocert_names[nc];
}

/* The --if-no-cert word back; -1 if unknown. */
int
policy_nocert_parse(const char *s, enum policy_nocert *nc)
{
	size_t i;

	for (i = 0; s != NULL && i < sizeof(nocert_names) /
	    sizeof(nocert_names[0]); i++) {
		if (strlen(s) == strlen(nocert_names[i]) &&
		    eq_n(s, nocert_names[i], strlen(s))) {
			*nc = (enum policy_nocert)i;
			return 0;
		}
	}
	return -1;
}

/* The length of what a pattern of kind k compares: the tie-break among
 * patterns of one kind ("*.a.example.com" beats "*.example.com"). */
static size_t
pattern_weight(const char *pat, enum policy_pat_kind k)
{
	switch (k) {
	case POLICY_PAT_SUBDOMAINS:
		return strlen(pat + 2);
	case POLICY_PAT_DOMAIN:
		return strlen(strchr(pat, '@') + 1);
	case POLICY_PAT_ADDRESS:
		return strlen(pat);
	default:
		return 0;
	}
}

/* qsort order: the rule that must win first. */
static int
entry_cmp(const void *a, const void *b)
{
	const struct policy_entry *x = a, *y = b;

	if (x->rule.priority != y->rule.priority)
		return x->rule.priority > y->rule.priority ? -1 : 1;
	if (x->rkind != y->rkind)
		return x->rkind > y->rkind ? -1 : 1;
	if (x->skind != y->skind)
		return x->skind > y->skind ? -1 : 1;
	if (x->rlen != y->rlen)
		return x->rlen > y->rlen ? -1 : 1;
	if (x->slen != y->slen)
		return x->slen > y->slen ? -1 : 1;
	if (x->rule.id != y->rule.id)
		return x->rule.id < y->rule.id ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* A checked pattern with its domain as mail_addr_key() gives it
 * ("*.müller.example" is "*.xn--mller-kva.example"): pat itself when that
 * changes nothing (an ASCII domain), else buf. */
static const char *
pattern_key(const char *pat, char *buf, size_t len)
{
	char in[POLICY_ADDR_MAX + 2], kb[POLICY_ADDR_MAX + 2];
	const char *k;
	int n;

	if (strncmp(pat, "*.", 2) != 0)
		return mail_addr_key(pat, buf, len);
	snprintf(in, sizeof(in), "x@%s", pat + 2);
	if ((k = mail_addr_key(in, kb, sizeof(kb))) == in)
		return pat;
	n = snprintf(buf, len, "*.%s", strchr(k, '@') + 1);
	return n > 0 && (size_t)n < len ? buf : pat;
}

/* Check one rule and fill its entry (strings copied); -1 with err set. */
static int
entry_init(struct policy_entry *e, const struct policy_rule *r, size_t i,
    char *err, size_t errlen)
{
	const char *s = r->sender ? r->sender : "*";
	const char *rc = r->recipient ? r->recipient : "*";
	const char *why;
	char reason[512], kb[POLICY_ADDR_MAX + 2];

	if (policy_pattern_check(s, &e->skind, reason, sizeof(reason)) == -1 ||
	    policy_pattern_check(rc, &e->rkind, reason, sizeof(reason)) == -1) {
		snprintf(err, errlen, "rule %lld: %s", (long long)r->id,
		    reason);
		return -1;
	}
	why = actions_problem(r->actions);
	if (why == NULL && (unsigned)r->nocert > POLICY_NOCERT_HOLD)
		why = "bad if-no-cert value";
	if (why != NULL) {
		snprintf(err, errlen, "rule %lld: %s", (long long)r->id, why);
		return -1;
	}
	e->rule = *r;
	if ((e->rule.sender = strdup(s)) == NULL ||
	    (e->rule.recipient = strdup(rc)) == NULL) {
		free(e->rule.sender);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->skey = xstrdup(pattern_key(s, kb, sizeof(kb)));
	e->rkey = xstrdup(pattern_key(rc, kb, sizeof(kb)));
	e->slen = pattern_weight(s, e->skind);
	e->rlen = pattern_weight(rc, e->rkind);
	e->index = i;
	return 0;
}

/* Build a sorted, checked copy of the rules. */
struct policy_set *
policy_set_new(const struct policy_rule *rules, size_t n, char *err,
    size_t errlen)
{
	struct policy_set *ps;
	size_t i;

	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (n > 0 && (ps->v = calloc(n, sizeof(*ps->v))) == NULL)) {
		free(ps);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (entry_init(&ps->v[i], &rules[i], i, err, errlen) == -1) {
			policy_set_free(ps);
			return NULL;
		}
		ps->n++;
	}
	if (n > 1)
		qsort(ps->v, n, sizeof(*ps->v), entry_cmp);
	return ps;
}

/* Free a set and its copies of the rules. */
void
policy_set_free(struct policy_set *ps)
{
	size_t i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++) {
		free(ps->v[i].rule.sender);
		free(ps->v[i].rule.recipient);
		free(ps->v[i].skey);
		free(ps->v[i].rkey);
	}
	free(ps->v);
	free(ps);
}

/* Number of rules in the set. */
size_t
policy_set_count(const struct policy_set *ps)
{
	return ps == NULL ? 0 : ps->n;
}

/* The first rule, in precedence order, matching both addresses. */
const struct policy_rule *
policy_match(const struct policy_set *ps, const char *sender,
    const char *recipient)
{
	const struct policy_entry *e;
	char sbuf[POLICY_ADDR_MAX], rbuf[POLICY_ADDR_MAX];
	size_t i;

	if (ps == NULL)
		return NULL;
	sender = mail_addr_key(sender, sbuf, sizeof(sbuf));
	recipient = mail_addr_key(recipient, rbuf, sizeof(rbuf));
	for (i = 0; i < ps->n; i++) {
		e = &ps->v[i];
		if (match_kind(e->rkey, e->rkind, recipient) &&
		    match_kind(e->skey, e->skind, sender))
			return &e->rule;
	}
	return NULL;
}

size_t
policy_addr_alts(const char *addr, char alt[][POLICY_ADDR_MAX], size_t max)
{
	char local[POLICY_ADDR_MAX], *pct, *bang;
	const char *at, *r;
	size_t n = 0, l = 0;
	int k;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return 0;
	for (r = addr; r < at && l + 1 < sizeof(local); r++) {
		if (*r == '"')
			continue;
		if (*r == '\\' && r + 1 < at)
			r++;
		local[l++] = *r;
	}
	local[l] = '\0';
	if (strchr(local, '@') != NULL)		/* "a@b"@c: no route */
		return 0;
	if (n < max && (pct = strrchr(local, '%')) != NULL && pct > local &&
	    pct[1] != '\0') {
		k = snprintf(alt[n], POLICY_ADDR_MAX, "%.*s@%s",
		    (int)(pct - local), local, pct + 1);
		if (k > 0 && k < POLICY_ADDR_MAX)
			n++;
	}
	if (n < max && (bang = strchr(local, '!')) != NULL && bang > local &&
	    bang[1] != '\0') {
		k = snprintf(alt[n], POLICY_ADDR_MAX, "%s@%.*s", bang + 1,
		    (int)(bang - local), local);
		if (k > 0 && k < POLICY_ADDR_MAX)
			n++;
	}
	return n;
}

int
policy_routed_otherwise(const struct policy_set *ps, const char *sender,
    const char *recipient, const struct policy_rule *r,
    char alt[POLICY_ADDR_MAX], const struct policy_rule **other)
{
	char alts[POLICY_ALTS][POLICY_ADDR_MAX];
	size_t i, n;

	n = policy_addr_alts(recipient, alts, POLICY_ALTS);
	for (i = 0; i < n; i++)
		if ((*other = policy_match(ps, sender, alts[i])) != r) {
			memcpy(alt, alts[i], POLICY_ADDR_MAX);
			return 1;
		}
	return 0;
}
