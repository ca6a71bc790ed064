/* IMAP command parser: RFC 3501 / RFC 9051 example commands fed whole, one byte at a time and
 * split at every point must give the same events and trees; malformed input gives a precise
 * error and the parser carries on with the next command; sequence sets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"
#include "lib/limits.h"

/* ------------------------------------------------------------------ driver */

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL)
		abort();
	return p;
}

/* Appends one event to the transcript; IDLE and AUTHENTICATE without an initial response are
 * followed by a raw line, as the server would ask for. */
static void record(arca_imap_parser *p, arca_imap_result r, arca_buf *t)
{
	switch (r) {
	case ARCA_IMAP_NEED_MORE:
		return;
	case ARCA_IMAP_COMMAND: {
		const char *cmd = arca_imap_parser_command(p);
		const arca_imap_node *args = arca_imap_parser_args(p);
		assert_non_null(arca_imap_parser_tag(p));
		assert_non_null(cmd);
		arca_buf_printf(t, "%s %s ", arca_imap_parser_tag(p), cmd);
		assert_int_equal(arca_imap_node_format(args, t), ARCA_OK);
		arca_buf_appendz(t, "\n");
		if (strcmp(cmd, "IDLE") == 0 || (strcmp(cmd, "AUTHENTICATE") == 0 && arca_imap_node_count(args) == 1))
			arca_imap_parser_expect_line(p);
		return;
	}
	case ARCA_IMAP_CONTINUE_LITERAL:
		arca_buf_printf(t, "+ %llu\n", (unsigned long long)arca_imap_parser_literal_size(p));
		return;
	case ARCA_IMAP_LINE: {
		size_t len;
		const char *l = arca_imap_parser_line(p, &len);
		arca_buf_appendz(t, "LINE ");
		arca_buf_append(t, l, len);
		arca_buf_appendz(t, "\n");
		return;
	}
	case ARCA_IMAP_ERROR: {
		const char *tag = arca_imap_parser_tag(p);
		const char *code = arca_imap_resp_code_name(arca_imap_parser_error_code(p));
		const arca_error *e = arca_imap_parser_error(p);
		assert_int_not_equal(e->status, ARCA_OK);
		assert_true(e->msg[0] != '\0');
		arca_buf_printf(t, "BAD %s %s%s%s%s\n", tag != NULL ? tag : "*", code ? "[" : "", code ? code : "",
		                code ? "] " : "", e->msg);
		return;
	}
	}
	fail_msg("unknown result %d", (int)r);
}

static void feed_chunk(arca_imap_parser *p, const char *data, size_t len, arca_buf *t)
{
	size_t off = 0;
	for (;;) {
		size_t used = 12345;
		arca_imap_result r = arca_imap_parser_feed(p, data + off, len - off, &used);
		assert_true(used <= len - off);
		off += used;
		record(p, r, t);
		if (r == ARCA_IMAP_NEED_MORE) {
			assert_int_equal(off, len);
			return;
		}
		if (off == len)
			return;
	}
}

/* Transcript of feeding in[0..len) cut at the given offsets (ascending). Caller frees. */
static char *run_cuts(const arca_imap_parser_opts *opts, const char *in, size_t len, const size_t *cuts,
                      size_t ncuts)
{
	arca_imap_parser *p = NULL;
	arca_buf t;
	size_t prev = 0;
	arca_buf_init(&t, 64u * 1024u * 1024u);
	assert_int_equal(arca_imap_parser_new(opts, &p, NULL), ARCA_OK);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		feed_chunk(p, in + prev, end - prev, &t);
		prev = end;
	}
	assert_false(arca_imap_parser_in_command(p));
	arca_imap_parser_free(&p);
	assert_null(p);
	arca_buf_appendz(&t, "");
	return arca_buf_steal(&t, NULL);
}

static char *run_whole(const arca_imap_parser_opts *opts, const char *in, size_t len)
{
	return run_cuts(opts, in, len, NULL, 0);
}

