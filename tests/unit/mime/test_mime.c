/* Unit tests for src/mime: header fields, text extraction, attachments, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "lib/buf.h"
#include "lib/limits.h"
#include "mime/mime.h"

static arca_mime_info *parse_n(const char *data, size_t len)
{
	arca_mime_info *info = NULL;
	arca_error err;
	assert_int_equal(arca_mime_parse(data, len, &info, &err), ARCA_OK);
	assert_non_null(info);
	/* Every string the module returns must be valid UTF-8. */
	assert_true(g_utf8_validate(info->subject, -1, NULL));
	assert_true(g_utf8_validate(info->from, -1, NULL));
	assert_true(g_utf8_validate(info->to, -1, NULL));
	assert_true(g_utf8_validate(info->body_text, (gssize)info->body_text_len, NULL));
	assert_true(g_utf8_validate(info->attachment_text, (gssize)info->attachment_text_len,
	    NULL));
	assert_int_equal(strlen(info->body_text), info->body_text_len);
	assert_int_equal(strlen(info->attachment_text), info->attachment_text_len);
	assert_true(info->body_text_len + info->attachment_text_len <= ARCA_MIME_MAX_TEXT);
	assert_non_null(info->warning);
	assert_true((info->warnings == 0) == (info->warning[0] == '\0'));
	for (size_t i = 0; i < info->n_attachments; i++)
		assert_true(g_utf8_validate(info->attachments[i].filename, -1, NULL));
	assert_int_equal(info->size, len);
	return info;
}

static arca_mime_info *parse(const char *data)
{
	return parse_n(data, strlen(data));
}

static void test_simple(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "From: \"Alice Example\" <Alice@Example.COM>\r\n"
	    "To: bob@example.org, \"Carol\" <CAROL@example.net>\r\n"
	    "Cc: Dave <dave@x.example>\r\n"
	    "Bcc: eve@y.example\r\n"
	    "Reply-To: replies@example.com\r\n"
	    "Sender: list@example.com\r\n"
	    "Subject: Hello there\r\n"
	    "Date: Tue, 15 Nov 1994 08:12:31 -0500\r\n"
	    "Message-ID: <abc.123@example.com>\r\n"
	    "In-Reply-To: <parent@example.com>\r\n"
	    "References: <root@example.com>\r\n <parent@example.com>\r\n"
	    "\r\n"
	    "Hi Bob,\r\nthis is the body.\r\n");
	assert_string_equal(m->subject, "Hello there");
	assert_string_equal(m->from, "Alice Example <alice@example.com>");
	assert_string_equal(m->to, "bob@example.org, Carol <carol@example.net>");
	assert_string_equal(m->cc, "Dave <dave@x.example>");
	assert_string_equal(m->bcc, "eve@y.example");
	assert_string_equal(m->reply_to, "replies@example.com");
	assert_string_equal(m->sender, "list@example.com");
	assert_string_equal(m->message_id, "abc.123@example.com");
	assert_string_equal(m->in_reply_to, "parent@example.com");
	assert_string_equal(m->references, "root@example.com parent@example.com");
	assert_int_equal(m->date, 784905151);
	assert_string_equal(m->body_text, "Hi Bob,\nthis is the body.\n");
	assert_int_equal(m->warnings, 0);
	assert_string_equal(m->warning, "");
	assert_false(m->has_attachment);
	assert_int_equal(m->n_attachments, 0);
	arca_mime_info_free(&m);
	assert_null(m);
}

static void test_rfc2047(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "From: =?iso-8859-1?Q?J=F6rg_M=FCller?= <JOERG@example.de>\n"
	    "Subject: =?utf-8?B?w4TDlsOcIGdyw7zDn2U=?= and =?ISO-8859-1?q?caf=E9?=\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nx\n");
	assert_string_equal(m->subject, "\xc3\x84\xc3\x96\xc3\x9c gr\xc3\xbc\xc3\x9f" "e and "
	    "caf\xc3\xa9");
	assert_string_equal(m->from, "J\xc3\xb6rg M\xc3\xbcller <joerg@example.de>");
	arca_mime_info_free(&m);

	m = parse("Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n");
	assert_string_equal(m->subject, "Gr\xc3\xbc\xc3\x9f" "e");
	arca_mime_info_free(&m);
}

