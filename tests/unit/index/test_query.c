/* Query language parser: input -> FTS5 expression / filters / error message, table driven. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/query.h"
#include "lib/limits.h"

#define W(x) "(- {msgid flags} : \"" x "\")"
#define ALL "{flags} : \"doc\""

static const struct {
	const char *in;
	const char *fts; /* NULL: no text terms */
} ok_cases[] = {
	{ "hello", W("hello") },
	{ "  hello  ", W("hello") },
	{ "hello world", W("hello") " AND " W("world") },
	{ "hello AND world", W("hello") " AND " W("world") },
	{ "\"exact phrase\"", W("exact phrase") },
	{ "foo*", "(- {msgid flags} : \"foo\" *)" },
	{ "\"foo bar\"*", "(- {msgid flags} : \"foo bar\" *)" },
	{ "a OR b", "((" W("a") ") OR (" W("b") "))" },
	{ "a b OR c", "((" W("a") " AND " W("b") ") OR (" W("c") "))" },
	{ "a OR b c", "((" W("a") ") OR (" W("b") " AND " W("c") "))" },
	{ "a (b OR c)", W("a") " AND (((" W("b") ") OR (" W("c") ")))" },
	{ "foo -bar", "(" W("foo") " NOT (" W("bar") "))" },
	{ "foo NOT bar", "(" W("foo") " NOT (" W("bar") "))" },
	{ "foo -bar -baz", "(" W("foo") " NOT (" W("bar") " OR " W("baz") "))" },
	{ "-spam", "((" ALL ") NOT (" W("spam") "))" },
	{ "NOT spam", "((" ALL ") NOT (" W("spam") "))" },
	{ "NOT -a", W("a") },
	{ "x OR -y", "((" W("x") ") OR (((" ALL ") NOT (" W("y") "))))" },
	{ "from:bob", "({from_} : \"bob\")" },
	{ "FROM:bob", "({from_} : \"bob\")" },
	{ "to:a cc:b bcc:c", "({to_} : \"a\") AND ({cc} : \"b\") AND ({bcc} : \"c\")" },
	{ "subject:\"hi there\"", "({subject} : \"hi there\")" },
	{ "body:x attachment:y filename:z",
	  "({body} : \"x\") AND ({attachment} : \"y\") AND ({filename} : \"z\")" },
	{ "message-id:abc@example.com", "({msgid} : \"abc@example.com\")" },
	{ "from:(alice OR bob)", "(((({from_} : \"alice\")) OR (({from_} : \"bob\"))))" },
	{ "from:ali*", "({from_} : \"ali\" *)" },
	{ "-from:bob x", "(" W("x") " NOT (({from_} : \"bob\")))" },
	{ "has:attachment", "({flags} : \"hasattachment\")" },
	{ "-has:attachment foo", "(" W("foo") " NOT (({flags} : \"hasattachment\")))" },
	{ "café", W("café") },
	{ "e-mail", W("e-mail") },
	{ "Re: meeting", W("Re:") " AND " W("meeting") },
	{ "http://example.com/x", W("http://example.com/x") },
	{ "10:30", W("10:30") },
	{ "a - b", W("a") " AND " W("b") },
	{ "or and not", W("or") " AND " W("and") " AND " W("not") },
	{ "foo !!! bar", W("foo") " AND " W("bar") },
	/* injection attempts: every word stays inside one quoted FTS5 string */
	{ "\"say \\\"hi\\\"\"", W("say \"\"hi\"\"") },
	{ "a\"\"b", W("a") " AND " W("b") },
	{ "NEAR(a b)", W("NEAR") " AND (" W("a") " AND " W("b") ")" },
	{ "\"NEAR(a b, 2)\"", W("NEAR(a b, 2)") },
	{ "a^b", W("a^b") },
	{ "^start", W("^start") },
	{ "{subject}:x", W("{subject}:x") },
	{ "\"{body} : x\"", W("{body} : x") },
	{ "\"subject:x\"", W("subject:x") },
	{ "\"a*\"", W("a*") },
	{ "\"x\" AND \"OR\"", W("x") " AND " W("OR") },
	{ "\"\\\"\" ok", W("ok") },
	/* filters only */
	{ "folder:INBOX", NULL },
	{ "after:2020-01-01", NULL },
	{ "before:2021 larger:1k", NULL },
	{ "archive:alice folder:\"Sent Items\"", NULL },
};

