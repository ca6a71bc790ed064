/* Unit tests for src/sources: mbox splitting and mboxrd quoting round trips, directory and
 * Maildir walking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fs.h"
#include "sources/files.h"

typedef struct {
	char *msgs[16];
	size_t lens[16];
	size_t n;
} collected;

static int collect(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	collected *c = ctx;
	(void)offset;
	assert_true(c->n < 16);
	c->msgs[c->n] = malloc(len + 1);
	memcpy(c->msgs[c->n], msg, len);
	c->msgs[c->n][len] = '\0';
	c->lens[c->n] = len;
	c->n++;
	return 0;
}

static void collected_free(collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i]);
}

/* Messages whose exact bytes must survive export to mbox and import back. */
static const char *samples[] = {
	"Subject: a\n\nplain body\n",
	"Subject: no final newline\n\nbody",
	"Subject: b\n\nFrom the start of a line\n>From already quoted\n>>From twice\n",
	"From: first line looks like From_\n\nx\n",
	"Subject: ends with blank lines\n\nbody\n\n\n",
	"",
	"\n",
	"Subject: crlf\r\n\r\nFrom crlf\r\n",
};

static void test_mbox_roundtrip(void **state)
{
	arca_buf mbox;
	collected c = {0};
	uint64_t count = 0;
	size_t n = sizeof(samples) / sizeof(samples[0]);
	(void)state;
	arca_buf_init(&mbox, 1 << 20);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(arca_mbox_append(&mbox, (const uint8_t *)samples[i], strlen(samples[i]),
		                                  1000000000),
		                 ARCA_OK);
	assert_int_equal(arca_mbox_split((const uint8_t *)mbox.data, mbox.len, collect, &c, &count, NULL),
	                 ARCA_OK);
	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(c.lens[i], strlen(samples[i]));
		assert_memory_equal(c.msgs[i], samples[i], c.lens[i]);
	}
	collected_free(&c);
	arca_buf_free(&mbox);
}

static void test_mbox_mboxo(void **state)
{
	/* a classic mbox written by another program: blank line before each From_ line */
	const char *text = "From a@b Mon Jan  1 00:00:00 2001\nSubject: 1\n\none\n\n"
	                   "From c@d Mon Jan  1 00:00:00 2001\nSubject: 2\n\ntwo\n\n";
	collected c = {0};
	uint64_t count = 0;
	(void)state;
	assert_int_equal(arca_mbox_split((const uint8_t *)text, strlen(text), collect, &c, &count, NULL),
	                 ARCA_OK);
	assert_int_equal(count, 2);
	assert_string_equal(c.msgs[0], "Subject: 1\n\none\n");
	assert_string_equal(c.msgs[1], "Subject: 2\n\ntwo\n");
	collected_free(&c);
}

static void test_not_mbox(void **state)
{
	arca_error err;
	(void)state;
	assert_int_equal(arca_mbox_split((const uint8_t *)"Subject: x\n", 11, NULL, NULL, NULL, &err),
	                 ARCA_ERR_INVALID);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_maildir_walk(void **state)
{
	char tmpl[] = "/tmp/arca-test-src-XXXXXX";
	char *dir = mkdtemp(tmpl);
	char p[512];
	arca_source *src;
	arca_source_msg m;
	arca_error err;
	int top = 0, sub = 0;
	(void)state;
	assert_non_null(dir);
	snprintf(p, sizeof(p), "%s/cur", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/new", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/.Lists.Arca", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/.Lists.Arca/cur", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cur/1:2,S", dir);
	write_text(p, "Subject: top cur\n\nx\n");
	snprintf(p, sizeof(p), "%s/new/2", dir);
	write_text(p, "Subject: top new\n\nx\n");
	snprintf(p, sizeof(p), "%s/tmp/3", dir);
	write_text(p, "Subject: in tmp, not delivered\n\nx\n");
	snprintf(p, sizeof(p), "%s/.Lists.Arca/cur/4:2,", dir);
	write_text(p, "Subject: sub\n\nx\n");
	assert_int_equal(arca_source_open(dir, ARCA_SRC_AUTO, &src, &err), ARCA_OK);
	assert_int_equal(arca_source_get_format(src), ARCA_SRC_MAILDIR);
	while (arca_source_next(src, &m, &err) == ARCA_OK) {
		if (m.subfolder[0] == '\0')
			top++;
		else {
			assert_string_equal(m.subfolder, "Lists/Arca");
			sub++;
		}
	}
	assert_int_equal(top, 2);
	assert_int_equal(sub, 1);
	arca_source_close(&src);
	assert_null(src);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

static void test_missing_source(void **state)
{
	arca_source *src;
	arca_error err;
	(void)state;
	assert_int_equal(arca_source_open("/nonexistent/arca", ARCA_SRC_AUTO, &src, &err),
	                 ARCA_ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "/nonexistent/arca"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mbox_roundtrip), cmocka_unit_test(test_mbox_mboxo),
		cmocka_unit_test(test_not_mbox),       cmocka_unit_test(test_maildir_walk),
		cmocka_unit_test(test_missing_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
