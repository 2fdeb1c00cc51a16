#!/bin/sh
# daemon/sink/web/gen.sh DIR: write web_assets.c (to stdout), the sink's
# web inbox files of DIR as C strings, so the binary serves them itself.
set -e
dir=$1
echo '/* web_assets.c: made by daemon/sink/web/gen.sh from daemon/sink/web/; do not edit. */'
echo '#include "autoconfig.h"'
echo '#include <stddef.h>'
echo '#include "daemon/sink/sink_priv.h"'
n=0
for f in index.html app.css app.js; do
	echo "static const char asset$n[] ="
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/\\n"/' "$dir/$f"
	echo ";"
	n=$((n + 1))
done
echo 'const struct web_asset web_assets[] = {'
echo '	{ "/index.html", "text/html; charset=utf-8", asset0 },'
echo '	{ "/app.css", "text/css; charset=utf-8", asset1 },'
echo '	{ "/app.js", "text/javascript; charset=utf-8", asset2 },'
echo '	{ NULL, NULL, NULL }'
echo '};'