/* Checks the transcript is the same at every split: one byte at a time, and every 2-chunk cut. */
static void check_splits(const arca_imap_parser_opts *opts, const char *in, size_t len, const char *want)
{
	char *got;
	size_t *cuts = xmalloc((len + 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t k = 0; k < len; k++)
		cuts[k] = k + 1;
	got = run_cuts(opts, in, len, cuts, len > 0 ? len - 1 : 0);
	if (strcmp(got, want) != 0)
		fail_msg("byte-at-a-time differs for %.60s:\n got: %s\nwant: %s", in, got, want);
	free(got);
	for (size_t k = 0; k <= len; k++) {
		got = run_cuts(opts, in, len, &k, 1);
		if (strcmp(got, want) != 0)
			fail_msg("split at %zu differs for %.60s:\n got: %s\nwant: %s", k, in, got, want);
		free(got);
	}
	free(cuts);
}

static void check_case(const arca_imap_parser_opts *opts, const char *in, size_t len, const char *want)
{
	char *got = run_whole(opts, in, len);
	if (strcmp(got, want) != 0)
		fail_msg("for input %.80s\n got: %s\nwant: %s", in, got, want);
	free(got);
	check_splits(opts, in, len, want);
}

/* ------------------------------------------------------------------ RFC examples */

static const struct {
	const char *in;
	const char *want;
} rfc_cases[] = {
	/* RFC 3501 section 6 */
	{ "abcd CAPABILITY\r\n", "abcd CAPABILITY ()\n" },
	{ "a002 NOOP\r\n", "a002 NOOP ()\n" },
	{ "A023 LOGOUT\r\n", "A023 LOGOUT ()\n" },
	{ "a001 STARTTLS\r\n", "a001 STARTTLS ()\n" },
	{ "A001 AUTHENTICATE GSSAPI\r\nYDMGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQAgAAQEBAQ=\r\n",
	  "A001 AUTHENTICATE (GSSAPI)\n"
	  "LINE YDMGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQAgAAQEBAQ=\n" },
	{ "A001 AUTHENTICATE GSSAPI\r\n\r\n", "A001 AUTHENTICATE (GSSAPI)\nLINE \n" },
	{ "a001 LOGIN SMITH SESAME\r\n", "a001 LOGIN (SMITH SESAME)\n" },
	{ "A142 SELECT INBOX\r\n", "A142 SELECT (INBOX)\n" },
	{ "A932 EXAMINE blurdybloop\r\n", "A932 EXAMINE (blurdybloop)\n" },
	{ "A003 CREATE owatagusiam/\r\n", "A003 CREATE (owatagusiam/)\n" },
	{ "A683 RENAME blurdybloop sarasoop\r\n", "A683 RENAME (blurdybloop sarasoop)\n" },
	{ "A002 SUBSCRIBE #news.comp.mail.mime\r\n", "A002 SUBSCRIBE (#news.comp.mail.mime)\n" },
	{ "A101 LIST \"\" \"\"\r\n", "A101 LIST (\"\" \"\")\n" },
	{ "A103 LIST /usr/staff/jones \"\"\r\n", "A103 LIST (/usr/staff/jones \"\")\n" },
	{ "A202 LIST ~/Mail/ %\r\n", "A202 LIST (~/Mail/ %)\n" },
	{ "A002 LSUB \"#news.\" \"comp.mail.*\"\r\n", "A002 LSUB (\"#news.\" \"comp.mail.*\")\n" },
	{ "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n", "A042 STATUS (blurdybloop (UIDNEXT MESSAGES))\n" },
	{ "FXXZ CHECK\r\n", "FXXZ CHECK ()\n" },
	{ "A341 CLOSE\r\n", "A341 CLOSE ()\n" },
	{ "A202 EXPUNGE\r\n", "A202 EXPUNGE ()\n" },
	{ "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	  "A282 SEARCH (FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\")\n" },
	{ "A283 SEARCH TEXT \"string not in mailbox\"\r\n", "A283 SEARCH (TEXT \"string not in mailbox\")\n" },
	{ "A284 SEARCH CHARSET UTF-8 TEXT {6}\r\n\xd0\xa2\xd0\xb5\xd1\x81\r\n",
	  "+ 6\nA284 SEARCH (CHARSET UTF-8 TEXT {6}\"\\xd0\\xa2\\xd0\\xb5\\xd1\\x81\")\n" },
	{ "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
	  "A654 FETCH (2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)]))\n" },
	{ "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n", "A003 STORE (2:4 +FLAGS (\\Deleted))\n" },
	{ "A003 COPY 2:4 MEETING\r\n", "A003 COPY (2:4 MEETING)\n" },
	{ "A999 UID FETCH 4827313:4828442 FLAGS\r\n", "A999 UID (FETCH 4827313:4828442 FLAGS)\n" },
	{ "a003 fetch 12 full\r\n", "a003 FETCH (12 full)\n" },
	{ "a004 fetch 12 body[header]\r\n", "a004 FETCH (12 BODY[HEADER])\n" },
	{ "a005 store 12 +flags \\deleted\r\n", "a005 STORE (12 +flags \\deleted)\n" },
	/* RFC 9051 section 6 */
	{ "t2 ENABLE CONDSTORE X-GOOD-IDEA\r\n", "t2 ENABLE (CONDSTORE X-GOOD-IDEA)\n" },
	{ "a ENABLE IMAP4rev2 UTF8=ACCEPT\r\n", "a ENABLE (IMAP4rev2 UTF8=ACCEPT)\n" },
	{ "A01 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n", "A01 AUTHENTICATE (PLAIN dGVzdAB0ZXN0AHRlc3Q=)\n" },
	{ "A01 AUTHENTICATE PLAIN =\r\n", "A01 AUTHENTICATE (PLAIN =)\n" },
	{ "A01 AUTHENTICATE PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\n",
	  "A01 AUTHENTICATE (PLAIN)\nLINE dGVzdAB0ZXN0AHRlc3Q=\n" },
	{ "A001 NAMESPACE\r\n", "A001 NAMESPACE ()\n" },
	{ "A682 LIST \"\" *\r\n", "A682 LIST (\"\" *)\n" },
	{ "A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n", "A02 LIST ((SUBSCRIBED) \"\" \"*\")\n" },
	{ "A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n", "A03 LIST (() \"\" \"%\" RETURN (CHILDREN))\n" },
	{ "A05 LIST (REMOTE SUBSCRIBED) \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN))\r\n",
	  "A05 LIST ((REMOTE SUBSCRIBED) \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN)))\n" },
	{ "A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	  "A282 SEARCH (RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\")\n" },
	{ "A285 SEARCH CHARSET UTF-8 TEXT {12}\r\n\xd0\x9c\xd0\xb0\xd0\xba\xd1\x81\xd0\xb8\xd0\xbc\r\n",
	  "+ 12\nA285 SEARCH (CHARSET UTF-8 TEXT {12}"
	  "\"\\xd0\\x9c\\xd0\\xb0\\xd0\\xba\\xd1\\x81\\xd0\\xb8\\xd0\\xbc\")\n" },
	{ "A286 SEARCH CHARSET UTF-8 TEXT {12+}\r\n\xd0\x9c\xd0\xb0\xd0\xba\xd1\x81\xd0\xb8\xd0\xbc\r\n",
	  "A286 SEARCH (CHARSET UTF-8 TEXT {12}\"\\xd0\\x9c\\xd0\\xb0\\xd0\\xba\\xd1\\x81\\xd0\\xb8\\xd0\\xbc\")\n" },
	{ "A004 STORE 1 -FLAGS.SILENT (\\Seen $Forwarded)\r\n",
	  "A004 STORE (1 -FLAGS.SILENT (\\Seen $Forwarded))\n" },
	{ "a MOVE 2:4 MEETING\r\n", "a MOVE (2:4 MEETING)\n" },
	{ "A300 UID SEARCH 1:100 UID 443:557\r\n", "A300 UID (SEARCH 1:100 UID 443:557)\n" },
	{ "A202 UID EXPUNGE 3000:3002\r\n", "A202 UID (EXPUNGE 3000:3002)\n" },
	{ "A102 UID SEARCH RETURN (SAVE) FLAGGED\r\nA103 UID FETCH $ (UID FLAGS)\r\n",
	  "A102 UID (SEARCH RETURN (SAVE) FLAGGED)\nA103 UID (FETCH $ (UID FLAGS))\n" },
	{ "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" \"Pink Floyd Music Limited\")\r\n",
	  "a023 ID ((\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" \"Pink Floyd Music Limited\"))\n" },
	{ "a ID NIL\r\n", "a ID (NIL)\n" },
	{ "a001 IDLE\r\nDONE\r\na002 NOOP\r\n", "a001 IDLE ()\nLINE DONE\na002 NOOP ()\n" },
	{ "a UNSELECT\r\n", "a UNSELECT ()\n" },
	/* complex FETCH attributes and section specs */
	{ "a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<0.100> BINARY[1.2]<5.10>"
	  " BINARY.SIZE[2] BINARY.PEEK[1.2] RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n",
	  "a FETCH (1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<0.100> BINARY[1.2]<5.10>"
	  " BINARY.SIZE[2] BINARY.PEEK[1.2] RFC822.SIZE ENVELOPE BODYSTRUCTURE))\n" },
	{ "a FETCH 1 (body[] Body.Peek[1.2.3.MIME] BODY[4.TEXT]<0.2048> BODY[1.HEADER.FIELDS.NOT (Received)])\r\n",
	  "a FETCH (1 (BODY[] BODY.PEEK[1.2.3.MIME] BODY[4.TEXT]<0.2048> BODY[1.HEADER.FIELDS.NOT (Received)]))\n" },
	{ "a FETCH 1 BODY[HEADER.FIELDS ({4}\r\nFrom To)]<10.20>\r\n",
	  "+ 4\na FETCH (1 BODY[HEADER.FIELDS ({4}\"From\" To)]<10.20>)\n" },
	{ "a FETCH 1 (BODY BODY[] BODY.PEEK[])\r\n", "a FETCH (1 (BODY BODY[] BODY.PEEK[]))\n" },
	/* nested SEARCH keys and literals */
	{ "A SEARCH OR (FROM a TO b) (NOT (SUBJECT \"x \\\"y\\\" \\\\z\" OR LARGER 100 SMALLER 5)) {3}\r\nabc"
	  " UID 1,3:5,7:*\r\n",
	  "+ 3\nA SEARCH (OR (FROM a TO b) (NOT (SUBJECT \"x \\\"y\\\" \\\\z\" OR LARGER 100 SMALLER 5)) {3}\"abc\" UID"
	  " 1,3:5,7:*)\n" },
	{ "b SEARCH SUBJECT {0}\r\n BODY {2+}\r\nhi\r\n", "+ 0\nb SEARCH (SUBJECT {0}\"\" BODY {2}\"hi\")\n" },
	/* APPEND with binary literal (NUL allowed), LITERAL- sized */
	{ "a APPEND INBOX (\\Seen) ~{5+}\r\nab\x01" "cd\r\n", "a APPEND (INBOX (\\Seen) ~{5}\"ab\\x01cd\")\n" },
	/* atoms with brackets, resp-specials in tags, bare LF, lenient spaces */
	{ "a]1 SELECT [Gmail]/Drafts\r\n", "a]1 SELECT ([Gmail]/Drafts)\n" },
	{ "x LOGIN  ( a  b )  c \r\n", "x LOGIN ((a b) c)\n" },
	{ "x NOOP\ny NOOP\n", "x NOOP ()\ny NOOP ()\n" },
	{ "c LOGIN \"\" \"p@ss w\xc3\xb6rd\"\r\n", "c LOGIN (\"\" \"p@ss w\\xc3\\xb6rd\")\n" },
};

static void test_rfc_examples(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc_cases) / sizeof(rfc_cases[0]); i++)
		check_case(NULL, rfc_cases[i].in, strlen(rfc_cases[i].in), rfc_cases[i].want);
}

/* The APPEND example of RFC 3501 6.3.11 with its 310-byte message. */
static void test_append_rfc(void **state)
{
	static const char msg[] =
	    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
	    "From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
	    "Subject: afternoon meeting\r\n"
	    "To: mooch@owatagu.siam.edu\r\n"
	    "Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
	    "\r\n"
	    "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
	char in[1024];
	arca_imap_parser *p = NULL;
	size_t used, len;
	(void)state;
	assert_int_equal(strlen(msg), 310);
	len = (size_t)snprintf(in, sizeof(in), "A003 APPEND saved-messages (\\Seen) {310}\r\n%s\r\n", msg);
	char *want = run_whole(NULL, in, len);
	assert_true(strncmp(want, "+ 310\nA003 APPEND (saved-messages (\\Seen) {310}\"Date: Mon", 56) == 0);
	check_splits(NULL, in, len, want);
	free(want);

	/* accessors */
	assert_int_equal(arca_imap_parser_new(NULL, &p, NULL), ARCA_OK);
	assert_int_equal(arca_imap_parser_feed(p, in, len, &used), ARCA_IMAP_CONTINUE_LITERAL);
	assert_int_equal(arca_imap_parser_literal_size(p), 310);
	assert_true(arca_imap_parser_in_command(p));
	size_t off = used;
	assert_int_equal(arca_imap_parser_feed(p, in + off, len - off, &used), ARCA_IMAP_COMMAND);
	assert_int_equal(off + used, len);
	assert_false(arca_imap_parser_in_command(p));
	assert_string_equal(arca_imap_parser_tag(p), "A003");
	assert_string_equal(arca_imap_parser_command(p), "APPEND");
	const arca_imap_node *args = arca_imap_parser_args(p);
	assert_int_equal(arca_imap_node_kind(args), ARCA_IMAP_NODE_LIST);
	assert_int_equal(arca_imap_node_count(args), 3);
	const arca_imap_node *lit = arca_imap_node_child(args, 2);
	size_t l;
	assert_int_equal(arca_imap_node_kind(lit), ARCA_IMAP_NODE_STRING);
	assert_int_equal(arca_imap_node_string_kind(lit), ARCA_IMAP_STRING_LITERAL);
	assert_string_equal(arca_imap_node_text(lit, &l), msg);
	assert_int_equal(l, 310);
	assert_null(arca_imap_node_child(args, 3));
	const arca_imap_node *flags = arca_imap_node_child(args, 1);
	assert_int_equal(arca_imap_node_count(flags), 1);
	assert_string_equal(arca_imap_node_text(arca_imap_node_child(flags, 0), NULL), "\\Seen");
	arca_imap_parser_free(&p);
	arca_imap_parser_free(&p); /* NULL is fine */
}

static void test_node_types(void **state)
{
	arca_imap_parser *p = NULL;
	size_t used, l;
	const char in[] = "t1 FETCH 18446744073709551615 (nil NiL 007 9223372036854775807 9223372036854775808 "
	                  "BODY.PEEK[1.2.HEADER.FIELDS.NOT (X-A \"X-B\")]<0.4294967295> BINARY.SIZE[3] "
	                  "\"q\") ~{3}\r\na\0b\r\n";
	(void)state;
	assert_int_equal(arca_imap_parser_new(NULL, &p, NULL), ARCA_OK);
	assert_int_equal(arca_imap_parser_feed(p, in, sizeof(in) - 1, &used), ARCA_IMAP_CONTINUE_LITERAL);
	size_t off = used;
	assert_int_equal(arca_imap_parser_feed(p, in + off, sizeof(in) - 1 - off, &used), ARCA_IMAP_COMMAND);
	const arca_imap_node *a = arca_imap_parser_args(p);
	assert_int_equal(arca_imap_node_count(a), 3);
	/* does not fit number64: an atom */
	assert_int_equal(arca_imap_node_kind(arca_imap_node_child(a, 0)), ARCA_IMAP_NODE_ATOM);
	const arca_imap_node *lst = arca_imap_node_child(a, 1);
	assert_int_equal(arca_imap_node_count(lst), 8);
	assert_int_equal(arca_imap_node_kind(arca_imap_node_child(lst, 0)), ARCA_IMAP_NODE_NIL);
	assert_string_equal(arca_imap_node_text(arca_imap_node_child(lst, 1), NULL), "NiL");
	assert_int_equal(arca_imap_node_kind(arca_imap_node_child(lst, 2)), ARCA_IMAP_NODE_NUMBER);
	assert_int_equal(arca_imap_node_number(arca_imap_node_child(lst, 2)), 7);
	assert_string_equal(arca_imap_node_text(arca_imap_node_child(lst, 2), NULL), "007");
	assert_int_equal(arca_imap_node_number(arca_imap_node_child(lst, 3)), INT64_MAX);
	assert_int_equal(arca_imap_node_kind(arca_imap_node_child(lst, 4)), ARCA_IMAP_NODE_ATOM);
	assert_int_equal(arca_imap_node_number(arca_imap_node_child(lst, 4)), 0);
	const arca_imap_node *s = arca_imap_node_child(lst, 5);
	uint32_t o, c;
	assert_int_equal(arca_imap_node_kind(s), ARCA_IMAP_NODE_SECTION);
	assert_null(arca_imap_node_text(s, &l));
	assert_string_equal(arca_imap_section_name(s), "BODY.PEEK");
	assert_int_equal(arca_imap_section_nparts(s), 2);
	assert_int_equal(arca_imap_section_part(s, 0), 1);
	assert_int_equal(arca_imap_section_part(s, 1), 2);
	assert_int_equal(arca_imap_section_part(s, 2), 0);
	assert_string_equal(arca_imap_section_text(s), "HEADER.FIELDS.NOT");
	const arca_imap_node *f = arca_imap_section_fields(s);
	assert_int_equal(arca_imap_node_count(f), 2);
	assert_string_equal(arca_imap_node_text(arca_imap_node_child(f, 1), NULL), "X-B");
	assert_true(arca_imap_section_partial(s, &o, &c));
	assert_int_equal(o, 0);
	assert_int_equal(c, UINT32_MAX);
	s = arca_imap_node_child(lst, 6);
	assert_string_equal(arca_imap_section_name(s), "BINARY.SIZE");
	assert_string_equal(arca_imap_section_text(s), "");
	assert_null(arca_imap_section_fields(s));
	assert_false(arca_imap_section_partial(s, NULL, NULL));
	assert_int_equal(arca_imap_node_string_kind(arca_imap_node_child(lst, 7)), ARCA_IMAP_STRING_QUOTED);
	const arca_imap_node *b = arca_imap_node_child(a, 2);
	assert_int_equal(arca_imap_node_string_kind(b), ARCA_IMAP_STRING_BINARY);
	assert_memory_equal(arca_imap_node_text(b, &l), "a\0b", 3);
	assert_int_equal(l, 3);
	arca_imap_parser_free(&p);
}

/* ------------------------------------------------------------------ errors */

#define NEXT "z9 NOOP\r\n"
#define OK_NEXT "z9 NOOP ()\n"

static const struct {
	const char *in;
	const char *want;
} err_cases[] = {
	{ "\r\n" NEXT, "BAD * empty command line\n" OK_NEXT },
	{ "\n" NEXT, "BAD * empty command line\n" OK_NEXT },
	{ " NOOP\r\n" NEXT, "BAD * missing tag\n" OK_NEXT },
	{ "* NOOP\r\n" NEXT, "BAD * invalid tag (starts with '*')\n" OK_NEXT },
	{ "+ NOOP\r\n" NEXT, "BAD * invalid tag (starts with '+')\n" OK_NEXT },
	{ "a+b NOOP\r\n" NEXT, "BAD * invalid character in tag: '+'\n" OK_NEXT },
	{ "a1\r\n" NEXT, "BAD a1 missing command name\n" OK_NEXT },
	{ "a1 \r\n" NEXT, "BAD a1 missing command name\n" OK_NEXT },
	{ "a1 FE(TCH\r\n" NEXT, "BAD a1 invalid command name\n" OK_NEXT },
	{ "a1 LOGIN \"foo\r\n" NEXT, "BAD a1 unterminated quoted string\n" OK_NEXT },
	{ "a1 LOGIN \"foo\\\r\n" NEXT, "BAD a1 unterminated quoted string\n" OK_NEXT },
	{ "a1 LOGIN \"f\\oo\" x\r\n" NEXT,
	  "BAD a1 invalid escape in quoted string (only \\\" and \\\\)\n" OK_NEXT },
	{ "a1 LOGIN \"f\0o\" x\r\n" NEXT, "BAD a1 NUL in quoted string\n" OK_NEXT },
	{ "a1 LOGIN \"f\ro\" x\r\n" NEXT, "BAD a1 CR in quoted string\n" OK_NEXT },
	{ "a1 LOGIN x\ry\r\n" NEXT, "BAD a1 expected space before byte 0x0d\n" OK_NEXT },
	{ "a1 LOGIN {abc}\r\n" NEXT, "BAD a1 invalid literal header (expected {number})\n" OK_NEXT },
	{ "a1 LOGIN {12\r\n" NEXT, "BAD a1 invalid literal header (expected {number})\n" OK_NEXT },
	{ "a1 LOGIN {}\r\n" NEXT, "BAD a1 invalid literal header (expected {number})\n" OK_NEXT },
	{ "a1 LOGIN {3} x\r\n" NEXT, "BAD a1 literal header must end the line\n" OK_NEXT },
	{ "a1 LOGIN {3}\r\na\0b x\r\n" NEXT,
	  "+ 3\nBAD a1 NUL in literal (only allowed in a binary literal ~{n})\n" OK_NEXT },
	{ "a1 LOGIN {3+}\r\na\0b {4+}\r\nabcd\r\n" NEXT,
	  "BAD a1 NUL in literal (only allowed in a binary literal ~{n})\n" OK_NEXT },
	/* a sync literal that is too big is never sent by the client */
	{ "a1 LOGIN {1048577}\r\n" NEXT, "BAD a1 [TOOBIG] literal too big (at most 1048576 bytes)\n" OK_NEXT },
	{ "a1 LOGIN {99999999999999999999999}\r\n" NEXT,
	  "BAD a1 [TOOBIG] literal too big (at most 1048576 bytes)\n" OK_NEXT },
	/* a bad line that announced a non-sync literal: the literal (with CRLF inside) is skipped */
	{ "a1 LOGIN \"x {5+}\r\nb\r\nc\r\n" NEXT, "BAD a1 unterminated quoted string\n" OK_NEXT },
	{ "a1 LOGIN ) {5+}\r\nb\r\nc {2+}\r\nd\n)\r\n" NEXT, "BAD a1 unexpected ')'\n" OK_NEXT },
	{ "a1 LOGIN (x\r\n" NEXT, "BAD a1 unclosed parenthesis\n" OK_NEXT },
	{ "a1 LOGIN x)\r\n" NEXT, "BAD a1 unexpected ')'\n" OK_NEXT },
	{ "a1 LOGIN x\"y\"\r\n" NEXT, "BAD a1 expected space before '\"'\n" OK_NEXT },
	{ "a1 LOGIN (a)(b)\r\n" NEXT, "BAD a1 expected space before '('\n" OK_NEXT },
	{ "a1 LOGIN \\\r\n" NEXT, "BAD a1 unexpected end of line after '\\'\n" OK_NEXT },
	{ "a1 LOGIN \\ x\r\n" NEXT, "BAD a1 unexpected space\n" OK_NEXT },
	{ "a1 LOGIN a\\b\r\n" NEXT, "BAD a1 expected space before '\\'\n" OK_NEXT },
	{ "a1 LOGIN \x80\r\n" NEXT, "BAD a1 unexpected byte 0x80\n" OK_NEXT },
	{ "a1 LOGIN \x01\r\n" NEXT, "BAD a1 unexpected byte 0x01\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[1.]\r\n" NEXT, "BAD a1 invalid section in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[0]\r\n" NEXT, "BAD a1 invalid part number in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[MIME]\r\n" NEXT, "BAD a1 invalid section in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[FOO]\r\n" NEXT, "BAD a1 invalid section in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[TEXT\r\n" NEXT, "BAD a1 invalid section in BODY[]: missing ']'\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[HEADER.FIELDS]\r\n" NEXT,
	  "BAD a1 BODY[HEADER.FIELDS] needs a list of header names\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[HEADER.FIELDS ()]\r\n" NEXT, "BAD a1 empty header list in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[HEADER.FIELDS (a (b))]\r\n" NEXT, "BAD a1 unexpected '(' in header list\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[HEADER.FIELDS (a)\r\n" NEXT,
	  "BAD a1 invalid section in BODY[]: missing ']'\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[HEADER.FIELDS (a\r\n" NEXT, "BAD a1 unterminated section header list\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[]<0.0>\r\n" NEXT, "BAD a1 invalid partial range in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[]<5>\r\n" NEXT, "BAD a1 invalid partial range in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[]<0.4294967296>\r\n" NEXT, "BAD a1 invalid partial range in BODY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BINARY[1.TEXT]\r\n" NEXT, "BAD a1 invalid part number in BINARY[]\n" OK_NEXT },
	{ "a1 FETCH 1 BINARY[TEXT]\r\n" NEXT,
	  "BAD a1 invalid section in BINARY[] (only part numbers)\n" OK_NEXT },
	{ "a1 FETCH 1 BINARY.SIZE[1]<0.1>\r\n" NEXT, "BAD a1 BINARY.SIZE takes no partial range\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[1]x\r\n" NEXT, "BAD a1 expected space before 'x'\n" OK_NEXT },
	{ "a1 FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33]"
	  "\r\n" NEXT,
	  "BAD a1 [TOOBIG] too many part numbers in BODY[] (at most 32)\n" OK_NEXT },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const char *in = err_cases[i].in;
		/* the inputs may contain NUL: their length is up to the final NEXT */
		size_t len = 0;
		while (memcmp(in + len, NEXT, sizeof(NEXT)) != 0)
			len++;
		len += sizeof(NEXT) - 1;
		check_case(NULL, in, len, err_cases[i].want);
	}
}