/* Inputs whose parse must fail, with the expected message. */
static const struct {
	const char *in;
	arca_status st;
	const char *msg;
} err_cases[] = {
	{ "", ARCA_ERR_SYNTAX, "column 1: empty query" },
	{ "   ", ARCA_ERR_SYNTAX, "column 1: empty query" },
	{ "(a", ARCA_ERR_SYNTAX, "column 1: unbalanced parenthesis: '(' is never closed" },
	{ "a)", ARCA_ERR_SYNTAX, "column 2: unbalanced parenthesis: unexpected ')'" },
	{ "x (a OR (b)", ARCA_ERR_SYNTAX,
	  "column 3: unbalanced parenthesis: '(' is never closed" },
	{ "\"abc", ARCA_ERR_SYNTAX, "column 1: unterminated quote" },
	{ "abc \"def", ARCA_ERR_SYNTAX, "column 5: unterminated quote" },
	{ "after:2020-13-01", ARCA_ERR_SYNTAX,
	  "column 7: bad date '2020-13-01' (use YYYY-MM-DD, YYYY-MM or YYYY)" },
	{ "before:2021-02-29", ARCA_ERR_SYNTAX,
	  "column 8: bad date '2021-02-29' (use YYYY-MM-DD, YYYY-MM or YYYY)" },
	{ "after:yesterday", ARCA_ERR_SYNTAX,
	  "column 7: bad date 'yesterday' (use YYYY-MM-DD, YYYY-MM or YYYY)" },
	{ "foo:bar", ARCA_ERR_SYNTAX,
	  "column 1: unknown field 'foo:' (put the word in quotes to search for it)" },
	{ "fts5:x\"", ARCA_ERR_SYNTAX, "column 7: unterminated quote" },
	{ "fts:x", ARCA_ERR_SYNTAX,
	  "column 1: unknown field 'fts:' (put the word in quotes to search for it)" },
	{ "x:\"y\"", ARCA_ERR_SYNTAX,
	  "column 1: unknown field 'x:' (put the word in quotes to search for it)" },
	{ "!!!", ARCA_ERR_SYNTAX,
	  "column 1: nothing to search for (the query has no letters or digits)" },
	{ "*)", ARCA_ERR_SYNTAX, "column 2: unbalanced parenthesis: unexpected ')'" },
	{ "a*", ARCA_ERR_SYNTAX, "column 1: a prefix search needs at least 3 letters before '*'" },
	{ "x ab*", ARCA_ERR_SYNTAX,
	  "column 3: a prefix search needs at least 3 letters before '*'" },
	{ "after:2020 OR foo", ARCA_ERR_SYNTAX, "column 7: 'after:' cannot be used next to OR" },
	{ "foo OR after:2020", ARCA_ERR_SYNTAX,
	  "column 14: 'after:' cannot be used inside OR or NOT" },
	{ "-folder:x", ARCA_ERR_SYNTAX, "column 9: 'folder:' cannot be used inside OR or NOT" },
	{ "a AND", ARCA_ERR_SYNTAX, "column 6: AND needs a term after it" },
	{ "OR a", ARCA_ERR_SYNTAX, "column 1: OR needs a term before it" },
	{ "a OR", ARCA_ERR_SYNTAX, "column 5: OR needs a term after it" },
	{ "NOT", ARCA_ERR_SYNTAX, "column 4: NOT needs a term after it" },
	{ "()", ARCA_ERR_SYNTAX, "column 1: empty parentheses" },
	{ "from:", ARCA_ERR_SYNTAX, "column 1: missing value after 'from:'" },
	{ "from: bob", ARCA_ERR_SYNTAX, "column 1: missing value after 'from:'" },
	{ "from:(to:x)", ARCA_ERR_SYNTAX,
	  "column 7: 'to:' cannot be used inside another field's parentheses" },
	{ "has:foo", ARCA_ERR_SYNTAX, "column 5: unknown 'has:' value 'foo' (only has:attachment)" },
	{ "larger:5x", ARCA_ERR_SYNTAX,
	  "column 8: bad size '5x' (use a number with an optional k, m or g suffix)" },
	{ "smaller:99999999999999999999", ARCA_ERR_SYNTAX,
	  "column 9: bad size '99999999999999999999' (use a number with an optional k, m or g "
	  "suffix)" },
	{ "folder:\"\"", ARCA_ERR_SYNTAX, "column 8: empty folder name" },
	{ "café \"x", ARCA_ERR_SYNTAX, "column 6: unterminated quote" },
	{ "bad \xff utf8", ARCA_ERR_SYNTAX, "column 5: invalid UTF-8" },
};

