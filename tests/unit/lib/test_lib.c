/* Unit tests for src/lib: bounded buffers, error helpers, path helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "lib/fs.h"

static void test_buf_cap(void **state)
{
	arca_buf b;
	(void)state;
	arca_buf_init(&b, 8);
	assert_int_equal(arca_buf_appendz(&b, "abcd"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "efgh"), ARCA_OK);
	assert_int_equal(arca_buf_appendz(&b, "i"), ARCA_ERR_LIMIT);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	arca_buf_free(&b);
}

static void test_buf_printf(void **state)
{
	arca_buf b;
	(void)state;
	arca_buf_init(&b, 1024);
	assert_int_equal(arca_buf_printf(&b, "%d-%s", 42, "x"), ARCA_OK);
	assert_int_equal(arca_buf_printf(&b, "%s", "yz"), ARCA_OK);
	assert_string_equal(b.data, "42-xyz");
	arca_buf_free(&b);
}

static void test_error_errno(void **state)
{
	arca_error e;
	(void)state;
	assert_int_equal(arca_error_errno(&e, ENOSPC, "write %s", "f"), ARCA_ERR_NOSPACE);
	assert_non_null(strstr(e.msg, "write f: "));
	assert_string_equal(arca_status_name(ARCA_ERR_NOSPACE), "nospace");
}

static void test_fs_expand(void **state)
{
	char out[64];
	(void)state;
	assert_int_equal(arca_fs_expand(out, sizeof(out), "/base", "~/stores/1"), ARCA_OK);
	assert_string_equal(out, "/base/stores/1");
	assert_int_equal(arca_fs_expand(out, sizeof(out), "/base", "/abs"), ARCA_OK);
	assert_string_equal(out, "/abs");
	assert_int_equal(arca_fs_expand(out, sizeof(out), "/base/", "rel"), ARCA_OK);
	assert_string_equal(out, "/base/rel");
	assert_int_equal(arca_fs_expand(out, 8, "/base", "much-too-long"), ARCA_ERR_LIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_printf),
		cmocka_unit_test(test_error_errno),
		cmocka_unit_test(test_fs_expand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
