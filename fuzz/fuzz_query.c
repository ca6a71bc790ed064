/* libFuzzer harness for the search query parser: any bytes must parse or fail cleanly, and
 * every FTS5 expression the parser produces must be valid FTS5 syntax for the index's
 * columns (so that no input can inject FTS5 syntax or cause a database error). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "index/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3_stmt *match_stmt(void)
{
	static sqlite3 *db;
	static sqlite3_stmt *st;
	if (st != NULL)
		return st;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db,
	                 "CREATE VIRTUAL TABLE fts USING fts5(subject, from_, to_, cc, bcc, body,"
	                 " attachment, filename, msgid, flags, content='',"
	                 " tokenize='unicode61 remove_diacritics 2', detail=full);"
	                 "INSERT INTO fts(rowid, subject, body, flags) VALUES(1, 'hello', 'a b',"
	                 " 'doc');",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM fts WHERE fts MATCH ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		abort();
	return st;
}

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
		if (fts != NULL) {
			sqlite3_stmt *st = match_stmt();
			int rc;
			sqlite3_bind_text(st, 1, fts, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc != SQLITE_ROW) {
				fprintf(stderr, "query %s -> %s: %s\n", text, fts,
				        sqlite3_errmsg(sqlite3_db_handle(st)));
				abort();
			}
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
		}
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
