/* IMAP message layer: data-driven transcripts (tests/unit/imap/data/NAME.eml with NAME.exp:
 * pairs of lines, an item and its expected answer) for BODYSTRUCTURE, BODY, ENVELOPE,
 * BODY[section]<partial>, BINARY and the search helpers; plus unit tests of the string
 * writers, section specs, the matcher, limits and pathological structures.
 *
 * .exp syntax: "#" comments and empty lines are skipped; "%crlf" (before the first item) reads
 * the .eml with every LF turned into CRLF. Items: BODYSTRUCTURE, BODY, ENVELOPE, RFC822.SIZE,
 * PARTS (part count), LIMITED (0/1), HEADER <name>, TEXT (with headers), BODYTEXT, DATE
 * ("<unix> <tz minutes>"), NAME <fetch-att> (the response item name), or a fetch-att such as
 * BODY[1.HEADER]<0.10>, BINARY[2], BINARY.SIZE[2]. Answers are written with C escapes (\r \n
 * \t \\ \xNN); EMPTY is the empty answer, NOTFOUND and UNKNOWN-CTE stand for those statuses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/message.h"
#include "imap/parser.h"
#include "imap/write.h"
#include "lib/limits.h"

#ifndef IMAP_MSG_DATA
#error "IMAP_MSG_DATA must name the test data directory"
#endif

/* ------------------------------------------------------------------ helpers */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long l;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	l = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = xmalloc((size_t)l + 1);
	*len = fread(b, 1, (size_t)l, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

static void escape(arca_buf *o, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '\\')
			arca_buf_appendz(o, "\\\\");
		else if (c == '\r')
			arca_buf_appendz(o, "\\r");
		else if (c == '\n')
			arca_buf_appendz(o, "\\n");
		else if (c == '\t')
			arca_buf_appendz(o, "\\t");
		else if (c < 0x20 || c > 0x7e)
			arca_buf_printf(o, "\\x%02x", c);
		else
			arca_buf_append(o, &c, 1);
	}
	arca_buf_appendz(o, "");
}

static arca_imap_msg *parse(const void *data, size_t len)
{
	arca_imap_msg *m = NULL;
	arca_error err;
	assert_int_equal(arca_imap_msg_parse(data, len, &m, &err), ARCA_OK);
	assert_non_null(m);
	return m;
}

static arca_imap_msg *parse_str(const char *s)
{
	return parse(s, strlen(s));
}

/* Parses one fetch-att (e.g. "BODY.PEEK[1.MIME]<0.5>") with the command parser. */
static bool section_of(const char *att, arca_imap_fetch_section *sec)
{
	arca_imap_parser *p = NULL;
	arca_buf cmd;
	size_t used = 0;
	arca_imap_result r;
	const arca_imap_node *args, *list, *node;
	arca_error err;
	bool ok = false;
	arca_buf_init(&cmd, 1 << 20);
	arca_buf_printf(&cmd, "t FETCH 1 (%s)\r\n", att);
	assert_int_equal(arca_imap_parser_new(NULL, &p, NULL), ARCA_OK);
	r = arca_imap_parser_feed(p, cmd.data, cmd.len, &used);
	if (r == ARCA_IMAP_COMMAND) {
		args = arca_imap_parser_args(p);
		list = arca_imap_node_child(args, 1);
		node = list != NULL ? arca_imap_node_child(list, 0) : NULL;
		ok = node != NULL && arca_imap_fetch_section_from_node(node, sec, &err) == ARCA_OK;
	}
	arca_imap_parser_free(&p);
	arca_buf_free(&cmd);
	return ok;
}

