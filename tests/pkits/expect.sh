# shellcheck shell=sh
# tests/pkits/expect.sh: what each NIST PKITS message should give, shared by
# t_pkits.sh (the engine) and t_pkits_cli.sh (the product path).
#   known NAME      the reason when NAME is a case we knowingly get wrong
#   expected NAME   "pass", "fail", or "unknown"

# Known exceptions: PKITS cases we knowingly get wrong, with the reason.
known() {
	case $1 in
	# 4.1.5: the end-entity DSA key has no parameters and inherits its
	# CA's; OpenSSL does not inherit DSA parameters, so the CMS signature
	# cannot be checked with that key.  DSA is not an S/MIME algorithm
	# any more (RFC 8551), so this is not worth implementing.
	SignedValidDSAParameterInheritanceTest5)
		echo "DSA parameter inheritance not supported by OpenSSL" ;;
	# 4.14.30: the indirect CRL's issuer has a certificate that only
	# that same CRL covers; OpenSSL's CRL path check does not accept a
	# CRL issuer whose status comes from its own CRL.
	SignedValidcRLIssuerTest30)
		echo "CRL issuer covered only by its own indirect CRL" ;;
	*)	return 1 ;;
	esac
}

# Expected outcome of a message: "pass" or "fail".
expected() {
	case $1 in
	SignedValid*) echo pass ;;
	SignedInvalid*|SignedMissingCRLTest1) echo fail ;;
	# 4.8 certificate policies and 4.12.3, with default settings: paths
	# whose CA requires an explicit policy the end entity's does not
	# meet are invalid, the others valid.
	SignedDifferentPoliciesTest[45789]|SignedDifferentPoliciesTest12)
		echo fail ;;
	SignedAllCertificates*|SignedDifferentPoliciesTest3|\
	SignedOverlappingPoliciesTest6|SignedAnyPolicyTest14|\
	SignedUserNoticeQualifierTest1[5-9]|SignedCPSPointerQualifierTest20|\
	SignedinhibitAnyPolicyTest3)
		echo pass ;;
	*)	echo unknown ;;
	esac
}

