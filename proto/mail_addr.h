/* mail_addr.h: the From of RFC 5322 as a reader takes it: the first
 * mailbox of an address list, how many it names, whether its display name
 * or a comment shows another address, and the rules a signature's verdict
 * applies to them.  Values are unfolded (CR and LF removed), as the caller
 * found them after the colon; finding the fields is the caller's. */
#ifndef SMRELAY_MAIL_ADDR_H
#define SMRELAY_MAIL_ADDR_H

#include <stddef.h>

#define MAIL_ADDR_MAX	320	/* an addr-spec kept (RFC 5321: 64 @ 255) */

/* What the From fields of one header section say, field by field. */
struct mail_from {
	int	fields;		/* From fields seen */
	int	boxes;		/* mailboxes they name, all together */
	int	spoof;		/* a display name shows another address */
	int	have;		/* addr holds the first field's first mailbox */
	char	addr[MAIL_ADDR_MAX];
};

/* mail_addr.c */
/*
 * The addr-spec of the first mailbox of an address list value (inside
 * angle brackets, or bare), into buf.  0, or -1 when there is none (no
 * '@').
 */
int	mail_addr_first(const char *value, char *buf, size_t buflen);
/* How many mailboxes a value names: "a <x> <y>" and "Bob <b@x> ceo" count
 * two, as a reader that reads on would take them. */
int	mail_addr_count(const char *value);
/*
 * Whether a value, encoded-words decoded, shows an address other than
 * addr (in a display name or a comment), also when written with look-alike
 * at-signs or full stops (U+FF20, U+FE6B, U+FF0E, ...).
 */
int	mail_addr_shows_other(const char *value, const char *addr);
/*
 * addr as a key for decisions (policy, certificate and key lookups): its
 * domain, when it has non-ASCII labels, as DNS names it, in A-labels
 * (IDNA2008 with the UTS #46 non-transitional mapping: case and NFC
 * folded): "bob@müller.example" is "bob@xn--mller-kva.example".  The local
 * part stays.  Returns buf with that, or addr itself when there is nothing
 * to change (an ASCII domain), the domain is no valid IDN, or the result
 * does not fit in buflen.
 */
const char *mail_addr_key(const char *addr, char *buf, size_t buflen);
/* Start with { 0 }; add each From field's value in order. */
void	mail_from_add(struct mail_from *, const char *value);
/* Why these From fields name no single mailbox a reader shows, or NULL. */
const char *mail_from_ambiguous(const struct mail_from *);
/*
 * Why the From fields of a signed entity's own header (inner) disagree
 * with the message's (outer), or NULL (inner has none, or the same one
 * mailbox, compared case-insensitively).
 */
const char *mail_from_inner(const struct mail_from *outer,
	    const struct mail_from *inner);

#endif
