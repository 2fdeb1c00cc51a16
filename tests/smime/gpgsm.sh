# shellcheck shell=sh
# tests/smime/gpgsm.sh: gpgsm helpers for the tests that check our S/MIME
# against it (tests/smime/t_interop.sh, t_msg.sh, tests/policy/t_e2e.sh),
# sourced after they set G (a GnuPG home to create).
#   gs ARGS...            gpgsm in $G, batch, empty passphrases
#   gpgsm_home PKI        create $G trusting PKI/ca.pem, PKI/int.pem imported
#   gs_import_keys P12... import each PKCS#12 (certificate and secret key);
#                         the whole of gpgsm's output on stderr when one fails
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
	gs --import "$1/ca.pem" "$1/int.pem" || return 1
	# The secret keys go to gpg-agent: start it now rather than inside
	# the first import, where gpgsm gives a loaded machine only seconds.
	GNUPGHOME=$G gpgconf --launch gpg-agent
}

# gpgsm 2.2 fails to decrypt about one PKCS#12 file in 30 that openssl
# wrote ("decryption failed ... data error at shrouded_key_bag"), depending
# on the random salt: such a file is written again (same key, certificate
# and algorithms, new salt) next to the GnuPG home and imported, up to five
# times.  Each failure's output stays in $G/import.err.
gs_import_keys() {
	for _p12; do
		_d=$(dirname "$_p12")
		_n=$(basename "$_p12" .p12)
		_f=$_p12
		_try=0
		until gs --import "$_f" >/dev/null 2>>"$G/import.err"; do
			_try=$((_try + 1))
			[ "$_try" -le 5 ] && [ -f "$_d/$_n.pem" ] && [ -f "$_d/$_n.key" ] || {
				cat "$G/import.err" >&2
				return 1
			}
			_f=$G/$_n.retry$_try.p12
			openssl pkcs12 -export -in "$_d/$_n.pem" -inkey "$_d/$_n.key" \
				-certfile "$_d/int.pem" -keypbe PBE-SHA1-3DES \
				-certpbe PBE-SHA1-3DES -macalg sha1 -passout pass: \
				-out "$_f" 2>>"$G/import.err" || return 1
		done
	done
	_n=$(gs --list-secret-keys --with-colons | grep -c '^crs')
	[ "$_n" -ge $# ] || {
		echo "gpgsm: $_n secret key(s) after importing $#" >&2
		cat "$G/import.err" >&2
		return 1
	}
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
