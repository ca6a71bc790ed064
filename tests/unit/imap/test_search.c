/* SEARCH/SORT/THREAD parts without I/O: search-program parsing and its errors, RFC 3501 dates
 * and calendar days in a zone, RFC 5256 base subjects, the i;unicode-casemap collation, sort
 * addresses, message-id lists, THREAD=REFERENCES and THREAD=ORDEREDSUBJECT. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"
#include "imap/search_int.h"

/* ------------------------------------------------------------------ program parsing */

static void dump(const imapd_skey *k, arca_buf *b)
{
	static const char *const names[] = {
		"ALL", "NONE", "AND", "OR", "NOT", "SET", "LARGER", "SMALLER", "MODSEQ", "BEFORE", "ON",
		"SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "HEADER", "BODY", "TEXT",
	};
	arca_buf_printf(b, "%s", names[k->kind]);
	switch (k->kind) {
	case IMAPD_SK_SET:
		arca_buf_printf(b, "%s:%s", k->uid ? "UID" : "", k->set);
		break;
	case IMAPD_SK_LARGER:
	case IMAPD_SK_SMALLER:
	case IMAPD_SK_MODSEQ:
		arca_buf_printf(b, ":%llu", (unsigned long long)k->num);
		break;
	case IMAPD_SK_BEFORE:
	case IMAPD_SK_ON:
	case IMAPD_SK_SINCE:
	case IMAPD_SK_SENTBEFORE:
	case IMAPD_SK_SENTON:
	case IMAPD_SK_SENTSINCE:
		arca_buf_printf(b, ":%d", k->day);
		break;
	case IMAPD_SK_HEADER:
		arca_buf_printf(b, ":%s:%s", k->field, k->text);
		break;
	case IMAPD_SK_BODY:
	case IMAPD_SK_TEXT:
		arca_buf_printf(b, ":%s", k->text);
		break;
	default:
		break;
	}
	if (k->kind == IMAPD_SK_AND || k->kind == IMAPD_SK_OR || k->kind == IMAPD_SK_NOT) {
		arca_buf_appendz(b, "(");
		for (size_t i = 0; i < k->nkids; i++) {
			if (i > 0)
				arca_buf_appendz(b, " ");
			dump(&k->kids[i], b);
		}
		arca_buf_appendz(b, ")");
	}
}

/* Parses "t SEARCH <keys>" and returns the dump, or "ERR: message". Caller frees. */
static char *program(const char *keys)
{
	arca_imap_parser *p = NULL;
	arca_buf line, out;
	size_t used = 0;
	imapd_skey *k = NULL;
	arca_error e;
	char *res;
	assert_int_equal(arca_imap_parser_new(&(arca_imap_parser_opts){ .literal_plus = true }, &p, NULL),
	                 ARCA_OK);
	arca_buf_init(&line, 1u << 20);
	arca_buf_init(&out, 1u << 20);
	arca_buf_printf(&line, "t SEARCH %s\r\n", keys);
	assert_int_equal(arca_imap_parser_feed(p, line.data, line.len, &used), ARCA_IMAP_COMMAND);
	if (imapd_search_parse(arca_imap_parser_args(p), 0, &k, &e) == ARCA_OK) {
		dump(k, &out);
		imapd_search_free(&k);
	} else {
		arca_buf_printf(&out, "ERR: %s", e.msg);
	}
	res = strdup(out.data != NULL ? out.data : "");
	arca_buf_free(&line);
	arca_buf_free(&out);
	arca_imap_parser_free(&p);
	return res;
}

static void check_program(const char *keys, const char *want)
{
	char *got = program(keys);
	if (strcmp(got, want) != 0)
		fail_msg("SEARCH %s\n  got:  %s\n  want: %s", keys, got, want);
	free(got);
}

