/* libFuzzer harness for the search query parser: any bytes must parse or fail cleanly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	arca_query *q = NULL;
	arca_error err;
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (arca_query_parse(text, &q, &err) == ARCA_OK) {
		const char *fts = arca_query_fts(q);
		/* touch every accessor so ASan sees any bad pointer */
		if (fts != NULL && strlen(fts) == 0)
			abort();
		for (size_t i = 0; i < arca_query_n_highlights(q); i++)
			(void)strlen(arca_query_highlight(q, i));
		for (size_t i = 0; i < arca_query_n_folders(q); i++)
			(void)strlen(arca_query_folder(q, i));
		for (size_t i = 0; i < arca_query_n_archives(q); i++)
			(void)strlen(arca_query_archive(q, i));
		arca_query_free(&q);
	} else if (err.msg[0] == '\0') {
		abort(); /* every failure must explain itself */
	}
	free(text);
	return 0;
}
