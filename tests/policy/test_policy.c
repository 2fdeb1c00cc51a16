/* test_policy.c: policy rules: patterns, action lists, rule precedence. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "../unit/check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Good patterns and their kinds. */
static void
test_pattern_good(void)
{
	static const struct {
		const char *pat;
		enum policy_pat_kind kind;
	} good[] = {
		{ "*", POLICY_PAT_ANY },
		{ "*.example.com", POLICY_PAT_SUBDOMAINS },
		{ "*.com", POLICY_PAT_SUBDOMAINS },
		{ "@example.com", POLICY_PAT_DOMAIN },
		{ "*@example.com", POLICY_PAT_DOMAIN },
		{ "@localhost", POLICY_PAT_DOMAIN },
		{ "alice@example.com", POLICY_PAT_ADDRESS },
		{ "Alice.Smith+tag@Mail-1.Example.COM", POLICY_PAT_ADDRESS },
		{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example", POLICY_PAT_ADDRESS },
		{ "a_b@x_y.example", POLICY_PAT_ADDRESS },
	};
	enum policy_pat_kind k;
	char err[256];
	size_t i;

	for (i = 0; i < N(good); i++) {
		k = (enum policy_pat_kind)-1;
		err[0] = '\0';
		CHECK(policy_pattern_check(good[i].pat, &k, err,
		    sizeof(err)) == 0, "'%s' refused: %s", good[i].pat, err);
		CHECK(k == good[i].kind, "'%s': kind %d, want %d",
		    good[i].pat, (int)k, (int)good[i].kind);
	}
}

/* Bad patterns and the reason given. */
static void
test_pattern_bad(void)
{
	static const struct {
		const char *pat, *err;
	} bad[] = {
		{ "", "bad pattern '': empty pattern" },
		{ "x@", "bad pattern 'x@': empty domain" },
		{ "@", "bad pattern '@': empty domain" },
		{ "*@", "bad pattern '*@': empty domain" },
		{ "*.", "bad pattern '*.': empty domain" },
		{ "example.com", "bad pattern 'example.com': no '@'" },
		{ "**", "no '@'" },
		{ "a@b@c", "more than one '@'" },
		{ "@a@b", "more than one '@'" },
		{ "a*@example.com", "'*' only as the whole pattern" },
		{ "*a@example.com", "'*' only as the whole pattern" },
		{ "a@*.example.com", "'*' only as the whole pattern" },
		{ "*.*.example.com", "'*' only as the whole pattern" },
		{ "@example..com", "empty label in domain" },
		{ "@.example.com", "empty label in domain" },
		{ "@example.com.", "empty label in domain" },
		{ "*..com", "empty label in domain" },
		{ "a b@example.com", "invalid character in local part" },
		{ "<a@example.com>", "invalid character in local part" },
		{ "a@exa mple.com", "invalid character in domain" },
		{ "a@example.com>", "invalid character in domain" },
		{ "a@exa/mple.com", "invalid character in domain" },
		{ "a@[192.0.2.1]", "invalid character in domain" },
	};
	char err[256];
	size_t i;

	for (i = 0; i < N(bad); i++) {
		err[0] = '\0';
		CHECK(policy_pattern_check(bad[i].pat, NULL, err,
		    sizeof(err)) == -1, "'%s' accepted", bad[i].pat);
		CHECK(strstr(err, bad[i].err) != NULL, "'%s': error '%s', "
		    "want '%s'", bad[i].pat, err, bad[i].err);
		CHECK(strncmp(err, "bad pattern '", 13) == 0, "'%s': error "
		    "'%s' does not name the pattern", bad[i].pat, err);
		CHECK(policy_pattern_match(bad[i].pat, "a@example.com") == 0,
		    "bad pattern '%s' matches", bad[i].pat);
	}
	CHECK(policy_pattern_check(NULL, NULL, err, sizeof(err)) == -1,
	    "NULL accepted");
}

/* Every kind against addresses, case and the null sender included. */
static void
test_pattern_match(void)
{
	static const struct {
		const char *pat, *addr;
		int want;
	} m[] = {
		{ "*", "alice@example.com", 1 },
		{ "*", "", 1 },			/* the null sender */
		{ "*", "postmaster", 1 },
		{ "@example.com", "alice@example.com", 1 },
		{ "@example.com", "ALICE@EXAMPLE.COM", 1 },
		{ "@EXAMPLE.com", "alice@example.COM", 1 },
		{ "@example.com", "alice@a.example.com", 0 },
		{ "@example.com", "alice@example.com.evil", 0 },
		{ "@example.com", "alice@xexample.com", 0 },
		{ "@example.com", "", 0 },
		{ "@example.com", "example.com", 0 },
		{ "*@example.com", "bob@example.com", 1 },
		{ "*@example.com", "bob@sub.example.com", 0 },
		{ "*@example.com", "", 0 },
		{ "*.example.com", "a@sub.example.com", 1 },
		{ "*.example.com", "a@b.sub.EXAMPLE.com", 1 },
		{ "*.Example.Com", "a@sub.example.com", 1 },
		{ "*.example.com", "a@example.com", 0 },
		{ "*.example.com", "a@xexample.com", 0 },
		{ "*.example.com", "a@.example.com", 0 },
		{ "*.example.com", "", 0 },
		{ "*.example.com", "sub.example.com", 0 },
		{ "alice@example.com", "alice@example.com", 1 },
		{ "alice@example.com", "Alice@Example.Com", 1 },
		{ "ALICE@example.com", "alice@EXAMPLE.com", 1 },
		{ "alice@example.com", "alice@example.co", 0 },
		{ "alice@example.com", "alic@example.com", 0 },
		{ "alice@example.com", "xalice@example.com", 0 },
		{ "alice@example.com", "alice@sub.example.com", 0 },
		{ "alice@example.com", "", 0 },
		{ "alice@example.com", "alice", 0 },
		/* case folding is ASCII only: UTF-8 bytes compare as is */
		{ "j\xc3\xb6rg@example.com", "J\xc3\xb6rg@example.com", 1 },
		{ "j\xc3\xb6rg@example.com", "j\xc3\x96rg@example.com", 0 },
		/* a domain in U-labels or A-labels is one domain (IDNA2008,
		 * UTS #46: case and NFC folded) */
		{ "@m\xc3\xbcller.example", "bob@xn--mller-kva.example", 1 },
		{ "@xn--mller-kva.example", "bob@m\xc3\xbcller.example", 1 },
		{ "@xn--mller-kva.example", "bob@M\xc3\x9cLLER.example", 1 },
		{ "@xn--mller-kva.example", "bob@mu\xcc\x88ller.example", 1 },
		{ "*.m\xc3\xbcller.example", "a@sub.xn--mller-kva.example", 1 },
		{ "*.xn--mller-kva.example", "a@sub.m\xc3\xbcller.example", 1 },
		{ "bob@m\xc3\xbcller.example", "bob@xn--mller-kva.example", 1 },
		{ "@m\xc3\xbcller.example", "bob@muller.example", 0 },
		{ "@xn--mller-kva.example", "bob@m\xc3\xb6ller.example", 0 },
	};
	size_t i;

	for (i = 0; i < N(m); i++)
		CHECK(policy_pattern_match(m[i].pat, m[i].addr) == m[i].want,
		    "'%s' vs '%s': want %d", m[i].pat, m[i].addr, m[i].want);
}

/* Action lists: canonical text back, or the error. */
static void
test_actions(void)
{
	static const struct {
		const char *list;
		int ok;
		const char *out;	/* canonical, or part of the error */
	} a[] = {
		{ "sign", 1, "sign" },
		{ "encrypt,sign", 1, "sign,encrypt" },
		{ "sign, encrypt", 1, "sign,encrypt" },
		{ " SIGN , Encrypt ", 1, "sign,encrypt" },
		{ "verify,decrypt", 1, "decrypt,verify" },
		{ "decrypt,verify,sign,encrypt", 1, "decrypt,verify,sign,encrypt" },
		{ "sign,sign", 1, "sign" },
		{ "pass", 1, "pass" },
		{ "reject", 1, "reject" },
		{ "pass,pass", 1, "pass" },
		{ "pass,sign", 0, "pass cannot be combined with other actions" },
		{ "sign,pass", 0, "pass cannot be combined with other actions" },
		{ "reject,encrypt", 0,
		    "reject cannot be combined with other actions" },
		{ "pass,reject", 0, "cannot be combined with other actions" },
		{ "", 0, "empty action list" },
		{ " ", 0, "empty action list" },
		{ "sign,", 0, "empty item" },
		{ ",sign", 0, "empty item" },
		{ "sign,,encrypt", 0, "empty item" },
		{ "sign encrypt", 0, "separate actions with commas" },
		{ "sing", 0, "unknown action 'sing'" },
		{ "sign,encrypt,bogus", 0, "unknown action 'bogus'" },
		{ "signx", 0, "unknown action 'signx'" },
	};
	char err[256], buf[128];
	unsigned bits;
	size_t i;

	for (i = 0; i < N(a); i++) {
		err[0] = '\0';
		bits = 0;
		if (a[i].ok) {
			CHECK(policy_actions_parse(a[i].list, &bits, err,
			    sizeof(err)) == 0, "'%s' refused: %s", a[i].list,
			    err);
			policy_actions_str(bits, buf, sizeof(buf));
			CHECK(strcmp(buf, a[i].out) == 0, "'%s' -> '%s', want "
			    "'%s'", a[i].list, buf, a[i].out);
		} else {
			CHECK(policy_actions_parse(a[i].list, &bits, err,
			    sizeof(err)) == -1, "'%s' accepted", a[i].list);
			CHECK(strstr(err, a[i].out) != NULL, "'%s': error "
			    "'%s', want '%s'", a[i].list, err, a[i].out);
		}
	}
	CHECK(strcmp(policy_actions_str(0, buf, sizeof(buf)), "none") == 0,
	    "0 -> '%s'", buf);
	policy_actions_str(POLICY_DECRYPT | POLICY_VERIFY | POLICY_SIGN |
	    POLICY_ENCRYPT, buf, 10);
	CHECK(strlen(buf) < 10, "truncation overflowed: '%s'", buf);
}

/* --if-no-cert words, both ways. */
static void
test_nocert(void)
{
	enum policy_nocert nc;

	CHECK(policy_nocert_parse("reject", &nc) == 0 &&
	    nc == POLICY_NOCERT_REJECT, "reject");
	CHECK(policy_nocert_parse("plain", &nc) == 0 &&
	    nc == POLICY_NOCERT_PLAIN, "plain");
	CHECK(policy_nocert_parse("HOLD", &nc) == 0 &&
	    nc == POLICY_NOCERT_HOLD, "HOLD");
	CHECK(policy_nocert_parse("drop", &nc) == -1, "drop accepted");
	CHECK(policy_nocert_parse("", &nc) == -1, "empty accepted");
	CHECK(policy_nocert_parse("rejectx", &nc) == -1, "rejectx accepted");
	CHECK(strcmp(policy_nocert_str(POLICY_NOCERT_REJECT), "reject") == 0,
	    "str reject");
	CHECK(strcmp(policy_nocert_str(POLICY_NOCERT_PLAIN), "plain") == 0,
	    "str plain");
	CHECK(strcmp(policy_nocert_str(POLICY_NOCERT_HOLD), "hold") == 0,
	    "str hold");
}

/* A rule literal. */
#define R(id, s, r, a, p) { id, (char *)(s), (char *)(r), a, \
	POLICY_NOCERT_REJECT, p }