static void test_parse_keys(void **state)
{
	(void)state;
	check_program("ALL", "AND(ALL)");
	check_program("seen Old unanswered UNDELETED UNDRAFT UNFLAGGED",
	              "AND(ALL ALL ALL ALL ALL ALL)");
	check_program("UNSEEN NEW RECENT ANSWERED DELETED DRAFT FLAGGED",
	              "AND(NONE NONE NONE NONE NONE NONE NONE)");
	check_program("KEYWORD $Junk UNKEYWORD $Junk KEYWORD \\Seen", "AND(NONE ALL ALL)");
	check_program("1:5,7 * $ UID 3:* UID $", "AND(SET:1:5,7 SET:* SET:$ SETUID:3:* SETUID:$)");
	check_program("LARGER 100 SMALLER 5000", "AND(LARGER:100 SMALLER:5000)");
	check_program("MODSEQ 620162338", "AND(MODSEQ:620162338)");
	check_program("MODSEQ \"/flags/\\\\draft\" all 620162338", "AND(MODSEQ:620162338)");
	check_program("SINCE 1-Feb-1994 BEFORE \"01-Jan-1970\" ON 31-Dec-1969",
	              "AND(SINCE:8797 BEFORE:0 ON:-1)");
	check_program("SENTBEFORE 2-Jan-1970 SENTON 29-Feb-2024 SENTSINCE 1-Mar-2024",
	              "AND(SENTBEFORE:1 SENTON:19782 SENTSINCE:19783)");
	check_program("SUBJECT hello FROM \"Smith\" TO {3+}\r\nbob CC x BCC y",
	              "AND(HEADER:SUBJECT:hello HEADER:FROM:Smith HEADER:TO:bob HEADER:CC:x "
	              "HEADER:BCC:y)");
	check_program("HEADER X-Mailer \"\" BODY foo TEXT \"two words\"",
	              "AND(HEADER:X-Mailer: BODY:foo TEXT:two words)");
	check_program("NOT DELETED", "AND(NOT(NONE))");
	check_program("OR FROM a (TO b CC c) NOT OR 1 2",
	              "AND(OR(HEADER:FROM:a AND(HEADER:TO:b HEADER:CC:c)) NOT(OR(SET:1 SET:2)))");
	check_program("subject NIL", "AND(HEADER:SUBJECT:NIL)");
}

static void test_parse_errors(void **state)
{
	char keys[4096];
	size_t n = 0;
	(void)state;
	check_program("FOO", "ERR: unknown search key FOO");
	check_program("ALL BOGUS 1", "ERR: unknown search key BOGUS");
	check_program("SUBJECT", "ERR: SUBJECT needs a string");
	check_program("SUBJECT (a)", "ERR: SUBJECT needs a string");
	check_program("BEFORE 32-Jan-2024", "ERR: BEFORE needs a date like 1-Feb-2024");
	check_program("SINCE 1-Foo-2024", "ERR: SINCE needs a date like 1-Feb-2024");
	check_program("ON 29-Feb-2023", "ERR: ON needs a date like 1-Feb-2024");
	check_program("LARGER x", "ERR: LARGER needs a number");
	check_program("OR ALL", "ERR: OR needs two search keys");
	check_program("NOT", "ERR: NOT needs a search key");
	check_program("()", "ERR: empty parenthesised search key");
	check_program("\"ALL\"", "ERR: a search key was expected, not a string");
	check_program("UID", "ERR: UID needs a sequence set");
	check_program("1:x", "ERR: invalid sequence set at offset 2");
	check_program("KEYWORD", "ERR: KEYWORD needs a flag");
	check_program("HEADER \"\" x", "ERR: HEADER needs a field name");
	/* nesting beyond the bound is refused, not recursed into */
	for (size_t i = 0; i < IMAPD_SEARCH_MAX_DEPTH + 1; i++)
		n += (size_t)snprintf(keys + n, sizeof(keys) - n, "NOT ");
	snprintf(keys + n, sizeof(keys) - n, "ALL");
	check_program(keys, "ERR: search program nested too deeply");
}

