/* fuzz_policy.c: libFuzzer harness for policy patterns, action lists and
 * matching.  Input: "pattern\naddress\nactions". */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* End the line at s and return the next one ("" after the last). */
static char *
next_line(char *s)
{
	char *nl;

	if ((nl = strchr(s, '\n')) == NULL)
		return s + strlen(s);
	*nl = '\0';
	return nl + 1;
}

/* The routes a later relay may take: each a local@domain no longer than
 * the address. */
static void
alts_check(const char *addr)
{
	char alt[POLICY_ALTS][POLICY_ADDR_MAX];
	size_t i, n;

	n = policy_addr_alts(addr, alt, POLICY_ALTS);
	if (n > POLICY_ALTS)
		abort();
	for (i = 0; i < n; i++)
		if (strchr(alt[i], '@') == NULL || strlen(alt[i]) >
		    strlen(addr) || alt[i][0] == '@')
			abort();
}

/* Split the input at the first two newlines and exercise every entry. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct policy_rule r;
	struct policy_set *ps;
	enum policy_pat_kind k;
	char *buf, *pat, *addr, *acts, err[256], out[128];
	unsigned a;

	if ((buf = malloc(len + 1)) == NULL)
		return 0;
	memcpy(buf, data, len);
	buf[len] = '\0';
	pat = buf;
	addr = next_line(pat);
	acts = next_line(addr);
	if (policy_pattern_check(pat, &k, err, sizeof(err)) == 0) {
		memset(&r, 0, sizeof(r));
		r.sender = r.recipient = pat;
		r.actions = POLICY_SIGN;
		if (policy_actions_parse(acts, &a, err, sizeof(err)) == 0)
			r.actions = a;
		policy_actions_str(r.actions, out, sizeof(out));
		if ((ps = policy_set_new(&r, 1, err, sizeof(err))) == NULL)
			abort();		/* a checked rule must build */
		if ((policy_match(ps, addr, addr) != NULL) !=
		    policy_pattern_match(pat, addr))
			abort();
		if (k == POLICY_PAT_ANY && !policy_pattern_match(pat, addr))
			abort();
		policy_set_free(ps);
	} else if (policy_pattern_match(pat, addr))
		abort();			/* a bad pattern matches nothing */
	alts_check(addr);
	free(buf);
	return 0;
}
