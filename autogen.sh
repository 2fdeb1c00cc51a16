#!/bin/sh
# Regenerate the autotools files (configure, Makefile.in) from a clean clone.
set -e
cd "$(dirname "$0")"
autoreconf -fi
