#!/bin/bash
# t_smuggling.sh: SMTP smuggling.  Only <CRLF>.<CRLF> ends DATA.  A message
# whose data hides a fake end of data followed by a second transaction must
# never turn into two messages at the next hop, which here is Postfix's
# smtp-sink (a real peer that is lenient about line ends, so anything we
# passed on unchanged could be split there).  Messages with bare CR or LF are
# refused after the real end of data with a 5xx.
. "$(dirname "$0")/lib.sh"
need_bins

SMUGGLED='MAIL FROM:<evil@example.com>\r\nRCPT TO:<smuggled@example.net>\r\nDATA\r\nFrom: <evil@example.com>\r\nTo: <smuggled@example.net>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n'
HEAD='From: <sender@example.com>\r\nTo: <alice@example.net>\r\nSubject: legit\r\n\r\nlegit body'

# smuggle FAKE_END REPLY_CLASS: send one message with FAKE_END (escaped form)
# after the first body line and a second transaction behind it, then the real
# end.  Exactly one reply of REPLY_CLASS must come for the whole thing, and
# QUIT must be answered next (no replies to smuggled commands).
smuggle() {
	local fake=$1 class=$2
	start_smtp_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 \
		send:"$HEAD$fake$SMUGGLED.\r\n" expect:"$class" \
		line:"RSET" expect:250 \
		line:QUIT expect:221 || return 1
	# SIGTERM finishes anything in flight: after it the sink is final.
	stop_smrelayd || return 1
	if [ "$class" = 5 ]; then
		assert_nothing_for smuggled@example.net || return 1
		assert_nothing_for evil@example.com || return 1
		assert_sink_count 0
	else
		# Relayed as one message: the smuggled lines are just its text.
		assert_nothing_for smuggled@example.net envelope || return 1
		assert_file_lacks "$(sink_files | head -n 1)" '^X-Mail-Args: <evil@' "second transaction" || return 1
		[ "$(sink_count)" -le 1 ] || fail_because "$(sink_count) messages at the next hop for one transaction"
	fi
}

t_lf_dot_lf() { smuggle '\n.\n' 5; }
t_cr_dot_cr() { smuggle '\r.\r' 5; }
t_crlf_dot_lf() { smuggle '\r\n.\n' 5; }
t_lf_dot_crlf() { smuggle '\n.\r\n' 5; }
t_crlf_dot_cr() { smuggle '\r\n.\r' 5; }
# No bare CR/LF here: a NUL before the dot.  Refusing it or relaying it as
# one message are both fine; splitting it is not.
t_crlf_nul_dot_crlf() { smuggle '\r\n\0.\r\n' '2|5'; }

# Bare LF / bare CR without any smuggling attempt: refused, nothing relayed.
bare() {
	start_smtp_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 send:"Subject: bare\r\n\r\n$1.\r\n" expect:5 \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_sink_count 0
}
t_bare_lf() { bare 'line one\nline two\r\n'; }
t_bare_cr() { bare 'line one\rline two\r\n'; }

# The same smuggling attempt split over several writes, the fake end across
# a write boundary.
t_split_writes() {
	start_smtp_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 \
		send:"$HEAD\n" sleep:0.2 send:".\r" sleep:0.2 send:"\n$SMUGGLED" sleep:0.2 \
		send:".\r\n" expect:5 \
		line:QUIT expect:221 || return 1
	stop_smrelayd && assert_nothing_for smuggled@example.net && assert_sink_count 0
}

# Control: a clean message with a stuffed ".." line and a line "." inside
# the body (sent as "..") is one message, delivered intact.
t_control_clean() {
	start_smtp_sink && start_relay || return 1
	chat expect:220 line:"EHLO client.test" expect:250 \
		line:"MAIL FROM:<sender@example.com>" expect:250 \
		line:"RCPT TO:<alice@example.net>" expect:250 \
		line:DATA expect:354 \
		send:"Subject: clean\r\n\r\nfirst\r\n..\r\n...dots\r\nlast\r\n.\r\n" expect:250 \
		line:QUIT expect:221 || return 1
	stop_smrelayd || return 1
	wait_delivered 1 && assert_delivered_to alice@example.net || return 1
	assert_file_matches "$MSG" '^\.$' "the unstuffed '.' line" &&
		assert_file_matches "$MSG" '^\.\.dots$' "the unstuffed '..dots' line" &&
		assert_sink_count 1
}

run_case lf_dot_lf t_lf_dot_lf
run_case cr_dot_cr t_cr_dot_cr
run_case crlf_dot_lf t_crlf_dot_lf
run_case lf_dot_crlf t_lf_dot_crlf
run_case crlf_dot_cr t_crlf_dot_cr
run_case crlf_nul_dot_crlf t_crlf_nul_dot_crlf
run_case bare_lf t_bare_lf
run_case bare_cr t_bare_cr
run_case split_writes t_split_writes
run_case control_clean t_control_clean
it_finish