static void test_rfc2231_filename(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: att\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
	    "--b1\nContent-Type: text/plain; charset=us-ascii\n\nsee attached\n"
	    "--b1\nContent-Type: Application/PDF\n"
	    "Content-Disposition: attachment;\n filename*=iso-8859-1''R%E9sum%E9.pdf\n"
	    "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
	    "--b1\nContent-Type: image/png; name=\"=?utf-8?B?w7xiZXIucG5n?=\"\n"
	    "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
	    "--b1--\n");
	assert_string_equal(m->body_text, "see attached");
	assert_true(m->has_attachment);
	assert_int_equal(m->n_attachments, 2);
	assert_string_equal(m->attachments[0].filename, "R\xc3\xa9sum\xc3\xa9.pdf");
	assert_string_equal(m->attachments[0].content_type, "application/pdf");
	assert_int_equal(m->attachments[0].size, 9);
	assert_string_equal(m->attachments[1].filename, "\xc3\xbc" "ber.png");
	assert_string_equal(m->attachments[1].content_type, "image/png");
	assert_int_equal(m->attachments[1].size, 8);
	assert_int_equal(m->warnings, 0);
	arca_mime_info_free(&m);
}

static void test_alternative(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: alt\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/alternative; boundary=XX\n\n"
	    "preamble\n--XX\nContent-Type: text/html; charset=utf-8\n\n<p>html version</p>\n"
	    "--XX\nContent-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n\nplain=20version caf=C3=A9\n"
	    "--XX--\n");
	assert_string_equal(m->body_text, "plain version caf\xc3\xa9");
	assert_false(m->has_attachment);
	arca_mime_info_free(&m);
}

static void test_html_only(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: html\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/html; charset=\"windows-1252\"\n\n"
	    "<html><head><title>T</title><style>p {color:red}</style>"
	    "<script>var x = '<p>hidden</p>';</script></head>"
	    "<body><p>Fish &amp; chips &euro;5 &#8211; &#x263A; caf\xe9</p>"
	    "<!-- a comment <p>no</p> --><div>next&nbsp;line</div></body></html>\n");
	assert_string_equal(m->body_text, "T\nFish & chips \xe2\x82\xac" "5 \xe2\x80\x93 "
	    "\xe2\x98\xba caf\xc3\xa9\nnext line");
	assert_null(strstr(m->body_text, "hidden"));
	assert_null(strstr(m->body_text, "color"));
	assert_int_equal(m->warnings, 0);
	arca_mime_info_free(&m);
}

static void test_nested_mixed(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: nested\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=outer\n\n"
	    "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
	    "--inner\nContent-Type: text/plain\n\nbody words\n"
	    "--inner\nContent-Type: text/html\n\n<b>body words</b>\n--inner--\n"
	    "--outer\nContent-Type: text/csv; name=data.csv\n"
	    "Content-Disposition: attachment; filename=data.csv\n\na,b,c\n1,2,3\n"
	    "--outer\nContent-Type: text/html\n"
	    "Content-Disposition: attachment; filename=page.html\n"
	    "\n<h1>Attached</h1><p>page</p>\n"
	    "--outer\nContent-Type: application/octet-stream\n"
	    "Content-Transfer-Encoding: base64\n\nAAECAw==\n"
	    "--outer--\n");
	assert_string_equal(m->body_text, "body words");
	assert_string_equal(m->attachment_text, "a,b,c\n1,2,3\nAttached\npage");
	assert_true(m->has_attachment);
	assert_int_equal(m->n_attachments, 3);
	assert_string_equal(m->attachments[0].filename, "data.csv");
	assert_string_equal(m->attachments[0].content_type, "text/csv");
	assert_int_equal(m->attachments[0].size, 11);
	assert_string_equal(m->attachments[1].content_type, "text/html");
	assert_string_equal(m->attachments[2].filename, "");
	assert_string_equal(m->attachments[2].content_type, "application/octet-stream");
	assert_int_equal(m->attachments[2].size, 4);
	arca_mime_info_free(&m);
}

static void test_rfc822(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: Fwd: inner\nFrom: a@b.example\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=o\n\n"
	    "--o\nContent-Type: text/plain\n\nsee below\n"
	    "--o\nContent-Type: message/rfc822\n\n"
	    "Subject: Inner subject\nFrom: Inner Person <INNER@c.example>\n\n"
	    "inner body text\n"
	    "--o--\n");
	assert_string_equal(m->subject, "Fwd: inner");
	assert_string_equal(m->body_text, "see below");
	assert_non_null(strstr(m->attachment_text, "Inner subject"));
	assert_non_null(strstr(m->attachment_text, "Inner Person <inner@c.example>"));
	assert_non_null(strstr(m->attachment_text, "inner body text"));
	assert_true(m->has_attachment);
	assert_int_equal(m->n_attachments, 1);
	assert_string_equal(m->attachments[0].content_type, "message/rfc822");
	assert_true(m->attachments[0].size > 40);
	arca_mime_info_free(&m);
}

