/*
 * ctl_stats.c: `smrelayctl stats [--json]`: the running daemon's figures,
 * asked over its control socket (data_dir/smrelayd.sock, mode 0600; no
 * network port).  The daemon answers in the Prometheus text format, the
 * same rendering as GET /metrics; here each sample becomes a line
 * "NAME<TAB>LABELS<TAB>VALUE", or with --json an object of sample names,
 * each an array of {"labels": {...}, "value": N}.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "ctl.h"

#define STATS_TIMEOUT_MS	5000

/* One parsed sample; the strings point into the line, unescaped. */
struct sample {
	char	*name;
	char	*labels[32][2];
	int	 nlabels;
	double	 value;
};

/* A label value up to its closing quote, unescaped in place; the end. */
static char *
label_value(char *p)
{
	char *w = p;

	for (; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			*w++ = *p == 'n' ? '\n' : *p;
		} else
			*w++ = *p;
	}
	if (*p != '"')
		return NULL;
	*w = '\0';
	return p + 1;
}

/* Parse a text-format sample line; -1 when it is not one. */
static int
parse_sample(char *line, struct sample *s)
{
	char *p = line, *k, *end;

	memset(s, 0, sizeof(*s));
	if (!isalpha((unsigned char)*p) && *p != '_' && *p != ':')
		return -1;
	s->name = p;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	if (*p == '{') {
		*p++ = '\0';
		while (*p != '}') {
			k = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			if (p == k || p[0] != '=' || p[1] != '"' ||
			    s->nlabels == 32)
				return -1;
			*p = '\0';
			s->labels[s->nlabels][0] = k;
			s->labels[s->nlabels][1] = p + 2;
			s->nlabels++;
			if ((p = label_value(p + 2)) == NULL)
				return -1;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return -1;
		}
		p++;
	}
	if (*p != ' ')
		return -1;
	*p++ = '\0';
	s->value = strtod(p, &end);
	return end == p ? -1 : 0;
}

/* The sample as a tab-separated line. */
static void
print_text(const struct sample *s)
{
	int i;

	printf("%s\t", s->name);
	for (i = 0; i < s->nlabels; i++)
		printf("%s%s=%s", i ? "," : "", s->labels[i][0],
		    s->labels[i][1]);
	if (s->nlabels == 0)
		printf("-");
	if (s->value == floor(s->value) && fabs(s->value) < 1e15)
		printf("\t%.0f\n", s->value);
	else
		printf("\t%g\n", s->value);
}

/* Add the sample to the JSON object of sample names. */
static void
add_json(json_t *root, const struct sample *s)
{
	json_t *arr, *o, *labels;
	int i;

	if ((arr = json_object_get(root, s->name)) == NULL) {
		arr = json_array();
		json_object_set_new(root, s->name, arr);
	}
	labels = json_object();
	for (i = 0; i < s->nlabels; i++)
		json_object_set_new(labels, s->labels[i][0],
		    json_string(s->labels[i][1]));
	o = json_object();
	json_object_set_new(o, "labels", labels);
	if (s->value == floor(s->value) && fabs(s->value) < 9e15)
		json_object_set_new(o, "value", json_integer(
		    (json_int_t)s->value));
	else if (isfinite(s->value))
		json_object_set_new(o, "value", json_real(s->value));
	else
		json_object_set_new(o, "value", json_null());
	json_array_append_new(arr, o);
}

/* `stats [--json]`. */
int
ctl_stats_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct config *cfg;
	struct sample s;
	json_t *root = NULL;
	char err[1024], *path, *text, *line, *next;
	size_t len;
	int i, json = o->json, rc = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0) {
			fprintf(stderr, "usage: smrelayctl stats %s\n",
			    cmd->args);
			return 2;
		}
		json = 1;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return 1;
	}
	path = xasprintf("%s/%s", cfg->data_dir, METRICS_CTL_SOCK);
	config_free(cfg);
	if (metrics_srv_query(path, "stats", STATS_TIMEOUT_MS, &text, &len,
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: stats: %s\n", err);
		free(path);
		return 1;
	}
	free(path);
	if (strncmp(text, "# error", 7) == 0) {
		fprintf(stderr, "smrelayctl: stats: the daemon said: %s",
		    text + 2);
		free(text);
		return 1;
	}
	if (json)
		root = json_object();
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (parse_sample(line, &s) == -1) {
			fprintf(stderr, "smrelayctl: stats: unexpected line "
			    "from the daemon: %.80s\n", line);
			rc = 1;
			continue;
		}
		if (json)
			add_json(root, &s);
		else
			print_text(&s);
	}
	if (json) {
		if (json_dumpf(root, stdout, JSON_INDENT(2) |
		    JSON_PRESERVE_ORDER) == -1)
			rc = 1;
		printf("\n");
		json_decref(root);
	}
	free(text);
	if (fflush(stdout) == EOF)
		rc = 1;
	return rc;
}