static void test_modseq_flag(void **state)
{
	char *a;
	(void)state;
	a = program("ALL");
	free(a);
	{
		arca_imap_parser *p = NULL;
		size_t used;
		imapd_skey *k = NULL;
		const char *l = "t SEARCH OR ALL (NOT MODSEQ 5)\r\n";
		assert_int_equal(arca_imap_parser_new(NULL, &p, NULL), ARCA_OK);
		assert_int_equal(arca_imap_parser_feed(p, l, strlen(l), &used), ARCA_IMAP_COMMAND);
		assert_int_equal(imapd_search_parse(arca_imap_parser_args(p), 0, &k, NULL), ARCA_OK);
		assert_true(imapd_search_uses_modseq(k));
		imapd_search_free(&k);
		arca_imap_parser_free(&p);
	}
}

/* ------------------------------------------------------------------ dates */

static void test_dates(void **state)
{
	int32_t d = 0;
	(void)state;
	assert_true(imapd_search_parse_date("1-Jan-1970", 10, &d));
	assert_int_equal(d, 0);
	assert_true(imapd_search_parse_date("01-jan-1970", 11, &d));
	assert_int_equal(d, 0);
	assert_true(imapd_search_parse_date("29-Feb-2000", 11, &d));
	assert_int_equal(d, 11016);
	assert_true(imapd_search_parse_date("31-Dec-1969", 11, &d));
	assert_int_equal(d, -1);
	assert_true(imapd_search_parse_date("1-Mar-0001", 10, &d));
	assert_false(imapd_search_parse_date("29-Feb-1900", 11, &d));
	assert_false(imapd_search_parse_date("1-Jan-70", 8, &d));
	assert_false(imapd_search_parse_date("1-Jan-19700", 11, &d));
	assert_false(imapd_search_parse_date("001-Jan-1970", 12, &d));
	assert_false(imapd_search_parse_date("0-Jan-1970", 10, &d));
	assert_false(imapd_search_parse_date("1 Jan 1970", 10, &d));
	assert_false(imapd_search_parse_date("", 0, &d));
	/* the calendar day of a moment depends on the zone it is seen in */
	assert_int_equal(imapd_search_day(0, 0), 0);
	assert_int_equal(imapd_search_day(-1, 0), -1);
	assert_int_equal(imapd_search_day(86399, 0), 0);
	/* 2024-03-01 23:30 -0500 is 2024-03-02 04:30 UTC: the message says 1 March */
	assert_int_equal(imapd_search_day(1709353800, -300), 19783);
	assert_int_equal(imapd_search_day(1709353800, 0), 19784);
	/* 2024-03-02 00:30 +0200 is 2024-03-01 22:30 UTC */
	assert_int_equal(imapd_search_day(1709332200, 120), 19784);
	assert_int_equal(imapd_search_day(1709332200, 0), 19783);
}

/* ------------------------------------------------------------------ base subjects */

static void check_base(const char *subject, const char *want, bool want_refwd)
{
	bool refwd = !want_refwd;
	char *got = imapd_search_base_subject(subject, strlen(subject), &refwd);
	assert_non_null(got);
	if (strcmp(got, want) != 0 || refwd != want_refwd)
		fail_msg("base subject of \"%s\": got \"%s\" (%d), want \"%s\" (%d)", subject, got, refwd,
		         want, want_refwd);
	free(got);
}