static void test_latin1_undeclared(void **state)
{
	(void)state;
	arca_mime_info *m = parse("Subject: x\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n"
	    "Caf\xe9 cr\xe8me \x80 10 and valid \xc3\xbc too\n");
	assert_string_equal(m->body_text, "Caf\xc3\xa9 cr\xc3\xa8me \xe2\x82\xac 10 and valid "
	    "\xc3\xbc too\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_CHARSET);
	arca_mime_info_free(&m);

	/* declared charsets go through iconv; bad bytes are replaced */
	m = parse("Subject: x\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n");
	assert_string_equal(m->body_text, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n");
	assert_int_equal(m->warnings, 0);
	arca_mime_info_free(&m);

	m = parse("Subject: x\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/plain; charset=shift_jis\n\nab\x82\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_CHARSET);
	assert_non_null(strstr(m->body_text, "ab"));
	arca_mime_info_free(&m);

	m = parse("Subject: x\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/plain; charset=x-no-such-charset\n\nplain \xff\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_CHARSET);
	assert_string_equal(m->body_text, "plain \xc3\xbf\n");
	arca_mime_info_free(&m);
}

static void test_no_headers(void **state)
{
	(void)state;
	static const char junk[] = "\x01\x02junk\0with\0NULs \xff\xfe and text\n";
	arca_mime_info *m = parse_n(junk, sizeof(junk) - 1);
	assert_true(m->warnings & ARCA_MIME_WARN_NO_HEADERS);
	assert_true(m->warnings & ARCA_MIME_WARN_BINARY);
	assert_string_equal(m->warning, "no header block");
	assert_non_null(strstr(m->body_text, "junkwithNULs"));
	assert_int_equal(m->date, ARCA_MIME_DATE_NONE);
	assert_string_equal(m->subject, "");
	arca_mime_info_free(&m);

	m = parse("just a plain text file\nwith two lines\n");
	assert_true(m->warnings & ARCA_MIME_WARN_NO_HEADERS);
	assert_string_equal(m->body_text, "just a plain text file\nwith two lines\n");
	arca_mime_info_free(&m);

	m = parse_n("", 0);
	assert_true(m->warnings & ARCA_MIME_WARN_NO_HEADERS);
	assert_string_equal(m->body_text, "");
	arca_mime_info_free(&m);
}

static void test_missing_boundary(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: nb\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=xx\n\n"
	    "--xx\nContent-Type: text/plain\n\npart one\n"
	    "--xx\nContent-Type: text/html\n\n<p>part two</p>\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_BOUNDARY);
	assert_string_equal(m->warning, "multipart boundary missing");
	assert_non_null(strstr(m->body_text, "part one"));
	assert_non_null(strstr(m->body_text, "part two"));
	arca_mime_info_free(&m);

	m = parse("Subject: nb\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed\n\n--xx\nContent-Type: text/plain\n\nlost\n--xx--\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_BOUNDARY);
	arca_mime_info_free(&m);
}

static void test_bad_base64(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "Subject: b64\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
	    "aGVsbG8gd29ybGQ*!!\n");
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_ENCODING);
	assert_string_equal(m->body_text, "hello wor"); /* partial group lost */
	arca_mime_info_free(&m);
}

static char *deep_message(unsigned levels, size_t *len)
{
	arca_buf b;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: deep\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"), ARCA_OK);
	for (unsigned i = 0; i < levels; i++)
		assert_int_equal(arca_buf_printf(&b, "Content-Type: multipart/mixed; "
		    "boundary=b%u\n\n--b%u\n", i, i), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "Content-Type: text/plain\n\ndeep leaf\n"), ARCA_OK);
	for (unsigned i = levels; i-- > 0;)
		assert_int_equal(arca_buf_printf(&b, "--b%u--\n", i), ARCA_OK);
	return arca_buf_steal(&b, len);
}

static void test_deep_nesting(void **state)
{
	(void)state;
	size_t len;
	char *d = deep_message(10, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_string_equal(m->body_text, "deep leaf");
	assert_int_equal(m->warnings, 0);
	arca_mime_info_free(&m);
	free(d);

	clock_t t0 = clock();
	d = deep_message(3000, &len);
	m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_null(strstr(m->body_text, "deep leaf"));
	arca_mime_info_free(&m);
	free(d);

	/* Many "--" lines under deep nesting: GMime's cost is lines x depth. */
	arca_buf b;
	arca_buf_init(&b, SIZE_MAX);
	d = deep_message(1000, &len);
	assert_int_equal(arca_buf_append(&b, d, len - 8000), ARCA_OK);
	free(d);
	for (int i = 0; i < 300000; i++)
		assert_int_equal(arca_buf_append(&b, "--\n", 3), ARCA_OK);
	d = arca_buf_steal(&b, &len);
	m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	arca_mime_info_free(&m);
	free(d);
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0);
}

static void test_many_parts(void **state)
{
	(void)state;
	arca_buf b;
	size_t len;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: many\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=p\n\n"), ARCA_OK);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(arca_buf_printf(&b, "--p\nContent-Type: application/x-%d\n"
		    "Content-Disposition: attachment; filename=f%d.bin\n\nxyz\n", i, i), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "--p--\n"), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_true(m->has_attachment);
	assert_true(m->n_attachments <= ARCA_MIME_MAX_ATTACHMENTS);
	assert_true(m->n_attachments > 0);
	assert_string_equal(m->attachments[0].filename, "f0.bin");
	assert_string_equal(m->attachments[0].content_type, "application/x-0");
	arca_mime_info_free(&m);
	free(d);
}

