/* libFuzzer harness for the IMAP message layer (src/imap/message.h). The input is a raw
 * message (at most 256 KB). Invariants: parsing never fails; ENVELOPE, BODY and BODYSTRUCTURE
 * are well-formed IMAP data (checked by a small grammar checker here); every section answer
 * lies in the message or the scratch buffer; a partial
 * answer is the matching slice of the whole one; BINARY.SIZE is the length of BINARY; the
 * search helpers never fail; no crash, leak or undefined behaviour (ASan/UBSan). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/message.h"

#define MAX_INPUT (256u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* IMAP response data: NIL, numbers, quoted strings (7-bit, no CR/LF, only \" and \\
 * escaped), literals {n}CRLF (no NUL) and lists whose items are separated by one SP, except
 * that body parts of a multipart follow each other directly: ")(" (RFC 3501 body-type-mpart).
 * Returns the offset after the value, or 0 if it is malformed. */
static size_t value_end(const char *s, size_t n, size_t i, unsigned depth)
{
	if (i >= n || depth > 200)
		return 0;
	if (s[i] == '(') {
		i++;
		if (i < n && s[i] == ')')
			return i + 1;
		for (;;) {
			i = value_end(s, n, i, depth + 1);
			if (i == 0 || i >= n)
				return 0;
			if (s[i] == ')')
				return i + 1;
			if (s[i] == ' ')
				i++;
			else if (!(s[i] == '(' && s[i - 1] == ')'))
				return 0;
		}
	}
	if (s[i] == '"') {
		for (i++; i < n && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
				return 0;
			if (c == '\\' && (i + 1 >= n || (s[i + 1] != '"' && s[i + 1] != '\\')))
				return 0;
			if (c == '\\')
				i++;
		}
		return i < n ? i + 1 : 0;
	}
	if (s[i] == '{') {
		size_t len = 0, j = i + 1;
		while (j < n && s[j] >= '0' && s[j] <= '9' && len < n)
			len = len * 10 + (size_t)(s[j++] - '0');
		if (j == i + 1 || j + 2 >= n || s[j] != '}' || s[j + 1] != '\r' || s[j + 2] != '\n')
			return 0;
		j += 3;
		if (len > n - j || memchr(s + j, 0, len) != NULL)
			return 0;
		return j + len;
	}
	if (n - i >= 3 && memcmp(s + i, "NIL", 3) == 0)
		return i + 3;
	if (s[i] >= '0' && s[i] <= '9') {
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		return i;
	}
	return 0;
}

static void check_well_formed(const arca_buf *item)
{
	if (item->len == 0 || item->data[0] != '(' || value_end(item->data, item->len, 0, 0) != item->len) {
		fprintf(stderr, "malformed: %.*s\n", (int)item->len, item->data);
		abort();
	}
}

static void check_range(const uint8_t *raw, size_t n, const arca_buf *scratch, const uint8_t *d, size_t len)
{
	const uint8_t *s = (const uint8_t *)scratch->data;
	if (len == 0)
		return;
	if (d >= raw && d + len <= raw + n)
		return;
	if (s != NULL && d >= s && d + len <= s + scratch->len)
		return;
	abort();
}

