# shellcheck shell=bash
# tests/dns/nsd.sh: an authoritative NSD on 127.0.0.1 for tests, with zones
# the test writes, some of them DNSSEC-signed.  Source it, then:
#
#   nsd_init DIR               work in DIR (created); picks NSD_PORT
#   nsd_zone NAME <<EOF        zone NAME. from stdin (records relative to
#     ...                      NAME., $TTL 300); SOA and NS are added
#   EOF                        (not at the end of a pipeline: a subshell
#                              would not record the zone; use < <(...))
#   nsd_sign NAME              sign it (ECDSA P-256 KSK, NSEC): the DS goes
#                              into the trust anchor file $NSD_TA
#   nsd_tamper NAME OWNER TYPE break the RRSIG over OWNER/TYPE of a signed
#                              zone (validation of that RRset then fails)
#   nsd_start                  write nsd.conf, start nsd -d, wait until it
#                              answers every zone; nsd_stop, nsd_restart
#   nsd_smimea_owner LOCAL DOMAIN   the RFC 8162 owner name of LOCAL@DOMAIN
#   nsd_dig NAME TYPE          ask NSD (dig +short)
#
# Exports NSD_DIR, NSD_PORT, NSD_ADDR (127.0.0.1:PORT, a dns_resolver
# value), NSD_TA (DS records, zone-file syntax: a dns_trust_anchor file),
# NSD_PID.  NSD runs as the current user (no chroot, no user switch), so
# this works as root and not.  The caller stops it (nsd_stop, e.g. from an
# EXIT trap).  Zones sit at the top (partner.test., signed.test.): a
# resolver forwarding to NSD is answered for them directly, no delegation.
# Needs nsd, ldns-keygen, ldns-signzone, python3 (and dig to poll, else
# python3 does).  Checked by nsd_have.

NSD_DIR=""
NSD_PORT=""
NSD_ADDR=""
NSD_TA=""
NSD_PID=""
NSD_ZONES=()

# A port free on 127.0.0.1 for UDP and TCP alike, right now.
nsd_free_port() {
	python3 -c 'import socket
while True:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}

# nsd_have: the programs this fixture needs are installed.
nsd_have() {
	command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || return 1
	command -v ldns-keygen >/dev/null 2>&1 || return 1
	command -v ldns-signzone >/dev/null 2>&1 || return 1
	command -v python3 >/dev/null 2>&1     # free ports (and polls without dig)
}

# nsd_init DIR: start afresh in DIR.
nsd_init() {
	NSD_DIR=$1
	mkdir -p "$NSD_DIR/keys" || return 1
	NSD_PORT=$(nsd_free_port) || return 1
	NSD_ADDR=127.0.0.1:$NSD_PORT
	NSD_TA=$NSD_DIR/trust-anchors
	: >"$NSD_TA"
	NSD_ZONES=()
	export NSD_DIR NSD_PORT NSD_ADDR NSD_TA
}

# nsd_zone NAME: zone NAME. from stdin, with SOA and NS in front.
nsd_zone() {
	local z=${1%.}
	{
		printf '$ORIGIN %s.\n$TTL 300\n' "$z"
		printf '@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$z" "$z"
		printf '@ IN NS ns.%s.\nns IN A 127.0.0.1\n' "$z"
		cat
	} >"$NSD_DIR/$z.zone" || return 1
	NSD_ZONES+=("$z")
	rm -f "$NSD_DIR/$z.zone.signed"
}

# nsd_sign NAME: sign zone NAME with a fresh key; its DS into $NSD_TA.
nsd_sign() {
	local z=${1%.} key
	key=$(cd "$NSD_DIR/keys" && ldns-keygen -a ECDSAP256SHA256 -k \
	    -r /dev/urandom "$z.") || return 1
	ldns-signzone -o "$z." -f "$NSD_DIR/$z.zone.signed" \
	    "$NSD_DIR/$z.zone" "$NSD_DIR/keys/$key" || return 1
	cat "$NSD_DIR/keys/$key.ds" >>"$NSD_TA"
}

# nsd_tamper NAME OWNER TYPE: flip one character of the signature of the
# RRSIG over OWNER (a full name with the dot) and TYPE in signed zone NAME.
nsd_tamper() {
	local f=$NSD_DIR/${1%.}.zone.signed
	awk -v o="$2" -v t="$3" '
		!done && tolower($1) == tolower(o) && $4 == "RRSIG" && $5 == t {
			s = $NF
			c = substr(s, 10, 1)
			s = substr(s, 1, 9) (c == "A" ? "B" : "A") substr(s, 11)
			$NF = s
			done = 1
		}
		{ print }
		END { if (!done) exit 1 }' "$f" >"$f.new" && mv "$f.new" "$f"
}