/* The bounds below apply before GMime builds anything: these inputs used to cost GMime
 * hundreds of MB. Each must still yield the text that fits, with a limit warning. */
static void test_long_subject(void **state)
{
	(void)state;
	arca_buf b;
	size_t len;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "From: a@b.example\nSubject: first words \xc3\xa9t\xc3\xa9"), ARCA_OK);
	for (size_t i = 0; b.len < 10u * 1024 * 1024; i++)
		assert_int_equal(arca_buf_appendz(&b, i % 7 == 6 ? "\n \xc3\xa9l\xc3\xa8ve" :
		    " lorem\xe2\x80\x94ipsum"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "\nTo: c@d.example\n\nthe body\n"), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "header field too long, truncated for indexing");
	assert_true(strncmp(m->subject, "first words \xc3\xa9t\xc3\xa9 lorem", 20) == 0);
	assert_true(strlen(m->subject) > ARCA_MIME_MAX_FIELD / 2);
	assert_true(strlen(m->subject) <= ARCA_MIME_MAX_FIELD);
	assert_string_equal(m->to, "c@d.example");
	assert_string_equal(m->from, "a@b.example");
	assert_int_equal(m->date, 1704067200);
	assert_string_equal(m->body_text, "the body\n");
	arca_mime_info_free(&m);
	free(d);

	/* A 12 MB header block (two long fields, CRLF) */
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: hello"), ARCA_OK);
	for (int i = 0; i < 600000; i++)
		assert_int_equal(arca_buf_appendz(&b, " word word"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "\r\nX-Long: "), ARCA_OK);
	for (int i = 0; i < 600000; i++)
		assert_int_equal(arca_buf_appendz(&b, "yyyyyyyyyy"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\nbody \xc3\xa9\r\n"), ARCA_OK);
	d = arca_buf_steal(&b, &len);
	m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_true(strncmp(m->subject, "hello word word", 15) == 0);
	assert_int_equal(m->date, 1704067200);
	assert_string_equal(m->body_text, "body \xc3\xa9\n");
	arca_mime_info_free(&m);
	free(d);
}

static void test_many_addresses(void **state)
{
	(void)state;
	arca_buf b;
	size_t len;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: many\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nTo: First <first@x.example>"), ARCA_OK);
	for (int i = 0; i < 1600000; i++)
		assert_int_equal(arca_buf_appendz(&b, i % 10 == 9 ? ",\n a@b.c" : ",a@b.c"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "\nCc: cc@x.example\n\nbody\n"), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "header field too long, truncated for indexing");
	assert_true(strncmp(m->to, "First <first@x.example>, a@b.c, a@b.c", 37) == 0);
	/* cut after a whole address */
	assert_true(strlen(m->to) > 5 && strcmp(m->to + strlen(m->to) - 5, "a@b.c") == 0);
	assert_string_equal(m->cc, "cc@x.example");
	assert_string_equal(m->body_text, "body\n");
	arca_mime_info_free(&m);
	free(d);
}

static void test_many_header_fields(void **state)
{
	(void)state;
	arca_buf b;
	size_t len;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: lots\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"), ARCA_OK);
	for (int i = 0; i < 1000000; i++)
		assert_int_equal(arca_buf_printf(&b, "X-H%d: v\n", i), ARCA_OK);
	/* beyond the budget, only Content-* fields (cut short) are kept */
	assert_int_equal(arca_buf_appendz(&b, "From: late@x.example\n"
	    "Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n"), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "too many header fields, rest not indexed");
	assert_string_equal(m->subject, "lots");
	assert_string_equal(m->from, "");
	assert_string_equal(m->body_text, "caf\xc3\xa9\n");
	arca_mime_info_free(&m);
	free(d);

	/* Part headers: a block over the byte budget */
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: parts\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=\"=b=\"\n\n--=b=\n"), ARCA_OK);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(arca_buf_printf(&b, "X-H%d: %0200d\n", i, i), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "Content-Type: text/plain\n\npart one\n"
	    "--=b=\nContent-Type: text/plain\n\npart two\n--=b=--\n"), ARCA_OK);
	d = arca_buf_steal(&b, &len);
	m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "header block too large, rest not indexed");
	assert_string_equal(m->body_text, "part one\npart two");
	arca_mime_info_free(&m);
	free(d);
}