static void test_base_subject(void **state)
{
	(void)state;
	check_base("Hello", "Hello", false);
	check_base("Re: Hello", "Hello", true);
	check_base("RE:Hello", "Hello", true);
	check_base("re: re: Re:  Hello", "Hello", true);
	check_base("Fwd: Hello", "Hello", true);
	check_base("FW: Hello", "Hello", true);
	check_base("Re[2]: Hello", "Hello", true);
	check_base("Re [2]: Hello", "Hello", true);
	check_base("[list] Re: Hello", "Hello", true);
	check_base("[list] Hello", "Hello", false);
	check_base("[list] [other] Re: [list] Hello", "Hello", true);
	check_base("[only a blob]", "[only a blob]", false);
	check_base("Hello (fwd)", "Hello", false);
	check_base("Hello (FWD) (fwd)  ", "Hello", false);
	check_base("[Fwd: Hello]", "Hello", true);
	check_base("Re: [fwd: Re: test] (fwd)", "test", true);
	check_base("[fwd: [fwd: x]]", "x", true);
	check_base("  Hello\t\tworld  ", "Hello world", false);
	check_base("Hello\r\n world", "Hello world", false);
	check_base("Re:", "", true);
	check_base("", "", false);
	check_base("Reply: Hello", "Reply: Hello", false);
	check_base("Fwd Hello", "Fwd Hello", false);
	check_base("Re: Grüße", "Grüße", true);
}

static void test_casemap(void **state)
{
	char *a, *b;
	(void)state;
	a = imapd_search_casemap("Hello World", 11);
	b = imapd_search_casemap("hello world", 11);
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* composed and decomposed forms collate alike, and case does not matter */
	a = imapd_search_casemap("\xc3\xa9t\xc3\xa9", 5);     /* été */
	b = imapd_search_casemap("E\xcc\x81TE\xcc\x81", 7);    /* ÉTÉ decomposed */
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* ordering: a < b regardless of case */
	a = imapd_search_casemap("apple", 5);
	b = imapd_search_casemap("Banana", 6);
	assert_true(strcmp(a, b) < 0);
	free(a);
	free(b);
	/* not UTF-8: ASCII case mapping only, bytes kept */
	a = imapd_search_casemap("ab\xff", 3);
	assert_string_equal(a, "AB\xff");
	free(a);
}

static void check_addr(const char *raw, bool display, const char *want)
{
	char *got = imapd_search_sort_address(raw, strlen(raw), display);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("address of \"%s\" (display %d): got \"%s\", want \"%s\"", raw, display, got, want);
	free(got);
}

static void test_sort_address(void **state)
{
	(void)state;
	check_addr(" John Doe <JDoe@Example.COM>", false, "JDoe");
	check_addr(" John Doe <JDoe@Example.COM>", true, "John Doe");
	check_addr(" jdoe@example.com (John)", false, "jdoe");
	check_addr(" <jdoe@example.com>, Ann <ann@x.org>", true, "jdoe@example.com");
	check_addr(" =?UTF-8?Q?J=C3=B6rg?= <joerg@x.de>", true, "J\xc3\xb6rg");
	check_addr(" \"Doe, John\" <jd@x>", true, "Doe, John");
	check_addr(" undisclosed-recipients:;", false, "undisclosed-recipients");
	check_addr("", false, "");
	check_addr("   ", true, "");
}

/* ------------------------------------------------------------------ threading */

static void test_msgids(void **state)
{
	char *ids[8];
	const char *s = " <a@b> (comment) <c@d>junk<e f@g> <> <h@i";
	size_t n;
	(void)state;
	n = imapd_thread_msgids(s, strlen(s), ids, 8);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "a@b");
	assert_string_equal(ids[1], "c@d");
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	n = imapd_thread_msgids("<1@x><2@x><3@x>", 15, ids, 2);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
}

typedef struct {
	const char *msgid;
	const char *refs[4];
	const char *subject;
	bool refwd;
	int64_t date;
} tmsg;

static char *run_thread(const tmsg *in, size_t n, bool references)
{
	imapd_thread_msg *m = calloc(n + 1, sizeof(*m));
	arca_buf out;
	char *res;
	assert_non_null(m);
	arca_buf_init(&out, 1u << 20);
	for (size_t i = 0; i < n; i++) {
		size_t nr = 0;
		while (nr < 4 && in[i].refs[nr] != NULL)
			nr++;
		m[i].id = (uint32_t)(i + 1);
		m[i].seq = (uint32_t)(i + 1);
		m[i].date = in[i].date;
		m[i].msgid = in[i].msgid;
		m[i].refs = in[i].refs;
		m[i].nrefs = nr;
		m[i].subject = in[i].subject != NULL ? in[i].subject : "";
		m[i].refwd = in[i].refwd;
	}
	assert_int_equal(references ? imapd_thread_references(m, n, &out) :
	                              imapd_thread_orderedsubject(m, n, &out),
	                 ARCA_OK);
	res = strdup(out.data != NULL ? out.data : "");
	arca_buf_free(&out);
	free(m);
	return res;
}