/* The id of the winning rule for a pair, 0 for none. */
static long long
winner(const struct policy_set *ps, const char *s, const char *r)
{
	const struct policy_rule *m = policy_match(ps, s, r);

	return m ? (long long)m->id : 0;
}

/* Priority first, then recipient kind, sender kind, length, id. */
static void
test_precedence(void)
{
	static const struct policy_rule rules[] = {
		R(1, "*", "*", POLICY_PASS, 0),
		R(2, "*", "@partner.example", POLICY_ENCRYPT, 0),
		R(3, "*", "*.partner.example", POLICY_SIGN, 0),
		R(4, "*", "bob@partner.example", POLICY_REJECT, 0),
		R(5, "@example.com", "@partner.example", POLICY_SIGN |
		    POLICY_ENCRYPT, 0),
		R(6, "*", "*.eu.partner.example", POLICY_VERIFY, 0),
		R(7, "alice@example.com", "*", POLICY_SIGN, 0),
		R(8, "*", "@urgent.example", POLICY_REJECT, 10),
		R(9, "*", "*", POLICY_PASS, 5),
		R(10, "*", "@other.example", POLICY_DECRYPT, 5),
		R(11, "*@example.com", "@partner.example", POLICY_SIGN, 0),
		R(12, "*", "@low.example", POLICY_SIGN, -3),
	};
	static const struct {
		const char *s, *r;
		long long want;
	} c[] = {
		/* priority 10 and 5 beat everything of priority 0 */
		{ "x@y.example", "a@urgent.example", 8 },
		{ "x@y.example", "carol@partner.example", 9 },
		{ "x@y.example", "a@other.example", 10 },
		{ "", "a@other.example", 10 },
		{ "", "a@low.example", 9 },
	};
	static const struct {
		const char *s, *r;
		long long want;
	} f[] = {
		/* recipient kind: address > domain > subdomains > any */
		{ "x@y.example", "bob@partner.example", 4 },
		{ "alice@example.com", "bob@partner.example", 4 },
		{ "x@y.example", "carol@partner.example", 2 },
		{ "x@y.example", "c@a.partner.example", 3 },
		/* the longer subdomain pattern wins */
		{ "x@y.example", "c@fr.eu.partner.example", 6 },
		/* same recipient kind: the sender kind decides */
		{ "x@example.com", "carol@partner.example", 5 },
		/* @example.com and *@example.com tie: the lower id wins */
		{ "Alice@Example.com", "carol@partner.example", 5 },
		/* recipient kind beats sender kind */
		{ "alice@example.com", "z@elsewhere.example", 7 },
		{ "alice@example.com", "carol@partner.example", 5 },
		{ "", "z@elsewhere.example", 1 },
		{ "", "carol@partner.example", 2 },
		{ "x@y.example", "a@low.example", 1 },
	};
	/* flat: the rules of priority 0 and below, where the kinds decide */
	struct policy_rule flat[N(rules)];
	struct policy_set *ps;
	char err[256];
	size_t i, nflat = 0;

	for (i = 0; i < N(rules); i++)
		if (rules[i].priority <= 0)
			flat[nflat++] = rules[i];
	if ((ps = policy_set_new(rules, N(rules), err, sizeof(err))) == NULL) {
		CHECK(0, "set: %s", err);
		return;
	}
	CHECK(policy_set_count(ps) == N(rules), "count %zu",
	    policy_set_count(ps));
	for (i = 0; i < N(c); i++)
		CHECK(winner(ps, c[i].s, c[i].r) == c[i].want, "<%s> -> <%s>: "
		    "rule %lld, want %lld", c[i].s, c[i].r,
		    winner(ps, c[i].s, c[i].r), c[i].want);
	policy_set_free(ps);
	if ((ps = policy_set_new(flat, nflat, err, sizeof(err))) == NULL) {
		CHECK(0, "flat set: %s", err);
		return;
	}
	for (i = 0; i < N(f); i++)
		CHECK(winner(ps, f[i].s, f[i].r) == f[i].want, "flat <%s> -> "
		    "<%s>: rule %lld, want %lld", f[i].s, f[i].r,
		    winner(ps, f[i].s, f[i].r), f[i].want);
	policy_set_free(ps);
}

