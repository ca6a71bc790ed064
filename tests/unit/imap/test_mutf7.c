/* Modified UTF-7 mailbox names (RFC 3501 §5.1.3): both directions, the RFC's example,
 * surrogate pairs, and the malformed forms a client may send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "imap/mutf7.h"

static void roundtrip(const char *utf8, const char *mutf7)
{
	arca_buf b;
	arca_buf_init(&b, 4096);
	assert_int_equal(arca_imap_mutf7_encode(utf8, strlen(utf8), &b, NULL), ARCA_OK);
	assert_string_equal(b.data != NULL ? b.data : "", mutf7);
	arca_buf_free(&b);
	arca_buf_init(&b, 4096);
	assert_int_equal(arca_imap_mutf7_decode(mutf7, strlen(mutf7), &b, NULL), ARCA_OK);
	assert_string_equal(b.data != NULL ? b.data : "", utf8);
	arca_buf_free(&b);
}

static void test_examples(void **state)
{
	(void)state;
	roundtrip("INBOX", "INBOX");
	roundtrip("", "");
	roundtrip("Tom & Jerry", "Tom &- Jerry");
	/* RFC 3501's example: "~peter/mail/日本語/台北" */
	roundtrip("~peter/mail/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xe5\x8f\xb0\xe5\x8c\x97",
	          "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
	roundtrip("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	roundtrip("\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail"); /* U+1F4E7: a surrogate pair */
}

static void test_bad_input(void **state)
{
	static const char *bad[] = {
		"&",         /* unterminated */
		"&Zev",      /* no '-' */
		"&AGE-",     /* 'a' (printable ASCII) must not be encoded */
		"&2D0-",     /* lone high surrogate */
		"&3ec-",     /* lone low surrogate */
		"&ZeV!-",    /* not modified base64 */
		"caf\xc3\xa9", /* raw 8-bit */
		"&APw",      /* unterminated after a character */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		arca_buf b;
		arca_error e;
		arca_buf_init(&b, 4096);
		assert_int_not_equal(arca_imap_mutf7_decode(bad[i], strlen(bad[i]), &b, &e), ARCA_OK);
		arca_buf_free(&b);
	}
	{
		arca_buf b;
		arca_buf_init(&b, 4096);
		assert_int_equal(arca_imap_mutf7_encode("\xff", 1, &b, NULL), ARCA_ERR_INVALID);
		arca_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_examples),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