static void test_ok_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		arca_query *q = NULL;
		arca_error err = { 0 };
		if (arca_query_parse(ok_cases[i].in, &q, &err) != ARCA_OK)
			fail_msg("'%s': %s", ok_cases[i].in, err.msg);
		if (ok_cases[i].fts == NULL) {
			if (arca_query_fts(q) != NULL)
				fail_msg("'%s': expected no FTS, got %s", ok_cases[i].in,
				         arca_query_fts(q));
		} else if (arca_query_fts(q) == NULL ||
		           strcmp(arca_query_fts(q), ok_cases[i].fts) != 0) {
			fail_msg("'%s':\n  want %s\n  got  %s", ok_cases[i].in, ok_cases[i].fts,
			         arca_query_fts(q) ? arca_query_fts(q) : "(null)");
		}
		arca_query_free(&q);
		assert_null(q);
	}
}

static void test_err_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		arca_query *q = NULL;
		arca_error err = { 0 };
		arca_status st = arca_query_parse(err_cases[i].in, &q, &err);
		if (st != err_cases[i].st || strcmp(err.msg, err_cases[i].msg) != 0)
			fail_msg("'%s': want %d '%s', got %d '%s'", err_cases[i].in, err_cases[i].st,
			         err_cases[i].msg, st, err.msg);
		assert_null(q);
	}
}

static void test_filters(void **state)
{
	arca_query *q = NULL;
	arca_error err;
	(void)state;
	assert_int_equal(arca_query_parse("invoice after:2020-01-15 before:2021-02 larger:10k "
	                                  "smaller:2M has:attachment folder:\"Sent Items\" "
	                                  "folder:INBOX archive:alice",
	                                  &q, &err),
	                 ARCA_OK);
	assert_int_equal(arca_query_after(q), 1579046400);  /* 2020-01-15T00:00Z */
	assert_int_equal(arca_query_before(q), 1612137600); /* 2021-02-01T00:00Z */
	assert_int_equal(arca_query_size_min(q), 10241);
	assert_int_equal(arca_query_size_max(q), 2 * 1024 * 1024);
	assert_int_equal(arca_query_has_attachment(q), 1);
	assert_int_equal(arca_query_n_folders(q), 2);
	assert_string_equal(arca_query_folder(q, 0), "Sent Items");
	assert_string_equal(arca_query_folder(q, 1), "INBOX");
	assert_null(arca_query_folder(q, 2));
	assert_int_equal(arca_query_n_archives(q), 1);
	assert_string_equal(arca_query_archive(q, 0), "alice");
	assert_string_equal(arca_query_fts(q),
	                    W("invoice") " AND ({flags} : \"hasattachment\")");
	arca_query_free(&q);

	/* defaults, and the tightest of repeated bounds */
	assert_int_equal(arca_query_parse("x", &q, &err), ARCA_OK);
	assert_true(arca_query_after(q) == INT64_MIN);
	assert_true(arca_query_before(q) == INT64_MAX);
	assert_int_equal(arca_query_size_min(q), 0);
	assert_true(arca_query_size_max(q) == UINT64_MAX);
	assert_int_equal(arca_query_has_attachment(q), 0);
	arca_query_free(&q);
	assert_int_equal(arca_query_parse("after:2019 after:2020/03/01 before:2022 before:2021-06 "
	                                  "larger:1kb larger:5 smaller:1g smaller:100",
	                                  &q, &err),
	                 ARCA_OK);
	assert_int_equal(arca_query_after(q), 1583020800);
	assert_int_equal(arca_query_before(q), 1622505600);
	assert_int_equal(arca_query_size_min(q), 1025);
	assert_int_equal(arca_query_size_max(q), 100);
	assert_null(arca_query_fts(q));
	arca_query_free(&q);
	/* has:attachment under NOT or OR is a text term, not the positive filter */
	assert_int_equal(arca_query_parse("a OR has:attachment", &q, &err), ARCA_OK);
	assert_int_equal(arca_query_has_attachment(q), 0);
	arca_query_free(&q);
	/* dates before 1970 are allowed (the index clamps them) */
	assert_int_equal(arca_query_parse("before:1960-01-01", &q, &err), ARCA_OK);
	assert_true(arca_query_before(q) < 0);
	arca_query_free(&q);
	arca_query_free(&q); /* idempotent on NULL */
}

