# shellcheck shell=sh
# tests/smime/gpgsm.sh: gpgsm helpers for the tests that check our S/MIME
# against it (tests/smime/t_interop.sh, t_msg.sh, tests/policy/t_e2e.sh),
# sourced after they set G (a GnuPG home to create).
#   gs ARGS...            gpgsm in $G, batch, empty passphrases
#   gpgsm_home PKI        create $G trusting PKI/ca.pem, PKI/int.pem imported
#   split_signed [--crlf] MSG CONTENT SIGDER
#                         the two parts of a multipart/signed, for
#                         gpgsm --verify SIGDER CONTENT (--crlf: line ends
#                         made CRLF first, for a message stored with LF)

gs() { GNUPGHOME=$G gpgsm --batch --pinentry-mode loopback --passphrase '' "$@"; }

gpgsm_home() {
	mkdir -m 700 "$G" || return 1
	printf 'disable-crl-checks\n' >"$G/gpgsm.conf"
	printf 'allow-loopback-pinentry\n' >"$G/gpg-agent.conf"
	openssl x509 -in "$1/ca.pem" -noout -fingerprint -sha1 | cut -d= -f2 |
		sed 's/$/ S/' >"$G/trustlist.txt"
	gs --import "$1/ca.pem" "$1/int.pem"
}

split_signed() {
	_crlf=0
	[ "$1" = --crlf ] && { _crlf=1; shift; }
	"${PYTHON:-python3}" - "$_crlf" "$@" <<'PY'
import base64, re, sys
d = open(sys.argv[2], 'rb').read()
if sys.argv[1] == '1':
    d = d.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
b = b'--' + re.search(rb'boundary="?([^";\r\n]+)"?', d).group(1)
i = d.index(b + b'\r\n') + len(b) + 2
j = d.index(b'\r\n' + b, i)
open(sys.argv[3], 'wb').write(d[i:j])
k = d.index(b'\r\n\r\n', j) + 4
open(sys.argv[4], 'wb').write(base64.b64decode(d[k:d.index(b'\r\n' + b, k)]))
PY
}