static void test_literal_plus(void **state)
{
	arca_imap_parser_opts plus = { .literal_plus = true, .max_literal = 0 };
	arca_imap_parser_opts small = { .literal_plus = true, .max_literal = 10 };
	char *in = xmalloc(20000), *got;
	size_t n;
	(void)state;
	assert_non_null(in);
	/* LITERAL-: {4096+} is fine, {4097+} is TOOBIG and its bytes are skipped */
	n = (size_t)sprintf(in, "a1 APPEND x {4096+}\r\n");
	memset(in + n, 'x', 4096);
	n += 4096;
	n += (size_t)sprintf(in + n, "\r\n");
	got = run_whole(NULL, in, n);
	assert_int_equal(strncmp(got, "a1 APPEND (x {4096}\"xxx", 23), 0);
	free(got);
	n = (size_t)sprintf(in, "a1 APPEND x {4097+}\r\n");
	for (size_t k = 0; k < 4097; k++)
		in[n + k] = k % 10 == 9 ? '\n' : 'y';
	n += 4097;
	n += (size_t)sprintf(in + n, " (\\Seen)\r\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_string_equal(got, "BAD a1 [TOOBIG] non-synchronizing literal too big (at most 4096 bytes, LITERAL-)\n"
	                         OK_NEXT);
	free(got);
	/* the same with LITERAL+ is accepted */
	got = run_whole(&plus, in, n);
	assert_int_equal(strncmp(got, "a1 APPEND (x {4097}\"yyyyyyyyy\\x0ay", 34), 0);
	assert_non_null(strstr(got, "\" (\\Seen))\n" OK_NEXT));
	free(got);
	/* a configured smaller maximum */
	check_case(&small, "a X {10+}\r\n0123456789\r\nb X {11+}\r\n0123456789A\r\nc X {11}\r\n" NEXT,
	           strlen("a X {10+}\r\n0123456789\r\nb X {11+}\r\n0123456789A\r\nc X {11}\r\n" NEXT),
	           "a X ({10}\"0123456789\")\n"
	           "BAD b [TOOBIG] literal too big (at most 10 bytes)\n"
	           "BAD c [TOOBIG] literal too big (at most 10 bytes)\n" OK_NEXT);
	free(in);
}