static void test_highlights(void **state)
{
	arca_query *q = NULL;
	arca_error err;
	(void)state;
	assert_int_equal(arca_query_parse("hello \"big world\" inv* -spam from:bob NOT (x OR y) "
	                                  "after:2020",
	                                  &q, &err),
	                 ARCA_OK);
	assert_int_equal(arca_query_n_highlights(q), 4);
	assert_string_equal(arca_query_highlight(q, 0), "hello");
	assert_false(arca_query_highlight_is_prefix(q, 0));
	assert_string_equal(arca_query_highlight(q, 1), "big world");
	assert_string_equal(arca_query_highlight(q, 2), "inv");
	assert_true(arca_query_highlight_is_prefix(q, 2));
	assert_string_equal(arca_query_highlight(q, 3), "bob");
	assert_null(arca_query_highlight(q, 4));
	arca_query_free(&q);
}

static void test_limits(void **state)
{
	arca_query *q = NULL;
	arca_error err;
	char *big;
	size_t n;
	(void)state;

	big = malloc(ARCA_QUERY_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', ARCA_QUERY_MAX_LEN + 1);
	big[ARCA_QUERY_MAX_LEN + 1] = '\0';
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_ERR_LIMIT);
	assert_string_equal(err.msg, "query too long (at most 4096 bytes)");
	/* exactly the maximum is fine */
	big[ARCA_QUERY_MAX_LEN] = '\0';
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_OK);
	arca_query_free(&q);

	/* too many terms */
	n = 0;
	for (unsigned i = 0; i < ARCA_QUERY_MAX_TERMS + 1; i++)
		n += (size_t)sprintf(big + n, "w%u ", i);
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_ERR_LIMIT);
	assert_non_null(strstr(err.msg, "too many terms (at most 64)"));
	n = 0;
	for (unsigned i = 0; i < ARCA_QUERY_MAX_TERMS; i++)
		n += (size_t)sprintf(big + n, "w%u ", i);
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_OK);
	arca_query_free(&q);

	/* deep nesting is bounded before the term limit */
	n = 0;
	for (unsigned i = 0; i < 40; i++)
		big[n++] = '(';
	big[n++] = 'x';
	for (unsigned i = 0; i < 40; i++)
		big[n++] = ')';
	big[n] = '\0';
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_ERR_LIMIT);
	assert_non_null(strstr(err.msg, "nested too deeply"));
	n = 0;
	for (unsigned i = 0; i < 60; i++)
		n += (size_t)sprintf(big + n, "NOT ");
	sprintf(big + n, "x");
	assert_int_equal(arca_query_parse(big, &q, &err), ARCA_ERR_LIMIT);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_cases),
		cmocka_unit_test(test_err_cases),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_highlights),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