/* Equal rules: the lower id wins whatever the input order. */
static void
test_id_tiebreak(void)
{
	static const struct policy_rule rules[] = {
		R(9, "*", "@example.com", POLICY_SIGN, 1),
		R(3, "*", "@example.com", POLICY_ENCRYPT, 1),
		R(5, "*", "@EXAMPLE.COM", POLICY_PASS, 1),
	};
	struct policy_rule copy[3];
	struct policy_set *ps;
	const struct policy_rule *m;
	char err[256];

	memcpy(copy, rules, sizeof(copy));
	if ((ps = policy_set_new(copy, 3, err, sizeof(err))) == NULL) {
		CHECK(0, "set: %s", err);
		return;
	}
	/* the set holds its own copies */
	copy[1].id = 99;
	copy[1].recipient = (char *)"@nowhere.example";
	m = policy_match(ps, "", "x@example.com");
	CHECK(m != NULL && m->id == 3 && m->actions == POLICY_ENCRYPT &&
	    strcmp(m->recipient, "@example.com") == 0, "rule %lld",
	    m ? (long long)m->id : 0);
	CHECK(policy_match(ps, "", "x@example.org") == NULL, "no match");
	policy_set_free(ps);
}

/* A set refuses a bad rule and names it; empty sets match nothing. */
static void
test_set_errors(void)
{
	static const struct {
		struct policy_rule r;
		const char *err;
	} bad[] = {
		{ R(4, "x@", "*", POLICY_SIGN, 0),
		    "rule 4: bad pattern 'x@': empty domain" },
		{ R(5, "*", "example.com", POLICY_SIGN, 0),
		    "rule 5: bad pattern 'example.com'" },
		{ R(6, "*", "*", 0, 0), "rule 6: no action" },
		{ R(7, "*", "*", POLICY_PASS | POLICY_SIGN, 0),
		    "rule 7: pass cannot be combined" },
		{ R(8, "*", "*", 0x400, 0), "rule 8: unknown action bits" },
	};
	struct policy_rule ok[2] = {
		R(1, NULL, NULL, POLICY_SIGN, 0),	/* NULL means "*" */
		R(2, "*", "*", POLICY_SIGN, 0),
	};
	struct policy_set *ps;
	char err[256];
	size_t i;

	for (i = 0; i < N(bad); i++) {
		err[0] = '\0';
		ok[1] = bad[i].r;
		ps = policy_set_new(ok, 2, err, sizeof(err));
		CHECK(ps == NULL, "bad rule %zu accepted", i);
		CHECK(strstr(err, bad[i].err) != NULL, "error '%s', want '%s'",
		    err, bad[i].err);
		policy_set_free(ps);
	}
	ok[1] = ok[0];
	ok[1].nocert = (enum policy_nocert)7;
	CHECK(policy_set_new(ok, 2, err, sizeof(err)) == NULL &&
	    strstr(err, "if-no-cert") != NULL, "bad nocert: %s", err);
	ps = policy_set_new(ok, 1, err, sizeof(err));
	CHECK(ps != NULL && policy_match(ps, "", "") != NULL &&
	    strcmp(policy_match(ps, "", "")->sender, "*") == 0, "NULL as *");
	policy_set_free(ps);
	ps = policy_set_new(NULL, 0, err, sizeof(err));
	CHECK(ps != NULL && policy_set_count(ps) == 0 &&
	    policy_match(ps, "a@b.example", "c@d.example") == NULL, "empty");
	policy_set_free(ps);
	CHECK(policy_match(NULL, "a@b", "c@d") == NULL, "NULL set");
}

