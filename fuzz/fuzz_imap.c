/* libFuzzer harness for the IMAP command parser. Byte 0 picks a split point, byte 1 the
 * options; the rest is client input. Invariants: no crash or leak; consumed <= len and
 * NEED_MORE only once everything is consumed; every ERROR explains itself; the events are the
 * same whether the input comes whole or in two chunks; and a parser that is between commands
 * afterwards still parses "zz NOOP". Atoms of every command also go through the sequence-set
 * parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const arca_imap_node *n, arca_buf *t)
{
	size_t len;
	const char *s = arca_imap_node_text(n, &len);
	if (s != NULL && s[len] != '\0')
		abort();
	switch (arca_imap_node_kind(n)) {
	case ARCA_IMAP_NODE_ATOM:
	case ARCA_IMAP_NODE_NUMBER: {
		arca_imap_seqset *set = NULL;
		arca_error err;
		if (arca_imap_seqset_parse(s, len, &set, &err) == ARCA_OK) {
			(void)arca_imap_seqset_contains(set, 3, 7);
			arca_imap_seqset_free(&set);
		} else if (set != NULL || err.msg[0] == '\0') {
			abort();
		}
		break;
	}
	case ARCA_IMAP_NODE_LIST:
		for (size_t i = 0; i < arca_imap_node_count(n); i++)
			walk(arca_imap_node_child(n, i), t);
		break;
	case ARCA_IMAP_NODE_SECTION:
		if (arca_imap_section_fields(n) != NULL)
			walk(arca_imap_section_fields(n), t);
		break;
	default:
		break;
	}
}

static void record(arca_imap_parser *p, arca_imap_result r, arca_buf *t)
{
	switch (r) {
	case ARCA_IMAP_NEED_MORE:
		break;
	case ARCA_IMAP_COMMAND: {
		const char *cmd = arca_imap_parser_command(p);
		const arca_imap_node *args = arca_imap_parser_args(p);
		if (cmd == NULL || arca_imap_parser_tag(p) == NULL)
			abort();
		arca_buf_printf(t, "%s %s ", arca_imap_parser_tag(p), cmd);
		if (arca_imap_node_format(args, t) != ARCA_OK)
			arca_buf_appendz(t, "<too long>");
		arca_buf_appendz(t, "\n");
		walk(args, t);
		if (strcmp(cmd, "IDLE") == 0 || strcmp(cmd, "AUTHENTICATE") == 0)
			arca_imap_parser_expect_line(p);
		break;
	}
	case ARCA_IMAP_CONTINUE_LITERAL:
		arca_buf_printf(t, "+ %llu\n", (unsigned long long)arca_imap_parser_literal_size(p));
		break;
	case ARCA_IMAP_LINE: {
		size_t len;
		if (arca_imap_parser_line(p, &len) == NULL)
			abort();
		arca_buf_printf(t, "LINE %zu\n", len);
		break;
	}
	case ARCA_IMAP_ERROR: {
		const arca_error *e = arca_imap_parser_error(p);
		if (e->status == ARCA_OK || e->msg[0] == '\0')
			abort();
		arca_buf_printf(t, "BAD %s %d %s\n", arca_imap_parser_tag(p) ? arca_imap_parser_tag(p) : "*",
		                (int)arca_imap_parser_error_code(p), e->msg);
		break;
	}
	}
}

static void feed(arca_imap_parser *p, const char *d, size_t len, arca_buf *t)
{
	size_t off = 0;
	for (;;) {
		size_t used = 0;
		arca_imap_result r = arca_imap_parser_feed(p, d + off, len - off, &used);
		if (used > len - off)
			abort();
		off += used;
		record(p, r, t);
		if (r == ARCA_IMAP_NEED_MORE) {
			if (off != len)
				abort();
			return;
		}
		if (off == len)
			return;
	}
}

static char *run(const arca_imap_parser_opts *opts, const char *in, size_t len, size_t cut, bool check_reuse)
{
	arca_imap_parser *p = NULL;
	arca_buf t;
	arca_buf_init(&t, 256u * 1024u * 1024u);
	if (arca_imap_parser_new(opts, &p, NULL) != ARCA_OK)
		abort();
	feed(p, in, cut, &t);
	feed(p, in + cut, len - cut, &t);
	if (check_reuse && !arca_imap_parser_in_command(p)) {
		size_t used;
		/* a pending expect_line would take the line raw: satisfy it first */
		arca_imap_result r = arca_imap_parser_feed(p, "x\r\n", 3, &used);
		if (r != ARCA_IMAP_COMMAND && r != ARCA_IMAP_LINE && r != ARCA_IMAP_ERROR)
			abort();
		r = arca_imap_parser_feed(p, "zz NOOP\r\n", 9, &used);
		if (r != ARCA_IMAP_COMMAND || used != 9 || strcmp(arca_imap_parser_command(p), "NOOP") != 0)
			abort();
	}
	arca_imap_parser_free(&p);
	arca_buf_appendz(&t, "");
	return arca_buf_steal(&t, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arca_imap_parser_opts opts = { 0 };
	const char *in;
	size_t len, cut;
	char *whole, *split;
	if (size < 2)
		return 0;
	opts.literal_plus = (data[1] & 1) != 0;
	opts.max_literal = (data[1] & 2) != 0 ? 16 : 0;
	in = (const char *)data + 2;
	len = size - 2;
	cut = len > 0 ? (size_t)data[0] * len / 255 : 0;
	whole = run(&opts, in, len, len, true);
	split = run(&opts, in, len, cut, false);
	if (strcmp(whole, split) != 0) {
		fprintf(stderr, "split at %zu changes the events:\nwhole:\n%s\nsplit:\n%s\n", cut, whole, split);
		abort();
	}
	free(whole);
	free(split);
	return 0;
}