static void test_thread_references(void **state)
{
	char *r;
	(void)state;
	{
		/* a conversation: 1 <- 2 <- 3, 1 <- 4 (a second answer), 5 unrelated, and 6 answers 3
		 * with a truncated References (only 3): it still lands under 3 */
		const tmsg m[] = {
			{ "1@x", { NULL }, "HELLO", false, 100 },
			{ "2@x", { "1@x" }, "HELLO", true, 200 },
			{ "3@x", { "1@x", "2@x" }, "HELLO", true, 300 },
			{ "4@x", { "1@x" }, "HELLO", true, 250 },
			{ "5@x", { NULL }, "OTHER", false, 150 },
			{ "6@x", { "3@x" }, "HELLO", true, 400 },
		};
		r = run_thread(m, 6, true);
		assert_string_equal(r, "(1 (2 3 6)(4))(5)");
		free(r);
	}
	{
		/* a missing parent becomes a dummy: its two answers share a thread under it (the dummy
		 * is not shown); a dummy with a single child is dropped */
		const tmsg m[] = {
			{ "a@x", { "gone@x" }, "TOPIC", true, 100 },
			{ "b@x", { "gone@x" }, "TOPIC", true, 200 },
			{ "c@x", { "lost@x" }, "OTHER", true, 50 },
		};
		r = run_thread(m, 3, true);
		assert_string_equal(r, "(3)((1)(2))");
		free(r);
	}
	{
		/* same base subject without references: threads are merged by subject; a non-reply
		 * is the parent of the replies */
		const tmsg m[] = {
			{ "1@x", { NULL }, "LUNCH", false, 100 },
			{ "2@x", { NULL }, "LUNCH", true, 200 },
			{ "3@x", { NULL }, "DINNER", false, 300 },
			{ "4@x", { NULL }, "DINNER", false, 400 },
			{ NULL, { NULL }, "", false, 500 },
			{ NULL, { NULL }, "", false, 50 },
		};
		r = run_thread(m, 6, true);
		/* 6 (empty subject) is earliest; LUNCH 1 <- 2 (reply); two DINNER originals get a
		 * dummy parent */
		assert_string_equal(r, "(6)(1 2)((3)(4))(5)");
		free(r);
	}
	{
		/* duplicate Message-IDs: only the first keeps it; loops are not created */
		const tmsg m[] = {
			{ "1@x", { "2@x" }, "A", false, 100 },
			{ "2@x", { "1@x" }, "B", false, 200 },
			{ "1@x", { NULL }, "C", false, 300 },
			{ "3@x", { "3@x" }, "D", false, 400 },
		};
		r = run_thread(m, 4, true);
		assert_string_equal(r, "(2 1)(3)(4)");
		free(r);
	}
	{
		/* siblings are ordered by date, then by sequence number */
		const tmsg m[] = {
			{ "p@x", { NULL }, "P", false, 100 },
			{ "c1@x", { "p@x" }, "P", true, 300 },
			{ "c2@x", { "p@x" }, "P", true, 200 },
			{ "c3@x", { "p@x" }, "P", true, 200 },
		};
		r = run_thread(m, 4, true);
		assert_string_equal(r, "(1 (3)(4)(2))");
		free(r);
	}
	r = run_thread(NULL, 0, true);
	assert_string_equal(r, "");
	free(r);
}