/* Where a later relay may route an address: %-hack, bang path. */
static void
test_addr_alts(void)
{
	static const struct {
		const char *addr, *alt0, *alt1;
	} m[] = {
		{ "bob@partner.example", NULL, NULL },
		{ "bob%partner.example@example.com", "bob@partner.example", NULL },
		{ "bob%x%partner.example@example.com", "bob%x@partner.example",
		    NULL },
		{ "partner.example!bob@example.com", "bob@partner.example", NULL },
		{ "a!b%c@host.example", "a!b@c", "b%c@a" },
		{ "\"bob%partner.example\"@example.com", "bob@partner.example",
		    NULL },
		{ "\"b\\%ob%partner.example\"@example.com",
		    "b%ob@partner.example", NULL },
		{ "%partner.example@example.com", NULL, NULL },
		{ "bob%@example.com", NULL, NULL },
		{ "!bob@example.com", NULL, NULL },
		{ "bob!@example.com", NULL, NULL },
		{ "bob%partner.example", NULL, NULL },
		{ "\"x!@y%z\"@example.com", NULL, NULL },
		{ "", NULL, NULL },
	};
	char alt[POLICY_ALTS][POLICY_ADDR_MAX];
	size_t i, n, want;

	for (i = 0; i < N(m); i++) {
		n = policy_addr_alts(m[i].addr, alt, POLICY_ALTS);
		want = m[i].alt0 == NULL ? 0 : m[i].alt1 == NULL ? 1 : 2;
		CHECK(n == want, "'%s': %zu alternatives, want %zu", m[i].addr,
		    n, want);
		if (n >= 1 && want >= 1)
			CHECK(strcmp(alt[0], m[i].alt0) == 0, "'%s': '%s', "
			    "want '%s'", m[i].addr, alt[0], m[i].alt0);
		if (n >= 2 && want >= 2)
			CHECK(strcmp(alt[1], m[i].alt1) == 0, "'%s': '%s', "
			    "want '%s'", m[i].addr, alt[1], m[i].alt1);
	}
	CHECK(policy_addr_alts(NULL, alt, POLICY_ALTS) == 0, "NULL");
	CHECK(policy_addr_alts("a%b@c", alt, 0) == 0, "max 0");
}

int
main(void)
{
	test_pattern_good();
	test_pattern_bad();
	test_pattern_match();
	test_actions();
	test_nocert();
	test_precedence();
	test_id_tiebreak();
	test_set_errors();
	test_addr_alts();
	printf("test_policy: %d checks, %d failure(s)\n", checks, failures);
	return failures ? 1 : 0;
}