/* The answer to one transcript item, escaped, into got. */
static void answer(arca_imap_msg *m, const char *item, arca_buf *got)
{
	arca_buf o, scratch;
	arca_status st = ARCA_OK;
	arca_buf_init(&o, 1u << 30);
	arca_buf_init(&scratch, 1u << 30);
	if (strcmp(item, "BODYSTRUCTURE") == 0 || strcmp(item, "BODY") == 0) {
		st = arca_imap_msg_bodystructure(m, item[4] == 'S', &o);
	} else if (strcmp(item, "ENVELOPE") == 0) {
		st = arca_imap_msg_envelope(m, &o);
	} else if (strcmp(item, "RFC822.SIZE") == 0) {
		arca_buf_printf(&o, "%zu", arca_imap_msg_size(m));
	} else if (strcmp(item, "PARTS") == 0) {
		arca_buf_printf(&o, "%zu", arca_imap_msg_part_count(m));
	} else if (strcmp(item, "LIMITED") == 0) {
		arca_buf_printf(&o, "%d", arca_imap_msg_limited(m) ? 1 : 0);
	} else if (strncmp(item, "HEADER ", 7) == 0) {
		st = arca_imap_msg_header(m, item + 7, &o);
	} else if (strcmp(item, "TEXT") == 0 || strcmp(item, "BODYTEXT") == 0) {
		st = arca_imap_msg_text(m, item[0] == 'T', &o, 0);
	} else if (strcmp(item, "DATE") == 0) {
		int64_t t;
		int tz;
		st = arca_imap_msg_date(m, &t, &tz);
		if (st == ARCA_OK)
			arca_buf_printf(&o, "%lld %d", (long long)t, tz);
	} else if (strncmp(item, "NAME ", 5) == 0) {
		arca_imap_fetch_section sec;
		if (!section_of(item + 5, &sec))
			fail_msg("cannot parse fetch item %s", item + 5);
		st = arca_imap_fetch_section_format(&sec, &o);
		arca_imap_fetch_section_clear(&sec);
	} else {
		arca_imap_fetch_section sec;
		const uint8_t *data = NULL;
		size_t len = 0;
		arca_error err;
		if (!section_of(item, &sec))
			fail_msg("cannot parse fetch item %s", item);
		st = arca_imap_msg_fetch(m, &sec, &scratch, &data, &len, &err);
		if (st == ARCA_OK && sec.kind == ARCA_IMAP_FETCH_BINARY_SIZE)
			arca_buf_printf(&o, "%zu", len);
		else if (st == ARCA_OK)
			arca_buf_append(&o, data, len);
		else if (st == ARCA_ERR_NOTFOUND && sec.kind != ARCA_IMAP_FETCH_BINARY_SIZE)
			assert_int_equal(len, 0);
		arca_imap_fetch_section_clear(&sec);
	}
	if (st == ARCA_ERR_NOTFOUND)
		arca_buf_appendz(got, "NOTFOUND");
	else if (st == ARCA_IMAP_MSG_UNKNOWN_CTE)
		arca_buf_appendz(got, "UNKNOWN-CTE");
	else if (st != ARCA_OK)
		arca_buf_printf(got, "ERROR %s", arca_status_name(st));
	else if (o.len == 0)
		arca_buf_appendz(got, "EMPTY");
	else
		escape(got, o.data, o.len);
	arca_buf_free(&o);
	arca_buf_free(&scratch);
}

static char *crlf(const char *s, size_t len, size_t *out_len)
{
	arca_buf b;
	arca_buf_init(&b, SIZE_MAX / 2);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			arca_buf_append(&b, "\r", 1);
		arca_buf_append(&b, &s[i], 1);
	}
	arca_buf_appendz(&b, "");
	return arca_buf_steal(&b, out_len);
}

static int run_transcript(const char *name)
{
	char path[1024];
	size_t elen, mlen, ln = 0;
	char *exp, *msg, *line, *save = NULL, *item = NULL;
	int item_line = 0, failures = 0;
	bool use_crlf = false;
	arca_imap_msg *m = NULL;
	snprintf(path, sizeof(path), "%s/%s.exp", IMAP_MSG_DATA, name);
	exp = slurp(path, &elen);
	assert_non_null(exp);
	snprintf(path, sizeof(path), "%s/%s.eml", IMAP_MSG_DATA, name);
	msg = slurp(path, &mlen);
	if (msg == NULL)
		fail_msg("missing %s", path);
	for (line = strtok_r(exp, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		ln++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strcmp(line, "%crlf") == 0) {
			use_crlf = true;
			continue;
		}
		if (m == NULL) {
			if (use_crlf) {
				char *c = crlf(msg, mlen, &mlen);
				free(msg);
				msg = c;
			}
			m = parse(msg, mlen);
		}
		if (item == NULL) {
			item = line;
			item_line = (int)ln;
			continue;
		}
		{
			arca_buf got;
			arca_buf_init(&got, 1u << 30);
			answer(m, item, &got);
			if (strcmp(got.data, line) != 0) {
				print_message("%s.exp:%d: %s\n  want: %s\n   got: %s\n", name, item_line, item, line,
				              got.data);
				failures++;
			}
			arca_buf_free(&got);
		}
		item = NULL;
	}
	if (item != NULL)
		fail_msg("%s.exp:%d: item without an answer", name, item_line);
	arca_imap_msg_free(&m);
	free(msg);
	free(exp);
	return failures;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_transcripts(void **state)
{
	DIR *dir = opendir(IMAP_MSG_DATA);
	struct dirent *e;
	char *names[256];
	size_t n = 0;
	int failures = 0;
	(void)state;
	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".exp") == 0 && n < 256)
			names[n++] = strndup(e->d_name, l - 4);
	}
	closedir(dir);
	assert_true(n >= 15);
	qsort(names, n, sizeof(names[0]), cmpstr);
	for (size_t i = 0; i < n; i++) {
		failures += run_transcript(names[i]);
		free(names[i]);
	}
	assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------ writers */