static void test_parts_cut(void **state)
{
	(void)state;
	arca_buf b;
	size_t len;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: parts\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed;\n boundary=\"----=_Part_1\"\n\n"
	    "-- \nnot a boundary\n"), ARCA_OK);
	for (int i = 0; i < 200000; i++)
		assert_int_equal(arca_buf_printf(&b, "------=_Part_1\nContent-Type: text/plain\n\n"
		    "t%d\n", i), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "------=_Part_1--\n"), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "too many MIME parts, rest not indexed");
	assert_true(strncmp(m->body_text, "t0\nt1\nt2\n", 9) == 0);
	assert_non_null(strstr(m->body_text, "\nt990\n"));
	assert_null(strstr(m->body_text, "t1200"));
	arca_mime_info_free(&m);
	free(d);

	/* Lines starting with "--" that are no boundary do not count. */
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: dashes\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=xyz\n\n--xyz\n\nstart\n"), ARCA_OK);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(arca_buf_appendz(&b, "-----\n"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "end\n--xyz--\n"), ARCA_OK);
	d = arca_buf_steal(&b, &len);
	m = parse_n(d, len);
	assert_int_equal(m->warnings, 0);
	assert_non_null(strstr(m->body_text, "-----\nend"));
	arca_mime_info_free(&m);
	free(d);
}

static void test_parse_cap(void **state)
{
	(void)state;
	size_t len = ARCA_MIME_MAX_PARSE + 1024u * 1024u, hl;
	const char *h = "Subject: huge\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: multipart/mixed; boundary=q\n\n--q\n\nfirst part\n"
	    "--q\nContent-Type: application/octet-stream\n\n";
	char *d = malloc(len);
	assert_non_null(d);
	hl = strlen(h);
	memcpy(d, h, hl);
	memset(d + hl, 'z', len - hl);
	for (size_t i = hl + 100; i < len; i += 100)
		d[i] = '\n';
	memcpy(d + len - 20, "\n--q--\n", 7);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_string_equal(m->warning, "message too large, only the first 64 MiB indexed");
	assert_string_equal(m->subject, "huge");
	assert_string_equal(m->body_text, "first part");
	assert_int_equal(m->n_attachments, 1);
	assert_true(m->attachments[0].size < ARCA_MIME_MAX_PARSE);
	assert_true(m->attachments[0].size > ARCA_MIME_MAX_PARSE - 1024);
	arca_mime_info_free(&m);
	free(d);
}

static void test_dates(void **state)
{
	(void)state;
	arca_mime_info *m = parse("Subject: d\nDate: not a date at all\n\nx\n");
	assert_int_equal(m->date, ARCA_MIME_DATE_NONE);
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_DATE);
	arca_mime_info_free(&m);

	m = parse("Subject: d\n\nx\n");
	assert_int_equal(m->date, ARCA_MIME_DATE_NONE);
	assert_true(m->warnings & ARCA_MIME_WARN_BAD_DATE);
	assert_string_equal(m->warning, "no Date header");
	arca_mime_info_free(&m);

	m = parse("Subject: d\nDate: 1 Jan 2000 00:00:00 GMT\n\nx\n");
	assert_int_equal(m->date, 946684800);
	assert_false(m->warnings & ARCA_MIME_WARN_BAD_DATE);
	arca_mime_info_free(&m);
}