static void exercise_section(const arca_imap_msg *m, const uint8_t *raw, size_t n, arca_imap_fetch_section *sec,
                             arca_buf *scratch, arca_buf *copy)
{
	const uint8_t *d;
	size_t len, full_len;
	arca_error err;
	arca_status st;
	uint64_t bsize = 0;
	sec->partial = false;
	st = arca_imap_msg_fetch(m, sec, scratch, &d, &len, &err);
	if (st == ARCA_ERR_NOTFOUND || st == ARCA_IMAP_MSG_UNKNOWN_CTE)
		return;
	if (st != ARCA_OK)
		abort();
	if (sec->kind == ARCA_IMAP_FETCH_BINARY_SIZE)
		return;
	check_range(raw, n, scratch, d, len);
	arca_buf_reset(copy);
	if (arca_buf_append(copy, d, len) != ARCA_OK)
		abort();
	full_len = len;
	if (sec->kind == ARCA_IMAP_FETCH_BINARY) {
		sec->kind = ARCA_IMAP_FETCH_BINARY_SIZE;
		if (arca_imap_msg_binary_size(m, sec, &bsize, &err) != ARCA_OK || bsize != full_len)
			abort();
		sec->kind = ARCA_IMAP_FETCH_BINARY;
	}
	/* partial = slice of the whole */
	sec->partial = true;
	sec->offset = (uint32_t)(full_len / 3);
	sec->count = (uint32_t)(full_len / 2 + 1);
	if (arca_imap_msg_fetch(m, sec, scratch, &d, &len, &err) != ARCA_OK)
		abort();
	check_range(raw, n, scratch, d, len);
	if (len != (full_len - sec->offset < sec->count ? full_len - sec->offset : sec->count))
		abort();
	if (len > 0 && memcmp(d, copy->data + sec->offset, len) != 0)
		abort();
	sec->partial = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "From", "subject", "X-Nothing", "Received" };
	arca_imap_field_name fields[2] = { { "Subject", 7 }, { "content-type", 12 } };
	arca_imap_msg *m = NULL;
	arca_buf out, scratch, copy;
	arca_imap_fetch_section sec;
	arca_error err;
	int64_t t;
	int tz;
	if (size > MAX_INPUT)
		size = MAX_INPUT;
	if (arca_imap_msg_parse(data, size, &m, &err) != ARCA_OK || m == NULL)
		abort();
	if (arca_imap_msg_size(m) != size || arca_imap_msg_part_count(m) > ARCA_MIME_MAX_PARTS + 1)
		abort();
	arca_buf_init(&out, 256u * 1024u * 1024u);
	arca_buf_init(&scratch, 256u * 1024u * 1024u);
	arca_buf_init(&copy, 256u * 1024u * 1024u);

	if (arca_imap_msg_envelope(m, &out) != ARCA_OK)
		abort();
	check_well_formed(&out);
	for (int ext = 0; ext <= 1; ext++) {
		arca_buf_reset(&out);
		if (arca_imap_msg_bodystructure(m, ext != 0, &out) != ARCA_OK)
			abort();
		check_well_formed(&out);
	}

	/* sections: a few part paths (the input's last bytes choose some), every spec and kind */
	for (int path = 0; path < 8; path++) {
		memset(&sec, 0, sizeof(sec));
		switch (path) {
		case 0:
			break;
		case 1:
			sec.nparts = 1;
			sec.parts[0] = 1;
			break;
		case 2:
			sec.nparts = 1;
			sec.parts[0] = 2;
			break;
		case 3:
			sec.nparts = 2;
			sec.parts[0] = 1;
			sec.parts[1] = 1;
			break;
		case 4:
			sec.nparts = 2;
			sec.parts[0] = 2;
			sec.parts[1] = 1;
			break;
		case 5:
			sec.nparts = 3;
			sec.parts[0] = 2;
			sec.parts[1] = 1;
			sec.parts[2] = 2;
			break;
		default:
			sec.nparts = 1 + (size > 0 ? data[size - 1] % 4 : 0);
			for (size_t i = 0; i < sec.nparts; i++)
				sec.parts[i] = 1 + (size > i + 1 ? data[size - 2 - i] % 3 : 0);
			break;
		}
		for (int spec = 0; spec <= (int)ARCA_IMAP_SPEC_MIME; spec++) {
			sec.kind = ARCA_IMAP_FETCH_BODY;
			sec.spec = (arca_imap_spec)spec;
			if (spec == ARCA_IMAP_SPEC_HEADER_FIELDS || spec == ARCA_IMAP_SPEC_HEADER_FIELDS_NOT) {
				sec.fields = fields;
				sec.nfields = 2;
			}
			exercise_section(m, data, size, &sec, &scratch, &copy);
			sec.fields = NULL;
			sec.nfields = 0;
		}
		sec.spec = ARCA_IMAP_SPEC_ALL;
		sec.kind = ARCA_IMAP_FETCH_BINARY;
		exercise_section(m, data, size, &sec, &scratch, &copy);
		sec.kind = ARCA_IMAP_FETCH_BINARY_SIZE;
		exercise_section(m, data, size, &sec, &scratch, &copy);
	}

	/* search helpers */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		arca_status st;
		arca_buf_reset(&out);
		st = arca_imap_msg_header(m, names[i], &out);
		if (st != ARCA_OK && st != ARCA_ERR_NOTFOUND)
			abort();
		(void)arca_imap_match_substring(out.data, out.len, "a\xc3\xa9", 3);
	}
	for (int with_headers = 0; with_headers <= 1; with_headers++) {
		arca_buf_reset(&out);
		if (arca_imap_msg_text(m, with_headers != 0, &out, 64u * 1024u) != ARCA_OK || out.len > 64u * 1024u)
			abort();
		(void)arca_imap_match_substring(out.data, out.len, "The", 3);
	}
	(void)arca_imap_msg_date(m, &t, &tz);

	arca_buf_free(&out);
	arca_buf_free(&scratch);
	arca_buf_free(&copy);
	arca_imap_msg_free(&m);
	return 0;
}