static void test_write_strings(void **state)
{
	arca_buf o;
	(void)state;
	arca_buf_init(&o, 1 << 20);
	assert_int_equal(arca_imap_write_string(&o, "abc", 3), ARCA_OK);
	assert_int_equal(arca_imap_write_string(&o, "a\"b\\c", 5), ARCA_OK);
	assert_int_equal(arca_imap_write_string(&o, "", 0), ARCA_OK);
	assert_string_equal(o.data, "\"abc\"\"a\\\"b\\\\c\"\"\"");
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_string(&o, "a\r\nb", 4), ARCA_OK);
	assert_string_equal(o.data, "{4}\r\na\r\nb");
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_string(&o, "caf\xc3\xa9", 5), ARCA_OK);
	assert_string_equal(o.data, "{5}\r\ncaf\xc3\xa9");
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_string(&o, "a\0b", 3), ARCA_OK);
	assert_int_equal(o.len, 8);
	assert_memory_equal(o.data, "{3}\r\na\x80" "b", 8);
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_nstring(&o, NULL, 0), ARCA_OK);
	assert_int_equal(arca_imap_write_astring(&o, " ", 0), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&o, " "), ARCA_OK);
	assert_int_equal(arca_imap_write_astring(&o, "Subject", 7), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&o, " "), ARCA_OK);
	assert_int_equal(arca_imap_write_astring(&o, "nil", 3), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&o, " "), ARCA_OK);
	assert_int_equal(arca_imap_write_astring(&o, "a b", 3), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&o, " "), ARCA_OK);
	assert_int_equal(arca_imap_write_astring(&o, "[x]", 3), ARCA_OK);
	assert_string_equal(o.data, "NIL\"\" Subject \"nil\" \"a b\" [x]");
	/* long strings go out as literals */
	{
		char *big = xmalloc(ARCA_IMAP_QUOTED_MAX + 1);
		memset(big, 'x', ARCA_IMAP_QUOTED_MAX + 1);
		arca_buf_reset(&o);
		assert_int_equal(arca_imap_write_string(&o, big, ARCA_IMAP_QUOTED_MAX), ARCA_OK);
		assert_int_equal(o.data[0], '"');
		arca_buf_reset(&o);
		assert_int_equal(arca_imap_write_string(&o, big, ARCA_IMAP_QUOTED_MAX + 1), ARCA_OK);
		assert_int_equal(o.data[0], '{');
		free(big);
	}
	/* a buffer cap is reported, not overrun */
	{
		arca_buf small;
		arca_buf_init(&small, 4);
		assert_int_equal(arca_imap_write_string(&small, "abcdef", 6), ARCA_ERR_LIMIT);
		arca_buf_free(&small);
	}
	arca_buf_free(&o);
}

static void test_write_datetime(void **state)
{
	arca_buf o;
	(void)state;
	arca_buf_init(&o, 1024);
	/* RFC 3501's example: 17-Jul-1996 02:44:25 -0700 */
	assert_int_equal(arca_imap_write_datetime(&o, 837596665, -420), ARCA_OK);
	assert_string_equal(o.data, "\"17-Jul-1996 02:44:25 -0700\"");
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_datetime(&o, 0, 0), ARCA_OK);
	assert_string_equal(o.data, "\" 1-Jan-1970 00:00:00 +0000\"");
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_write_datetime(&o, 1700000000, 330), ARCA_OK);
	assert_string_equal(o.data, "\"15-Nov-2023 03:43:20 +0530\"");
	arca_buf_free(&o);
}

/* ------------------------------------------------------------------ sections */