# Write nsd.conf for the zones so far.
nsd_conf() {
	local z f
	cat >"$NSD_DIR/nsd.conf" <<EOF
server:
	ip-address: 127.0.0.1@$NSD_PORT
	port: $NSD_PORT
	username: ""
	chroot: ""
	zonesdir: "$NSD_DIR"
	database: ""
	zonelistfile: "$NSD_DIR/zone.list"
	xfrdfile: "$NSD_DIR/xfrd.state"
	xfrdir: "$NSD_DIR"
	pidfile: "$NSD_DIR/nsd.pid"
	logfile: "$NSD_DIR/nsd.log"
	server-count: 1
	verbosity: 1
	hide-version: yes
remote-control:
	control-enable: no
EOF
	for z in "${NSD_ZONES[@]}"; do
		f=$z.zone
		[ -f "$NSD_DIR/$z.zone.signed" ] && f=$z.zone.signed
		printf 'zone:\n\tname: "%s."\n\tzonefile: "%s"\n' "$z" "$f" \
		    >>"$NSD_DIR/nsd.conf"
	done
}

# nsd_dig NAME TYPE: NSD's answer (dig +short, or python3 says whether
# an answer came at all when there is no dig).
nsd_dig() {
	if command -v dig >/dev/null 2>&1; then
		dig +short +time=1 +tries=1 +norecurse -p "$NSD_PORT" \
		    @127.0.0.1 "$1" "$2"
		return
	fi
	python3 - "$NSD_PORT" "$1" <<'EOF'
import socket, struct, sys
port, name = int(sys.argv[1]), sys.argv[2].rstrip(".")
q = struct.pack(">HHHHHH", 0x5eed, 0, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
q += struct.pack(">HH", 6, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(q, ("127.0.0.1", port))
r = s.recv(4096)
sys.exit(0 if r[:2] == q[:2] and r[3] & 15 == 0 and r[6:8] != b"\0\0" else 1)
EOF
}

# nsd_ready: NSD answers the SOA of every zone.
nsd_ready() {
	local z
	for z in "${NSD_ZONES[@]}"; do
		[ -n "$(nsd_dig "$z." SOA 2>/dev/null)" ] || return 1
	done
}

# nsd_start: start NSD in the foreground (as a background job) and wait
# (at most 15 s) until it answers.
nsd_start() {
	local n=0 nsdbin
	nsdbin=$(command -v nsd || echo /usr/sbin/nsd)
	nsd_conf
	"$nsdbin" -d -c "$NSD_DIR/nsd.conf" >>"$NSD_DIR/nsd.out" 2>&1 &
	NSD_PID=$!
	export NSD_PID
	while ! nsd_ready; do
		if ! kill -0 "$NSD_PID" 2>/dev/null; then
			echo "nsd exited: $(tail -n 5 "$NSD_DIR/nsd.out" "$NSD_DIR/nsd.log" 2>/dev/null)" >&2
			NSD_PID=""
			return 1
		fi
		n=$((n + 1))
		if [ $n -gt 150 ]; then
			echo "nsd did not answer within 15 s" >&2
			nsd_stop
			return 1
		fi
		sleep 0.1
	done
}

# nsd_stop: stop NSD and wait until it is gone.
nsd_stop() {
	local n=0
	[ -n "$NSD_PID" ] || return 0
	kill -TERM "$NSD_PID" 2>/dev/null
	while kill -0 "$NSD_PID" 2>/dev/null && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill -KILL "$NSD_PID" 2>/dev/null
	wait "$NSD_PID" 2>/dev/null
	NSD_PID=""
}

# nsd_restart: stop and start again (same port, same zones).
nsd_restart() {
	nsd_stop
	nsd_start
}

# nsd_smimea_owner LOCAL DOMAIN: hex of the first 28 octets of
# SHA-256(LOCAL), then ._smimecert.DOMAIN (RFC 8162 section 3).
nsd_smimea_owner() {
	printf '%s._smimecert.%s\n' \
	    "$(printf %s "$1" | sha256sum | cut -c1-56)" "${2%.}"
}