static void test_thread_deep(void **state)
{
	/* a chain as long as a mailbox: nothing recurses */
	enum { N = 20000 };
	tmsg *m = calloc(N, sizeof(*m));
	char (*ids)[16] = calloc(N, 16);
	char *r;
	(void)state;
	assert_non_null(m);
	assert_non_null(ids);
	for (size_t i = 0; i < N; i++) {
		snprintf(ids[i], 16, "%zu@x", i);
		m[i].msgid = ids[i];
		m[i].refs[0] = i > 0 ? ids[i - 1] : NULL;
		m[i].subject = "CHAIN";
		m[i].date = (int64_t)i;
	}
	r = run_thread(m, N, true);
	assert_true(strncmp(r, "(1 2 3 ", 7) == 0);
	assert_true(strcmp(r + strlen(r) - 7, " 20000)") == 0);
	free(r);
	free(m);
	free(ids);
}

/* Random reference structures (missing parents, loops, duplicates, shared subjects): every
 * message appears exactly once in the answer, and parentheses balance. Run under ASan. */
static void test_thread_random(void **state)
{
	enum { N = 600, IDS = 700 };
	static char ids[IDS][16];
	static const char *subjects[] = { "", "A", "B", "C", "D" };
	tmsg *m = calloc(N, sizeof(*m));
	unsigned seed = 12345;
	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < IDS; i++)
		snprintf(ids[i], sizeof(ids[i]), "%zu@r", i);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < N; i++) {
			seed = seed * 1103515245u + 12345u;
			m[i].msgid = (seed >> 8) % 10 == 0 ? NULL : ids[(seed >> 12) % IDS];
			for (size_t r = 0; r < 4; r++) {
				seed = seed * 1103515245u + 12345u;
				m[i].refs[r] = (seed >> 9) % 3 == 0 ? NULL : ids[(seed >> 12) % IDS];
				if (m[i].refs[r] == NULL)
					break;
			}
			seed = seed * 1103515245u + 12345u;
			m[i].subject = subjects[(seed >> 10) % 5];
			m[i].refwd = (seed >> 14) & 1;
			m[i].date = (int64_t)((seed >> 16) % 50);
		}
		for (int alg = 0; alg < 2; alg++) {
			char *r = run_thread(m, N, alg == 0);
			unsigned char seen[N + 1] = { 0 };
			int depth = 0;
			for (const char *p = r; *p != '\0';) {
				if (*p == '(') {
					depth++;
					p++;
				} else if (*p == ')') {
					depth--;
					assert_true(depth >= 0);
					p++;
				} else if (*p == ' ') {
					p++;
				} else {
					char *end;
					unsigned long v = strtoul(p, &end, 10);
					assert_true(end > p && v >= 1 && v <= N);
					assert_int_equal(seen[v], 0);
					seen[v] = 1;
					p = end;
				}
			}
			assert_int_equal(depth, 0);
			for (size_t i = 1; i <= N; i++)
				assert_int_equal(seen[i], 1);
			free(r);
		}
	}
	free(m);
}

static void test_thread_orderedsubject(void **state)
{
	const tmsg m[] = {
		{ NULL, { NULL }, "B", false, 500 },
		{ NULL, { NULL }, "A", false, 300 },
		{ NULL, { NULL }, "A", true, 100 },
		{ NULL, { NULL }, "C", false, 50 },
		{ NULL, { NULL }, "A", true, 200 },
		{ NULL, { NULL }, "B", false, 400 },
	};
	char *r;
	(void)state;
	r = run_thread(m, 6, false);
	/* threads by the date of their first message: C (50), A (100: 3, then 5, 2), B (400: 6, 1) */
	assert_string_equal(r, "(4)(3 (5)(2))(6 1)");
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_keys),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_modseq_flag),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_base_subject),
		cmocka_unit_test(test_casemap),
		cmocka_unit_test(test_sort_address),
		cmocka_unit_test(test_msgids),
		cmocka_unit_test(test_thread_references),
		cmocka_unit_test(test_thread_deep),
		cmocka_unit_test(test_thread_random),
		cmocka_unit_test(test_thread_orderedsubject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