static void test_section_specs(void **state)
{
	arca_imap_fetch_section sec;
	arca_buf o;
	(void)state;
	arca_buf_init(&o, 4096);
	assert_true(section_of("BODY.PEEK[1.2.HEADER.FIELDS.NOT (From \"X Y\" {3+}\r\nabc)]<10.20>", &sec));
	assert_int_equal(sec.kind, ARCA_IMAP_FETCH_BODY);
	assert_true(sec.peek);
	assert_int_equal(sec.nparts, 2);
	assert_int_equal(sec.parts[1], 2);
	assert_int_equal(sec.spec, ARCA_IMAP_SPEC_HEADER_FIELDS_NOT);
	assert_int_equal(sec.nfields, 3);
	assert_string_equal(sec.fields[1].name, "X Y");
	assert_true(sec.partial);
	assert_int_equal(sec.offset, 10);
	assert_int_equal(sec.count, 20);
	assert_int_equal(arca_imap_fetch_section_format(&sec, &o), ARCA_OK);
	assert_string_equal(o.data, "BODY[1.2.HEADER.FIELDS.NOT (From \"X Y\" abc)]<10>");
	arca_imap_fetch_section_clear(&sec);
	assert_null(sec.fields);
	assert_true(section_of("BINARY.PEEK[3]", &sec));
	assert_int_equal(sec.kind, ARCA_IMAP_FETCH_BINARY);
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_fetch_section_format(&sec, &o), ARCA_OK);
	assert_string_equal(o.data, "BINARY[3]");
	arca_imap_fetch_section_clear(&sec);
	assert_true(section_of("BINARY.SIZE[]", &sec));
	assert_int_equal(sec.kind, ARCA_IMAP_FETCH_BINARY_SIZE);
	arca_imap_fetch_section_clear(&sec);
	/* not a section node */
	{
		arca_error err;
		assert_int_equal(arca_imap_fetch_section_from_node(NULL, &sec, &err), ARCA_ERR_SYNTAX);
	}
	arca_buf_free(&o);
}

/* BODY[] and single-range sections point into the caller's bytes: no copy. */
static void test_no_copy(void **state)
{
	const char *raw = "Subject: hi\r\n\r\nbody\r\n";
	arca_imap_msg *m = parse_str(raw);
	arca_imap_fetch_section sec;
	arca_buf scratch;
	const uint8_t *d;
	size_t len;
	arca_error err;
	(void)state;
	arca_buf_init(&scratch, 1024);
	memset(&sec, 0, sizeof(sec));
	assert_int_equal(arca_imap_msg_section(m, &sec, &scratch, &d, &len, &err), ARCA_OK);
	assert_ptr_equal(d, (const uint8_t *)raw);
	assert_int_equal(len, strlen(raw));
	sec.spec = ARCA_IMAP_SPEC_TEXT;
	sec.partial = true;
	sec.offset = 1;
	sec.count = 2;
	assert_int_equal(arca_imap_msg_section(m, &sec, &scratch, &d, &len, &err), ARCA_OK);
	assert_ptr_equal(d, (const uint8_t *)raw + 16);
	assert_int_equal(len, 2);
	assert_null(scratch.data);
	/* a scratch cap too small for a copied answer is reported */
	{
		arca_imap_field_name f = { "Subject", 7 };
		arca_buf tiny;
		arca_buf_init(&tiny, 4);
		memset(&sec, 0, sizeof(sec));
		sec.spec = ARCA_IMAP_SPEC_HEADER_FIELDS;
		sec.fields = &f;
		sec.nfields = 1;
		assert_int_equal(arca_imap_msg_section(m, &sec, &tiny, &d, &len, &err), ARCA_ERR_LIMIT);
		arca_buf_free(&tiny);
	}
	arca_buf_free(&scratch);
	arca_imap_msg_free(&m);
	assert_null(m);
	arca_imap_msg_free(&m);
}

