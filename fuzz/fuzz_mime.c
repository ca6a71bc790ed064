/* libFuzzer harness for src/mime: any bytes must parse without crashing, leaking or
 * producing invalid UTF-8. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const char *s, size_t len)
{
	if (!g_utf8_validate(s, (gssize)len, NULL) || strlen(s) != len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arca_mime_info *info = NULL;
	arca_error err;
	arca_mime_init();
	if (arca_mime_parse(data, size, &info, &err) != ARCA_OK)
		return 0;
	check_utf8(info->subject, strlen(info->subject));
	check_utf8(info->from, strlen(info->from));
	check_utf8(info->to, strlen(info->to));
	check_utf8(info->body_text, info->body_text_len);
	check_utf8(info->attachment_text, info->attachment_text_len);
	for (size_t i = 0; i < info->n_attachments; i++)
		check_utf8(info->attachments[i].filename, strlen(info->attachments[i].filename));
	arca_mime_info_free(&info);
	return 0;
}
