#!/bin/bash
# tests/sink/send.sh signed|hostile: what browser.py sends while it watches
# the inbox.  signed: through smrelayd (PORT), which signs and encrypts it;
# hostile: tests/sink/hostile.eml straight to the sink (NH_PORT).  SUBJ:
# the signed one's subject.
set -eu
case $1 in
signed)
	exec timeout 120 swaks --server "127.0.0.1:$PORT" --helo client.test \
		--from alice@example.com --to bob@partner.example \
		--header "Subject: ${SUBJ:-quarterly figures}" \
		--body "The figures are attached in spirit. marker-7f3a" ;;
hostile)
	exec timeout 120 swaks --server "127.0.0.1:$NH_PORT" --helo client.test \
		--from mallory@evil.example --to victim@lab.example \
		--data "@$HOSTILE_MSG" ;;
esac
exit 2