/* Partial ranges at every offset of a small body agree with slicing. */
static void test_partial_edges(void **state)
{
	const char *raw = "A: b\n\n0123456789";
	arca_imap_msg *m = parse_str(raw);
	arca_imap_fetch_section sec;
	arca_buf scratch;
	arca_error err;
	(void)state;
	arca_buf_init(&scratch, 1024);
	for (uint32_t off = 0; off <= 12; off++) {
		for (uint32_t cnt = 1; cnt <= 12; cnt++) {
			const uint8_t *d;
			size_t len, want_len;
			memset(&sec, 0, sizeof(sec));
			sec.nparts = 1;
			sec.parts[0] = 1;
			sec.partial = true;
			sec.offset = off;
			sec.count = cnt;
			assert_int_equal(arca_imap_msg_section(m, &sec, &scratch, &d, &len, &err), ARCA_OK);
			want_len = off >= 10 ? 0 : (10 - off < cnt ? 10 - off : cnt);
			assert_int_equal(len, want_len);
			if (len > 0)
				assert_memory_equal(d, "0123456789" + off, len);
			sec.kind = ARCA_IMAP_FETCH_BINARY;
			assert_int_equal(arca_imap_msg_binary(m, &sec, &scratch, &d, &len, &err), ARCA_OK);
			assert_int_equal(len, want_len);
		}
	}
	/* offset 2^32-1 */
	memset(&sec, 0, sizeof(sec));
	sec.partial = true;
	sec.offset = UINT32_MAX;
	sec.count = UINT32_MAX;
	{
		const uint8_t *d;
		size_t len;
		assert_int_equal(arca_imap_msg_section(m, &sec, &scratch, &d, &len, &err), ARCA_OK);
		assert_int_equal(len, 0);
	}
	arca_buf_free(&scratch);
	arca_imap_msg_free(&m);
}

/* ------------------------------------------------------------------ decoders */

/* Straightforward models of the lenient decoders, to compare the fast ones with. */
static size_t ref_b64(const unsigned char *p, size_t n, unsigned char *o)
{
	static const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0, k = 0;
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		const char *c = p[i] != 0 ? strchr(al, p[i]) : NULL;
		if (c == NULL) {
			if (p[i] == '=' && k >= 2) {
				o[w++] = (unsigned char)(k == 2 ? acc >> 4 : acc >> 10);
				if (k == 3)
					o[w++] = (unsigned char)(acc >> 2);
				k = acc = 0;
			}
			continue;
		}
		acc = acc << 6 | (unsigned)(c - al);
		if (++k == 4) {
			o[w++] = (unsigned char)(acc >> 16);
			o[w++] = (unsigned char)(acc >> 8);
			o[w++] = (unsigned char)acc;
			k = acc = 0;
		}
	}
	if (k == 2)
		o[w++] = (unsigned char)(acc >> 4);
	if (k == 3) {
		o[w++] = (unsigned char)(acc >> 10);
		o[w++] = (unsigned char)(acc >> 2);
	}
	return w;
}