static void test_addresses(void **state)
{
	(void)state;
	arca_mime_info *m = parse(
	    "From: MiXeD <MiXeD.CaSe@EXAMPLE.Com>\n"
	    "To: Team: One <ONE@x.example>, two@X.example;, three@x.example\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n\n");
	assert_string_equal(m->from, "MiXeD <mixed.case@example.com>");
	assert_string_equal(m->to, "One <one@x.example>, two@x.example, three@x.example");
	arca_mime_info_free(&m);
}

static void test_text_limit(void **state)
{
	(void)state;
	size_t n = ARCA_MIME_MAX_TEXT + 1000, len;
	arca_buf b;
	arca_buf_init(&b, SIZE_MAX);
	assert_int_equal(arca_buf_appendz(&b, "Subject: big\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Content-Type: text/plain; charset=utf-8\n\n"), ARCA_OK);
	for (size_t i = 0; i < n / 2; i++)
		assert_int_equal(arca_buf_append(&b, "\xc3\xa9", 2), ARCA_OK);
	char *d = arca_buf_steal(&b, &len);
	arca_mime_info *m = parse_n(d, len);
	assert_true(m->warnings & ARCA_MIME_WARN_LIMIT);
	assert_true(m->body_text_len <= ARCA_MIME_MAX_TEXT);
	assert_true(m->body_text_len > ARCA_MIME_MAX_TEXT - 4);
	arca_mime_info_free(&m);
	free(d);

	arca_error err;
	assert_int_equal(arca_mime_parse("x", (size_t)ARCA_MAX_MESSAGE_SIZE + 1, &m, &err),
	    ARCA_ERR_LIMIT);
	assert_null(m);
}

static void check_html(const char *in, const char *want)
{
	size_t n;
	char *t = arca_mime_html_to_text(in, strlen(in), &n);
	assert_non_null(t);
	assert_string_equal(t, want);
	assert_int_equal(strlen(t), n);
	assert_true(n <= strlen(in));
	free(t);
}

static void test_html_to_text(void **state)
{
	(void)state;
	check_html("", "");
	check_html("plain", "plain");
	check_html("<p>one</p><p>two</p>", "one\ntwo");
	check_html("a<br>b<br/>c", "a\nb\nc");
	check_html("  lots \t of\n\n  space  ", "lots of space");
	check_html("<SCRIPT type=x>alert('<b>')</script>after", "after");
	check_html("<style>a{}</style><STYLE>b{}</STYLE >text", "text");
	check_html("x<!-- comment -->y", "xy");
	check_html("x<!-- unterminated", "x");
	check_html("&lt;tag&gt; &amp;&amp; &quot;q&quot; &apos;", "<tag> && \"q\" '");
	check_html("&#65;&#x42;&#X43;&#128;&#0;", "ABC\xe2\x82\xac\xef\xbf\xbd");
	check_html("caf&eacute; &copy; &euro; &hellip;&mdash;&nbsp;x",
	    "caf\xc3\xa9 \xc2\xa9 \xe2\x82\xac \xe2\x80\xa6\xe2\x80\x94 x");
	check_html("AT&T &unknown; & alone &amp", "AT&T &unknown; & alone &");
	check_html("a < b > c", "a < b > c");
	check_html("<a href=\"x>y\" title='>'>link</a>", "link");
	check_html("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc");
	check_html("<ul><li>one<li>two</ul>", "one\ntwo");
	check_html("<h1>T</h1>body<div>d</div>", "T\nbody\nd");
	check_html("<!DOCTYPE html><?xml x?>ok", "ok");
	check_html("<unterminated", "");
	check_html("&#1114112;&#xD800;&#99999999999;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check_html("<script>never closed", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_rfc2047),
		cmocka_unit_test(test_rfc2231_filename),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_html_only),
		cmocka_unit_test(test_nested_mixed),
		cmocka_unit_test(test_rfc822),
		cmocka_unit_test(test_latin1_undeclared),
		cmocka_unit_test(test_no_headers),
		cmocka_unit_test(test_missing_boundary),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_many_parts),
		cmocka_unit_test(test_long_subject),
		cmocka_unit_test(test_many_addresses),
		cmocka_unit_test(test_many_header_fields),
		cmocka_unit_test(test_parts_cut),
		cmocka_unit_test(test_parse_cap),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_text_limit),
		cmocka_unit_test(test_html_to_text),
	};
	arca_mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