static void test_line_limits(void **state)
{
	size_t cap = ARCA_IMAP_MAX_LINE + 1000;
	char *in = xmalloc(cap), *got;
	size_t n, cuts[3];
	(void)state;
	assert_non_null(in);
	/* exactly at the limit: fine */
	n = (size_t)sprintf(in, "a1 SEARCH ");
	memset(in + n, 'x', ARCA_IMAP_MAX_LINE - n);
	n = ARCA_IMAP_MAX_LINE;
	n += (size_t)sprintf(in + n, "\r\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_int_equal(strncmp(got, "a1 SEARCH (xxx", 14), 0);
	assert_non_null(strstr(got, "xx)\n" OK_NEXT));
	free(got);
	/* one byte more (and no CR, with a bare LF): too long, tagged BAD after the line */
	n = (size_t)sprintf(in, "a1 SEARCH ");
	memset(in + n, 'x', ARCA_IMAP_MAX_LINE + 1 - n);
	n = ARCA_IMAP_MAX_LINE + 1;
	n += (size_t)sprintf(in + n, "\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_string_equal(got, "BAD a1 [TOOBIG] line too long (at most 65536 bytes)\n" OK_NEXT);
	free(got);
	/* far too long, ending in a non-sync literal whose bytes are skipped, fed in pieces */
	n = (size_t)sprintf(in, "a2 SEARCH ");
	memset(in + n, 'x', ARCA_IMAP_MAX_LINE + 100 - n);
	n = ARCA_IMAP_MAX_LINE + 100;
	n += (size_t)sprintf(in + n, " {4+}\r\n\r\n\r\n x\r\n" NEXT);
	const char *want = "BAD a2 [TOOBIG] line too long (at most 65536 bytes)\n" OK_NEXT;
	got = run_whole(NULL, in, n);
	assert_string_equal(got, want);
	free(got);
	cuts[0] = 5;
	cuts[1] = ARCA_IMAP_MAX_LINE;
	cuts[2] = ARCA_IMAP_MAX_LINE + 102;
	got = run_cuts(NULL, in, n, cuts, 3);
	assert_string_equal(got, want);
	free(got);
	for (size_t k = ARCA_IMAP_MAX_LINE + 95; k < n; k++) {
		got = run_cuts(NULL, in, n, &k, 1);
		assert_string_equal(got, want);
		free(got);
	}
	/* overlong first line without a readable tag */
	memset(in, 'x', ARCA_IMAP_MAX_LINE + 10);
	n = ARCA_IMAP_MAX_LINE + 10;
	n += (size_t)sprintf(in + n, "\r\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_string_equal(got, "BAD * [TOOBIG] line too long (at most 65536 bytes)\n" OK_NEXT);
	free(got);
	free(in);
}

static void test_nesting_and_args(void **state)
{
	char *in = xmalloc(64 * 1024), *got;
	size_t n;
	(void)state;
	assert_non_null(in);
	n = (size_t)sprintf(in, "a1 SEARCH ");
	for (unsigned k = 0; k < ARCA_IMAP_MAX_DEPTH; k++)
		in[n++] = '(';
	in[n++] = 'x';
	for (unsigned k = 0; k < ARCA_IMAP_MAX_DEPTH; k++)
		in[n++] = ')';
	n += (size_t)sprintf(in + n, "\r\n");
	got = run_whole(NULL, in, n);
	assert_int_equal(strncmp(got, "a1 SEARCH (((((", 15), 0);
	free(got);
	n = (size_t)sprintf(in, "a1 SEARCH ");
	for (unsigned k = 0; k <= ARCA_IMAP_MAX_DEPTH; k++)
		in[n++] = '(';
	n += (size_t)sprintf(in + n, "x\r\n" NEXT);
	check_case(NULL, in, n, "BAD a1 [TOOBIG] lists nested too deeply (at most 32)\n" OK_NEXT);
	/* section header lists count as nesting too */
	n = (size_t)sprintf(in, "a1 FETCH 1 ");
	for (unsigned k = 0; k < ARCA_IMAP_MAX_DEPTH; k++)
		in[n++] = '(';
	n += (size_t)sprintf(in + n, "BODY[HEADER.FIELDS (a)]\r\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_string_equal(got, "BAD a1 [TOOBIG] lists nested too deeply (at most 32)\n" OK_NEXT);
	free(got);
	/* argument count: ARCA_IMAP_MAX_ARGS nodes fit, one more does not */
	n = (size_t)sprintf(in, "a1 SEARCH");
	for (unsigned k = 0; k < ARCA_IMAP_MAX_ARGS; k++)
		n += (size_t)sprintf(in + n, " 1");
	n += (size_t)sprintf(in + n, "\r\n");
	got = run_whole(NULL, in, n);
	assert_int_equal(strncmp(got, "a1 SEARCH (1 1 1", 16), 0);
	free(got);
	n -= 2;
	n += (size_t)sprintf(in + n, " 1\r\n" NEXT);
	got = run_whole(NULL, in, n);
	assert_string_equal(got, "BAD a1 [TOOBIG] too many arguments (at most 4096)\n" OK_NEXT);
	free(got);
	free(in);
}

static void test_expect_line(void **state)
{
	arca_imap_parser *p = NULL;
	size_t used, len;
	const char *l;
	(void)state;
	assert_int_equal(arca_imap_parser_new(NULL, &p, NULL), ARCA_OK);
	assert_false(arca_imap_parser_in_command(p));
	assert_int_equal(arca_imap_parser_feed(p, "a IDLE\r\nDO", 10, &used), ARCA_IMAP_COMMAND);
	assert_int_equal(used, 8);
	arca_imap_parser_expect_line(p);
	assert_int_equal(arca_imap_parser_feed(p, "DO", 2, &used), ARCA_IMAP_NEED_MORE);
	assert_int_equal(used, 2);
	assert_true(arca_imap_parser_in_command(p));
	assert_int_equal(arca_imap_parser_feed(p, "NE\r\n* x\r\n", 9, &used), ARCA_IMAP_LINE);
	assert_int_equal(used, 4);
	l = arca_imap_parser_line(p, &len);
	assert_int_equal(len, 4);
	assert_string_equal(l, "DONE");
	/* back to commands */
	assert_int_equal(arca_imap_parser_feed(p, "* x\r\n", 5, &used), ARCA_IMAP_ERROR);
	assert_null(arca_imap_parser_tag(p));
	assert_int_equal(arca_imap_parser_error(p)->status, ARCA_ERR_SYNTAX);
	assert_int_equal(arca_imap_parser_error_code(p), ARCA_IMAP_CODE_NONE);
	assert_int_equal(arca_imap_parser_feed(p, "", 0, &used), ARCA_IMAP_NEED_MORE);
	assert_int_equal(used, 0);
	arca_imap_parser_free(&p);
}

/* ------------------------------------------------------------------ sequence sets */

static void test_seqset(void **state)
{
	static const struct {
		const char *in;
		const char *want; /* ranges as lo-hi, '*' for STAR */
	} ok[] = {
		{ "1", "1-1" },
		{ "1:*", "1-*" },
		{ "*", "*-*" },
		{ "*:*", "*-*" },
		{ "*:4", "4-*" },
		{ "5:2", "2-5" },
		{ "1,3:5,7:*", "1-1 3-5 7-*" },
		{ "4294967295", "4294967295-4294967295" },
		{ "2,4:7,9,12:*", "2-2 4-7 9-9 12-*" },
	};
	static const struct {
		const char *in;
		const char *msg;
	} bad[] = {
		{ "", "invalid sequence set: empty" },
		{ "0", "invalid sequence set: 0 is not a valid number" },
		{ "1:0", "invalid sequence set: 0 is not a valid number" },
		{ "01", "invalid sequence set: 0 is not a valid number" },
		{ "1:", "invalid sequence set at offset 2" },
		{ ":5", "invalid sequence set at offset 0" },
		{ "1,", "invalid sequence set at offset 2" },
		{ "1,,2", "invalid sequence set at offset 2" },
		{ "1:2:3", "invalid sequence set at offset 3" },
		{ "4294967296", "invalid sequence set: number too large" },
		{ "1:99999999999999999999999", "invalid sequence set: number too large" },
		{ "1,$", "invalid sequence set: '$' must stand alone" },
		{ "$$", "invalid sequence set: '$' must stand alone" },
		{ "1 2", "invalid sequence set at offset 1" },
		{ "-1", "invalid sequence set at offset 0" },
		{ "**", "invalid sequence set at offset 1" },
	};
	arca_imap_seqset *s = NULL;
	arca_error err;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char buf[256];
		size_t o = 0;
		assert_int_equal(arca_imap_seqset_parse(ok[i].in, strlen(ok[i].in), &s, &err), ARCA_OK);
		assert_false(arca_imap_seqset_is_searchres(s));
		for (size_t k = 0; k < arca_imap_seqset_count(s); k++) {
			arca_imap_seqrange r = arca_imap_seqset_range(s, k);
			char lo[16], hi[16];
			snprintf(lo, sizeof(lo), "%u", r.lo);
			snprintf(hi, sizeof(hi), "%u", r.hi);
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s-%s", k ? " " : "",
			                      r.lo == ARCA_IMAP_SEQ_STAR ? "*" : lo,
			                      r.hi == ARCA_IMAP_SEQ_STAR ? "*" : hi);
		}
		buf[o] = '\0';
		assert_string_equal(buf, ok[i].want);
		arca_imap_seqset_free(&s);
		assert_null(s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = (arca_imap_seqset *)&err; /* must be reset to NULL */
		assert_int_equal(arca_imap_seqset_parse(bad[i].in, strlen(bad[i].in), &s, &err), ARCA_ERR_SYNTAX);
		assert_null(s);
		assert_string_equal(err.msg, bad[i].msg);
	}
	assert_int_equal(arca_imap_seqset_parse("$", 1, &s, &err), ARCA_OK);
	assert_true(arca_imap_seqset_is_searchres(s));
	assert_int_equal(arca_imap_seqset_count(s), 0);
	assert_false(arca_imap_seqset_contains(s, 1, 10));
	arca_imap_seqset_free(&s);

	/* contains, with '*' resolved against the highest number in use */
	assert_int_equal(arca_imap_seqset_parse("2,4:6,9:*", 9, &s, &err), ARCA_OK);
	assert_false(arca_imap_seqset_contains(s, 1, 20));
	assert_true(arca_imap_seqset_contains(s, 2, 20));
	assert_false(arca_imap_seqset_contains(s, 3, 20));
	assert_true(arca_imap_seqset_contains(s, 5, 20));
	assert_true(arca_imap_seqset_contains(s, 15, 20));
	assert_true(arca_imap_seqset_contains(s, 7, 7)); /* 9:* with max 7 is 7:9 */
	assert_false(arca_imap_seqset_contains(s, 7, 0));
	arca_imap_seqset_free(&s);
	arca_imap_seqset_free(&s);

	char *big = xmalloc(ARCA_IMAP_MAX_LINE + 2);
	assert_non_null(big);
	memset(big, '1', ARCA_IMAP_MAX_LINE + 1);
	assert_int_equal(arca_imap_seqset_parse(big, ARCA_IMAP_MAX_LINE + 1, &s, &err), ARCA_ERR_LIMIT);
	for (size_t k = 1; k < ARCA_IMAP_MAX_LINE; k += 2)
		big[k] = ',';
	assert_int_equal(arca_imap_seqset_parse(big, ARCA_IMAP_MAX_LINE - 1, &s, &err), ARCA_OK);
	assert_int_equal(arca_imap_seqset_count(s), ARCA_IMAP_MAX_LINE / 2);
	arca_imap_seqset_free(&s);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_examples),
		cmocka_unit_test(test_append_rfc),
		cmocka_unit_test(test_node_types),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_literal_plus),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_nesting_and_args),
		cmocka_unit_test(test_expect_line),
		cmocka_unit_test(test_seqset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