static int hexv(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 :
	       c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool line_end_at(const unsigned char *p, size_t n, size_t j)
{
	return j == n || p[j] == '\n' || (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n');
}

static size_t ref_qp(const unsigned char *p, size_t n, unsigned char *o)
{
	size_t w = 0, i = 0;
	while (i < n) {
		if (p[i] == '=') {
			size_t j = i + 1;
			if (i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
				o[w++] = (unsigned char)(hexv(p[i + 1]) * 16 + hexv(p[i + 2]));
				i += 3;
				continue;
			}
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (line_end_at(p, n, j)) {
				i = j == n ? n : j + (p[j] == '\n' ? 1 : 2);
				continue;
			}
			o[w++] = '=';
			i++;
		} else if (p[i] == ' ' || p[i] == '\t') {
			size_t j = i;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (!line_end_at(p, n, j))
				while (i < j)
					o[w++] = p[i++];
			i = j;
		} else {
			o[w++] = p[i++];
		}
	}
	return w;
}

static void test_decoders(void **state)
{
	static const char b64set[] = "QUJDabc+/09=\n\r *AAAA";
	static const char qpset[] = "ab=3DF0\t \r\n=x";
	arca_buf msg, scratch;
	unsigned seed = 12345;
	(void)state;
	arca_buf_init(&msg, 1 << 24);
	arca_buf_init(&scratch, 1 << 24);
	for (int round = 0; round < 4000; round++) {
		bool b64 = round % 2 == 0;
		size_t n = (size_t)(round % 97) * (round % 7 == 0 ? 40 : 1), hdr;
		unsigned char *want = xmalloc(n + 4);
		size_t wl;
		arca_imap_msg *m;
		arca_imap_fetch_section sec;
		const uint8_t *d;
		size_t dl;
		uint64_t size;
		arca_error err;
		arca_buf_reset(&msg);
		arca_buf_printf(&msg, "MIME-Version: 1.0\nContent-Transfer-Encoding: %s\n\n",
		                b64 ? "base64" : "quoted-printable");
		hdr = msg.len;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			const char *set = b64 ? b64set : qpset;
			size_t setlen = b64 ? sizeof(b64set) - 1 : sizeof(qpset) - 1;
			arca_buf_append(&msg, &set[(seed >> 16) % setlen], 1);
		}
		wl = b64 ? ref_b64((const unsigned char *)msg.data + hdr, n, want) :
		           ref_qp((const unsigned char *)msg.data + hdr, n, want);
		m = parse(msg.data, msg.len);
		memset(&sec, 0, sizeof(sec));
		sec.kind = ARCA_IMAP_FETCH_BINARY;
		sec.nparts = 1;
		sec.parts[0] = 1;
		assert_int_equal(arca_imap_msg_binary(m, &sec, &scratch, &d, &dl, &err), ARCA_OK);
		if (dl != wl || (wl > 0 && memcmp(d, want, wl) != 0))
			fail_msg("round %d (%s): decoded %zu bytes, model %zu", round, b64 ? "base64" : "qp", dl, wl);
		assert_int_equal(arca_imap_msg_binary_size(m, &sec, &size, &err), ARCA_OK);
		assert_int_equal(size, wl);
		/* a partial range decodes only what it needs and agrees */
		sec.partial = true;
		sec.offset = (uint32_t)(wl / 3);
		sec.count = (uint32_t)(wl / 4 + 1);
		assert_int_equal(arca_imap_msg_binary(m, &sec, &scratch, &d, &dl, &err), ARCA_OK);
		assert_int_equal(dl, wl - sec.offset < sec.count ? wl - sec.offset : sec.count);
		if (dl > 0)
			assert_memory_equal(d, want + sec.offset, dl);
		arca_imap_msg_free(&m);
		free(want);
	}
	arca_buf_free(&msg);
	arca_buf_free(&scratch);
}

/* ------------------------------------------------------------------ search */

static void test_match(void **state)
{
	(void)state;
	assert_true(arca_imap_match_substring("Hello World", 11, "o wor", 5));
	assert_true(arca_imap_match_substring("Hello World", 11, "", 0));
	assert_false(arca_imap_match_substring("Hello", 5, "hello!", 6));
	assert_false(arca_imap_match_substring("Hello", 5, "xyz", 3));
	/* Unicode simple case folding */
	assert_true(arca_imap_match_substring("GR\xc3\x9c\xc3\x9f" "E", 7, "gr\xc3\xbc", 4));
	assert_true(arca_imap_match_substring("\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91", 10,
	                                      "\xcf\x83\xce\xbf\xcf\x86", 6));
	/* an ASCII needle in non-ASCII text: ASCII folding, unless the text holds a character whose
	 * folding contains ASCII (sharp s, Kelvin sign, long s, ligatures, dotted capital I) */
	assert_true(arca_imap_match_substring("caf\xc3\xa9 LINUX r\xc3\xa9sum\xc3\xa9", 20, "linux", 5));
	assert_false(arca_imap_match_substring("caf\xc3\xa9 LINUX", 11, "cafe", 4));
	assert_true(arca_imap_match_substring("caf\xc3\xa9 Stra\xc3\x9f" "e", 13, "strasse", 7));
	assert_true(arca_imap_match_substring("\xc3\xa9 \xe2\x84\xaa" "elvin", 11, "kelvin", 6));
	assert_true(arca_imap_match_substring("\xc3\xa9 mi\xc5\xbft", 8, "mist", 4));
	assert_true(arca_imap_match_substring("\xc3\xa9 \xef\xac\x81" "le", 8, "FILE", 4));
	assert_true(arca_imap_match_substring("\xc3\xa9 \xef\xac\x86" "op", 8, "stop", 4));
	assert_true(arca_imap_match_substring("\xc3\xa9 \xc4\xb0" "x", 6, "i", 1));
	assert_false(arca_imap_match_substring("\xc3\xa9 \xef\xac\x87" "op", 8, "stop", 4));
	/* invalid UTF-8 falls back to bytes with ASCII folding */
	assert_true(arca_imap_match_substring("ABC\xff", 4, "bc\xff", 3));
	assert_false(arca_imap_match_substring("ABC\xff", 4, "bc\xfe", 3));
	/* long inputs (no quadratic blow-up, heap buffers) */
	{
		size_t n = 1 << 20;
		char *h = xmalloc(n), *nd = xmalloc(4096);
		memset(h, 'a', n);
		memset(nd, 'a', 4096);
		nd[4095] = 'b';
		assert_false(arca_imap_match_substring(h, n, nd, 4096));
		h[n - 1] = 'B';
		assert_true(arca_imap_match_substring(h, n, nd, 4096));
		free(h);
		free(nd);
	}
}

static void test_text_cap(void **state)
{
	const char *raw = "Content-Type: text/plain; charset=utf-8\n\n\xc3\xa9\xc3\xa9\xc3\xa9";
	arca_imap_msg *m = parse_str(raw);
	arca_buf o;
	(void)state;
	arca_buf_init(&o, 1024);
	assert_int_equal(arca_imap_msg_text(m, false, &o, 3), ARCA_OK);
	assert_string_equal(o.data, "\xc3\xa9"); /* cut at a character boundary */
	arca_buf_free(&o);
	arca_imap_msg_free(&m);
}

/* ------------------------------------------------------------------ limits */

/* n multiparts nested in each other, each with a long boundary. */
static char *nested_multiparts(size_t n, size_t blen, size_t *len)
{
	arca_buf b;
	char *bnd = xmalloc(blen + 1);
	arca_buf_init(&b, SIZE_MAX / 2);
	for (size_t i = 0; i < n; i++) {
		memset(bnd, 'a' + (char)(i % 26), blen);
		snprintf(bnd, blen + 1, "%zu", i);
		bnd[strlen(bnd)] = 'x';
		bnd[blen] = '\0';
		arca_buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\n\n--%s\n", bnd, bnd);
	}
	arca_buf_appendz(&b, "Content-Type: text/plain\n\ninnermost\n");
	for (size_t i = n; i-- > 0;) {
		memset(bnd, 'a' + (char)(i % 26), blen);
		snprintf(bnd, blen + 1, "%zu", i);
		bnd[strlen(bnd)] = 'x';
		bnd[blen] = '\0';
		arca_buf_printf(&b, "--%s--\n", bnd);
	}
	free(bnd);
	return arca_buf_steal(&b, len);
}

static void test_deep_nesting(void **state)
{
	size_t len;
	char *raw = nested_multiparts(1000, 60, &len);
	arca_imap_msg *m = parse(raw, len);
	arca_buf o, scratch;
	arca_imap_fetch_section sec;
	const uint8_t *d;
	size_t dl;
	arca_error err;
	(void)state;
	arca_buf_init(&o, 1u << 30);
	arca_buf_init(&scratch, 1u << 30);
	assert_true(arca_imap_msg_limited(m));
	assert_int_equal(arca_imap_msg_part_count(m), ARCA_MIME_MAX_DEPTH + 1);
	assert_int_equal(arca_imap_msg_bodystructure(m, true, &o), ARCA_OK);
	assert_int_equal(arca_imap_msg_envelope(m, &o), ARCA_OK);
	/* the deepest part is a text/plain leaf holding the rest */
	memset(&sec, 0, sizeof(sec));
	sec.nparts = ARCA_MIME_MAX_DEPTH;
	for (size_t i = 0; i < sec.nparts; i++)
		sec.parts[i] = 1;
	assert_int_equal(arca_imap_msg_section(m, &sec, &scratch, &d, &dl, &err), ARCA_OK);
	assert_true(dl > 0);
	assert_int_equal(arca_imap_msg_text(m, true, &o, 0), ARCA_OK);
	arca_buf_free(&o);
	arca_buf_free(&scratch);
	arca_imap_msg_free(&m);
	free(raw);
}

/* Many parts: the part limit holds and the rest is epilogue. */
static void test_many_parts(void **state)
{
	arca_buf b, o;
	arca_imap_msg *m;
	(void)state;
	arca_buf_init(&b, SIZE_MAX / 2);
	arca_buf_init(&o, 1u << 30);
	arca_buf_appendz(&b, "Content-Type: multipart/mixed; boundary=b\n\n");
	for (int i = 0; i < 3000; i++)
		arca_buf_printf(&b, "--b\n\npart %d\n", i);
	arca_buf_appendz(&b, "--b--\n");
	m = parse(b.data, b.len);
	assert_true(arca_imap_msg_limited(m));
	assert_int_equal(arca_imap_msg_part_count(m), ARCA_MIME_MAX_PARTS);
	assert_int_equal(arca_imap_msg_bodystructure(m, false, &o), ARCA_OK);
	arca_imap_msg_free(&m);
	/* nested message/rfc822 parts, each with its envelope */
	arca_buf_reset(&b);
	for (int i = 0; i < 100; i++)
		arca_buf_printf(&b, "Subject: level %d\nContent-Type: message/rfc822\n\n", i);
	arca_buf_appendz(&b, "Subject: inner\n\nhello\n");
	m = parse(b.data, b.len);
	assert_true(arca_imap_msg_limited(m));
	arca_buf_reset(&o);
	assert_int_equal(arca_imap_msg_bodystructure(m, true, &o), ARCA_OK);
	assert_non_null(strstr(o.data, "\"level 32\""));
	assert_null(strstr(o.data, "\"level 34\""));
	arca_imap_msg_free(&m);
	arca_buf_free(&b);
	arca_buf_free(&o);
}

/* A huge header, many fields, a line without end: parsing stays bounded and never fails. */
static void test_header_limits(void **state)
{
	arca_buf b, o;
	arca_imap_msg *m;
	(void)state;
	arca_buf_init(&b, SIZE_MAX / 2);
	arca_buf_init(&o, 1u << 30);
	for (unsigned i = 0; i < ARCA_MIME_MAX_HEADERS + 10; i++)
		arca_buf_printf(&b, "X-%u: v\n", i);
	arca_buf_appendz(&b, "Subject: late\n\nbody\n");
	m = parse(b.data, b.len);
	assert_true(arca_imap_msg_limited(m));
	assert_int_equal(arca_imap_msg_header(m, "Subject", &o), ARCA_ERR_NOTFOUND);
	arca_imap_msg_free(&m);
	arca_buf_reset(&b);
	for (size_t i = 0; i < ARCA_MIME_MAX_HEADER_BYTES + 100; i++)
		arca_buf_append(&b, "x", 1);
	m = parse(b.data, b.len);
	assert_true(arca_imap_msg_limited(m));
	assert_int_equal(arca_imap_msg_bodystructure(m, true, &o), ARCA_OK);
	assert_non_null(strstr(o.data, " 100 0 NIL"));
	arca_imap_msg_free(&m);
	arca_buf_free(&b);
	arca_buf_free(&o);
}

/* Every prefix of a multipart message parses, and the parts' ranges stay inside the data. */
static void test_every_prefix(void **state)
{
	size_t len;
	char *raw = slurp(IMAP_MSG_DATA "/nested-rfc822.eml", &len);
	arca_buf o, scratch;
	(void)state;
	assert_non_null(raw);
	arca_buf_init(&o, 1u << 30);
	arca_buf_init(&scratch, 1u << 30);
	for (size_t n = 0; n <= len; n++) {
		arca_imap_msg *m = parse(raw, n);
		arca_imap_fetch_section sec;
		arca_error err;
		arca_buf_reset(&o);
		assert_int_equal(arca_imap_msg_bodystructure(m, true, &o), ARCA_OK);
		assert_int_equal(arca_imap_msg_envelope(m, &o), ARCA_OK);
		for (uint32_t a = 1; a <= 3; a++) {
			for (uint32_t b2 = 0; b2 <= 3; b2++) {
				const uint8_t *d;
				size_t dl;
				memset(&sec, 0, sizeof(sec));
				sec.parts[0] = a;
				sec.parts[1] = b2;
				sec.nparts = b2 == 0 ? 1 : 2;
				for (int spec = 0; spec <= (int)ARCA_IMAP_SPEC_MIME; spec++) {
					arca_status st;
					sec.spec = (arca_imap_spec)spec;
					st = arca_imap_msg_section(m, &sec, &scratch, &d, &dl, &err);
					assert_true(st == ARCA_OK || st == ARCA_ERR_NOTFOUND);
					if (st == ARCA_OK && dl > 0 && d != (const uint8_t *)scratch.data)
						assert_true(d >= (const uint8_t *)raw &&
						            d + dl <= (const uint8_t *)raw + n);
				}
			}
		}
		arca_imap_msg_free(&m);
	}
	arca_buf_free(&o);
	arca_buf_free(&scratch);
	free(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
		cmocka_unit_test(test_write_strings),
		cmocka_unit_test(test_write_datetime),
		cmocka_unit_test(test_section_specs),
		cmocka_unit_test(test_no_copy),
		cmocka_unit_test(test_partial_edges),
		cmocka_unit_test(test_decoders),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_text_cap),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_header_limits),
		cmocka_unit_test(test_every_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
