/* libFuzzer harness for the API's JSON input: any bytes, as a request body, are parsed and
 * checked against every command's argument list (src/api/cmdtab.c) without I/O; a refusal
 * must explain itself and a success must leave every required argument present with its
 * type. Inputs starting with '<' also go through the HTML sanitiser, whose output must be
 * balanced and free of script. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "api/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_html(const uint8_t *data, size_t size)
{
	bool trunc;
	char *out = arca_api_sanitize_html((const char *)data, size, 64 * 1024, &trunc);
	int depth = 0;
	if (out == NULL)
		return;
	if (strlen(out) > 64 * 1024)
		abort();
	for (const char *p = out; (p = strchr(p, '<')) != NULL; p++) {
		if (strncasecmp(p, "<script", 7) == 0 || strncasecmp(p, "<style", 6) == 0 ||
		    strncasecmp(p, "<iframe", 7) == 0 || strncasecmp(p, "<img", 4) == 0)
			abort();
		size_t n = strcspn(p + 1, " >");
		if (p[1] == '/')
			depth--;
		else if (!((n == 2 && (strncmp(p + 1, "br", 2) == 0 || strncmp(p + 1, "hr", 2) == 0)) ||
		           (n == 3 && strncmp(p + 1, "col", 3) == 0)))
			depth++; /* not a void element */
		if (depth < 0)
			abort();
	}
	if (depth != 0)
		abort();
	/* every tag is <name( attr="value")*> with values free of '"', '<' and '>' (escaped),
	 * and every href is http, https or mailto */
	for (const char *p = out; (p = strchr(p, '<')) != NULL; p++) {
		const char *q = p + 1 + (p[1] == '/');
		while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
			q++;
		while (*q == ' ') {
			const char *name = q + 1, *eq = strchr(name, '='), *v, *close;
			if (eq == NULL || eq[1] != '"')
				abort();
			v = eq + 2;
			close = strchr(v, '"');
			if (close == NULL || memchr(v, '<', (size_t)(close - v)) || memchr(v, '>', (size_t)(close - v)))
				abort();
			if (eq - name == 4 && strncmp(name, "href", 4) == 0 && strncasecmp(v, "http:", 5) != 0 &&
			    strncasecmp(v, "https:", 6) != 0 && strncasecmp(v, "mailto:", 7) != 0)
				abort();
			q = close + 1;
		}
		if (*q != '>')
			abort();
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	const arca_api_cmd *cmds = arca_api_commands(&n);
	json_t *obj = NULL;
	arca_error err = {0};
	if (size > 0 && data[0] == '<')
		check_html(data, size);
	if (arca_api_parse_json(data, size, &obj, &err) != ARCA_OK) {
		if (err.msg[0] == '\0')
			abort();
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		arca_error e = {0};
		if (arca_api_check_args(&cmds[i], obj, &e) != ARCA_OK) {
			if (e.msg[0] == '\0' || arca_api_http_status(e.status) != 400)
				abort();
			continue;
		}
		for (size_t k = 0; k < ARCA_API_CMD_ARGS && cmds[i].args[k].name; k++) {
			const arca_api_arg *a = &cmds[i].args[k];
			json_t *v = json_object_get(obj, a->name);
			if (a->required && (v == NULL || json_is_null(v)))
				abort();
			if (v == NULL || json_is_null(v))
				continue;
			if ((a->type == ARCA_API_STRING && !json_is_string(v)) ||
			    (a->type == ARCA_API_INT && !json_is_integer(v)) ||
			    (a->type == ARCA_API_BOOL && !json_is_boolean(v)) ||
			    (a->type == ARCA_API_STRINGS && !json_is_array(v)))
				abort();
			if (a->type == ARCA_API_STRING && strlen(json_string_value(v)) != json_string_length(v))
				abort(); /* a NUL got through */
		}
	}
	json_decref(obj);
	return 0;
}
