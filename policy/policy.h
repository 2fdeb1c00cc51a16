/* policy.h: policy rules (shared/SPEC.md `smrelayctl policy`): which rule
 * applies to a sender/recipient pair.  Pure code over an in-memory rule
 * set: no I/O, no locks; a built set is immutable and may be read from any
 * thread. */
#ifndef SMRELAY_POLICY_H
#define SMRELAY_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* Actions, a bit set (`--action sign,encrypt`). */
#define POLICY_SIGN	0x01u
#define POLICY_ENCRYPT	0x02u
#define POLICY_DECRYPT	0x04u
#define POLICY_VERIFY	0x08u
#define POLICY_PASS	0x10u
#define POLICY_REJECT	0x20u

/* What `encrypt` does for a recipient without a usable certificate. */
enum policy_nocert {
	POLICY_NOCERT_REJECT = 0,	/* 550 5.7.1 (the default) */
	POLICY_NOCERT_PLAIN,		/* relay that copy unencrypted */
	POLICY_NOCERT_HOLD		/* spool it until a certificate comes */
};

/* Kinds of pattern, from least to most specific. */
enum policy_pat_kind {
	POLICY_PAT_ANY = 0,		/* "*" (also matches the null sender) */
	POLICY_PAT_SUBDOMAINS,		/* "*.example.com": a.example.com,
					 * b.a.example.com, not example.com */
	POLICY_PAT_DOMAIN,		/* "@example.com", "*@example.com" */
	POLICY_PAT_ADDRESS		/* "user@example.com" */
};

struct policy_rule {
	int64_t		 id;
	char		*sender;	/* pattern as given ("*" if omitted) */
	char		*recipient;
	unsigned	 actions;	/* POLICY_* */
	enum policy_nocert nocert;
	int		 priority;	/* higher wins; default 0 */
};

struct policy_set;

/* policy.c */
/*
 * Check a pattern (`user@domain`, `@domain`, `*@domain`, `*.domain`, `*`);
 * kind gets its kind.  0, or -1 with the reason in err.  Matching is
 * ASCII case-insensitive, local part included (what admins expect, and
 * what the certificate store does with addresses).
 */
int policy_pattern_check(const char *pat, enum policy_pat_kind *kind,
    char *err, size_t errlen);
/* 1 if addr (envelope address, "" = null sender) matches pat. */
int policy_pattern_match(const char *pat, const char *addr);
/*
 * Parse "sign,encrypt" into POLICY_* bits.  `pass` and `reject` stand
 * alone.  0, or -1 with the reason in err.
 */
int policy_actions_parse(const char *list, unsigned *actions, char *err,
    size_t errlen);
/* "sign,encrypt" (canonical order: decrypt,verify,sign,encrypt,pass,reject). */
const char *policy_actions_str(unsigned actions, char *buf, size_t len);
/* "reject", "plain", "hold"; and back (-1 if unknown). */
const char *policy_nocert_str(enum policy_nocert);
int policy_nocert_parse(const char *, enum policy_nocert *);

/*
 * Build a set from rules (deep-copied; the caller keeps its array).  The
 * rules are checked; NULL with err set when one is invalid.
 */
struct policy_set *policy_set_new(const struct policy_rule *, size_t n,
    char *err, size_t errlen);
void policy_set_free(struct policy_set *);
size_t policy_set_count(const struct policy_set *);
/*
 * The rule for this pair: the highest priority among the matching rules;
 * a tie goes to the more specific pair of patterns (recipient kind first,
 * then sender kind, then the longer pattern), then to the lower id.  NULL
 * when no rule matches (the message passes unchanged).  O(rules) at worst;
 * the set is pre-sorted so the first match wins.
 */
const struct policy_rule *policy_match(const struct policy_set *,
    const char *sender, const char *recipient);

#define POLICY_ALTS	2		/* policy_addr_alts() at most */
#define POLICY_ADDR_MAX	320		/* an address, NUL included */
/*
 * The mailboxes a relay after us may turn addr into, by routing
 * conventions older than SMTP that Sendmail and Postfix still follow by
 * default: the %-hack ("user%dom@host" becomes "user@dom", at the last
 * '%') and a bang path ("site!user@host" becomes "user@site").  The local
 * part is read without its quotes.  Returns how many (0: none).
 */
size_t policy_addr_alts(const char *addr, char alt[][POLICY_ADDR_MAX],
    size_t max);
/*
 * Whether a later relay may route recipient on to an address whose rule is
 * not r (the recipient's own, or NULL): 1 with that address in alt and its
 * rule (or NULL) in *other; then neither rule can be trusted to apply.
 */
int policy_routed_otherwise(const struct policy_set *, const char *sender,
    const char *recipient, const struct policy_rule *r,
    char alt[POLICY_ADDR_MAX], const struct policy_rule **other);

#endif
