/* IMAP SEARCH candidates (src/index/imap.c): never missing a message whose IMAP text holds the
 * string: words at a word start, inside longer words, only in xhdr or xbody, split across
 * tables, after full case folding; documents without xtext and documents newer than the
 * vocabulary are candidates; a version 2 index is read as it is. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "index/index.h"
#include "fixture.h"

#define T2020 1577836800 /* 2020-01-01T00:00Z */
#define FOLDER 7u

/* Adds message id with the MIME reader's fields (subject, body) and IMAP's text (headers;
 * body: xbody, or NULL when IMAP reads the body as the MIME reader does; hdr NULL: no xtext). */
static void add_as(fixture *f, uint64_t id, const char *subject, const char *body, const char *hdr,
                   const char *xbody, const char *imap_subject)
{
	arca_mime_info m;
	arca_index_xtext x = {0};
	arca_index_doc d = {.msg_id = id, .folder_id = FOLDER, .date = T2020 + (int64_t)id * 3600,
	                    .size = 100, .info = &m, .x = hdr != NULL ? &x : NULL};
	arca_error err;
	memset(&m, 0, sizeof(m));
	m.subject = (char *)subject;
	m.from = m.sender = m.reply_to = m.to = m.cc = m.bcc = (char *)"";
	m.message_id = m.in_reply_to = m.references = (char *)"";
	m.body_text = (char *)body;
	m.body_text_len = strlen(body);
	m.attachment_text = (char *)"";
	m.warning = (char *)"";
	if (hdr != NULL) {
		x.headers = (char *)hdr;
		x.headers_len = strlen(hdr);
		x.body = (char *)(xbody != NULL ? xbody : body);
		x.body_len = strlen(x.body);
		x.fields[ARCA_INDEX_X_SUBJECT] = (char *)imap_subject;
		x.fields_len[ARCA_INDEX_X_SUBJECT] = strlen(imap_subject);
	}
	assert_int_equal(arca_index_add(f->ix, &d, &err), ARCA_OK);
}

/* The MIME reader and IMAP decode the subject alike. */
static void add(fixture *f, uint64_t id, const char *subject, const char *body, const char *hdr,
                const char *xbody)
{
	add_as(f, id, subject, body, hdr, xbody, subject);
}

/* The candidates as "1,3,4" ("" for none, "INVALID" when the index cannot narrow down). */
static const char *cands(fixture *f, const char *text, unsigned fields)
{
	static char out[256];
	uint64_t *ids = NULL;
	size_t n = 0, o = 0;
	arca_error err;
	arca_status st = arca_index_imap_words(f->ix, FOLDER, text, strlen(text), fields, &ids, &n, &err);
	if (st == ARCA_ERR_INVALID)
		return "INVALID";
	assert_int_equal(st, ARCA_OK);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
	free(ids);
	return out;
}

#define TEXT (ARCA_INDEX_F_ALL | ARCA_INDEX_F_XHDR | ARCA_INDEX_F_XBODY)
#define BODY (ARCA_INDEX_F_BODY | ARCA_INDEX_F_ATTACHMENT | ARCA_INDEX_F_XBODY)
#define HDRS (ARCA_INDEX_F_HEADERS | ARCA_INDEX_F_XHDR)
#define COLS (ARCA_INDEX_F_BODY | ARCA_INDEX_F_ATTACHMENT) /* no x tables: no doc 5 */

static void corpus(fixture *f)
{
	add(f, 1, "Quarterly invoice", "Please pay the invoices by Friday.",
	    "Subject: Quarterly invoice\nReceived: from relay.example.net by mx\n", NULL);
	add(f, 2, "Re: lunch", "Paid. Foobar attached.",
	    "Subject: Re: lunch\nX-Mailer: Gnus 5.9\n", NULL);
	/* the MIME reader kept the plain alternative only; IMAP reads the HTML one too */
	add(f, 3, "News", "plain words only",
	    "Subject: News\nX-Spam: ham\n", "plain words only\nhtmlonly words and more");
	/* full case folding: IMAP matches "strasse" in "Straße" */
	add(f, 4, "Adresse", "Hauptstra\xc3\x9f" "e 5",
	    "Subject: Adresse\n", NULL);
	/* indexed without xtext: a candidate of every key that needs it */
	add(f, 5, "old", "old message", NULL, NULL);
}

static void test_word_start_and_inside(void **state)
{
	fixture *f = *state;
	corpus(f);
	assert_string_equal(cands(f, "invoice", COLS), "1");          /* prefix of "invoices" */
	assert_string_equal(cands(f, "nvoice", COLS), "1");           /* inside "invoices" */
	assert_string_equal(cands(f, "oobar", COLS), "2");            /* inside "Foobar" */
	assert_string_equal(cands(f, "obar attached", COLS), "2");    /* ends "Foobar", then a word */
	assert_string_equal(cands(f, "oba attached", COLS), "");      /* "oba" does not end a word */
	assert_string_equal(cands(f, "pay the invoices", COLS), "1");
	assert_string_equal(cands(f, "invoices by", COLS), "1");
	assert_string_equal(cands(f, "Friday", COLS), "1");
	assert_string_equal(cands(f, "nosuchword", COLS), "");
	assert_string_equal(cands(f, "!!", COLS), "INVALID");        /* no word at all */
}

static void test_xtables(void **state)
{
	fixture *f = *state;
	corpus(f);
	/* words only IMAP's header text has, plus the document without xtext */
	assert_string_equal(cands(f, "relay.example", TEXT), "1,5");
	assert_string_equal(cands(f, "Gnus", HDRS), "2,5");
	assert_string_equal(cands(f, "elay", HDRS), "1,5");
	/* the subject column and xhdr together */
	assert_string_equal(cands(f, "quarterly", HDRS), "1,5");
	assert_string_equal(cands(f, "quarterly", ARCA_INDEX_F_SUBJECT), "1");
	/* a word only in the alternative the MIME reader skipped */
	assert_string_equal(cands(f, "htmlonly", BODY), "3,5");
	assert_string_equal(cands(f, "tmlonl", TEXT), "3,5");
	/* words of one needle found in different tables */
	assert_string_equal(cands(f, "invoice ham", TEXT), "5");
	assert_string_equal(cands(f, "ham plain", TEXT), "3,5");
	/* without the x tables the document without xtext is not offered */
	assert_string_equal(cands(f, "old", ARCA_INDEX_F_ALL), "5");
}

/* Field keys: the column, plus the words of IMAP's value the column lacks (xfield); words of
 * other fields do not make a document a candidate. */
static void test_fields(void **state)
{
	fixture *f = *state;
	const unsigned subj = ARCA_INDEX_F_SUBJECT | ARCA_INDEX_F_XFIELD;
	corpus(f);
	add_as(f, 6, "Hello World", "body six", "Subject: Hello World Extra\n", NULL,
	       "Hello World Extra");
	assert_string_equal(cands(f, "extra", subj), "5,6");
	assert_string_equal(cands(f, "xtra", subj), "5,6");
	assert_string_equal(cands(f, "world extra", subj), "5,6");
	assert_string_equal(cands(f, "quarterly", subj), "1,5");
	assert_string_equal(cands(f, "relay", subj), "5");      /* only in Received */
	assert_string_equal(cands(f, "relay", HDRS), "1,5");
}

static void test_folding(void **state)
{
	fixture *f = *state;
	corpus(f);
	add(f, 13, "marks", "cafe\xcc\x81sbarbaz", "Subject: marks\n", NULL); /* before the vocabulary */
	assert_string_equal(cands(f, "strasse", BODY), "4,5");
	assert_string_equal(cands(f, "hauptstrasse", BODY), "4,5");
	assert_string_equal(cands(f, "STRA\xc3\x9f" "E", BODY), "INVALID"); /* needs a scan */
	assert_string_equal(cands(f, "ADRESSE", TEXT), "4,5");
	/* a needle that starts with a non-word character gets the folded words too */
	assert_string_equal(cands(f, " STRASSE 5", BODY), "4,5");
	/* a needle starting with a combining mark may start inside a word ("cafe\u0301sbar") */
	assert_string_equal(cands(f, "\xcc\x81sbarbaz", COLS), "13");
	/* U+0345 in a needle: the check folds it to a letter, the tokenizer drops it */
	assert_string_equal(cands(f, "\xce\xb1\xcd\x85\xce\xb2", BODY), "INVALID");
	/* bytes that are not UTF-8: IMAP compares them as bytes, the index cannot help */
	assert_string_equal(cands(f, "caf\xc3", BODY), "INVALID");
	assert_string_equal(cands(f, "\xb6tter", BODY), "INVALID");
}

/* Documents indexed after the vocabulary was read are found too (by their words at a word
 * start as ever, and as candidates for inside-word matches until it is read again). */
static void test_vocabulary_follows(void **state)
{
	fixture *f = *state;
	arca_error err;
	corpus(f);
	assert_string_equal(cands(f, "oobar", COLS), "2");
	assert_int_equal(arca_index_begin(f->ix, &err), ARCA_OK);
	add(f, 9, "later", "Snafoobarx here", "Subject: later\n", NULL);
	assert_int_equal(arca_index_commit(f->ix, 2, &err), ARCA_OK);
	assert_string_equal(cands(f, "oobar", COLS), "2,9");
	assert_string_equal(cands(f, "nafoo", COLS), "9");
	/* a rebuilt index: the vocabulary is read again */
	assert_int_equal(arca_index_clear(f->ix, &err), ARCA_OK);
	add(f, 11, "again", "zzfoobarzz", "Subject: again\n", NULL);
	assert_string_equal(cands(f, "oobar", COLS), "11");
}

/* Closes the fixture's index and turns its file into what schema version 2 wrote: no x tables,
 * no document flagged as having them. */
static void as_version2(fixture *f)
{
	sqlite3 *db;
	arca_index_close(&f->ix);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE xhdr; DROP TABLE xbody; DROP TABLE xfield;"
	                                  "UPDATE state SET v = 2 WHERE k = 'version';"
	                                  "UPDATE docs SET flags = flags & ~4;", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
}

/* A cleared index refilled to the same size and batch: the words are read again (the index's
 * generation changed), so a word inside a new one is found. */
static void test_vocabulary_generation(void **state)
{
	fixture *f = *state;
	arca_error err;
	add(f, 1, "one", "alphabet", "Subject: one\n", NULL);
	assert_string_equal(cands(f, "lphab", COLS), "1");
	assert_int_equal(arca_index_clear(f->ix, &err), ARCA_OK);
	add(f, 1, "one", "omegaword", "Subject: one\n", NULL);
	assert_string_equal(cands(f, "megaw", COLS), "1");
	assert_string_equal(cands(f, "lphab", COLS), "");
}

/* A handle opened on a version 2 index sees the tables a writer adds later. */
static void test_version_raised_meanwhile(void **state)
{
	fixture *f = *state;
	arca_index *ro = NULL, *w = NULL;
	arca_error err;
	uint64_t *ids = NULL;
	size_t n = 0;
	add(f, 1, "one", "first body", "Subject: one\n", NULL);
	as_version2(f);
	assert_int_equal(arca_index_open(f->path, ARCA_INDEX_READONLY, &ro, &err), ARCA_OK);
	assert_int_equal(arca_index_open(f->path, ARCA_INDEX_CREATE, &w, &err), ARCA_OK);
	f->ix = w;
	add(f, 2, "two", "second body", "Subject: two\nX-Mailer: zebramail\n", NULL);
	assert_int_equal(arca_index_imap_words(ro, FOLDER, "zebramail", 9, TEXT, &ids, &n, &err), ARCA_OK);
	assert_int_equal(n, 2); /* the new document by its X-Mailer, the old one as unknown */
	free(ids);
	arca_index_close(&ro);
}

/* An index written before xhdr and xbody existed (schema version 2) still answers. */
static void test_version2(void **state)
{
	fixture *f = *state;
	arca_error err;
	corpus(f);
	as_version2(f);
	assert_int_equal(arca_index_open(f->path, ARCA_INDEX_READONLY, &f->ix, &err), ARCA_OK);
	assert_string_equal(cands(f, "nvoice", BODY), "1,2,3,4,5");
	assert_string_equal(cands(f, "nvoice", ARCA_INDEX_F_BODY), "1");
	arca_index_close(&f->ix);
	/* a writable open upgrades it; the old documents stay candidates until rebuilt */
	assert_int_equal(arca_index_open(f->path, ARCA_INDEX_CREATE, &f->ix, &err), ARCA_OK);
	add(f, 12, "new", "newer text", "Subject: new\nX-Tag: zebra\n", NULL);
	assert_string_equal(cands(f, "zebra", TEXT), "1,2,3,4,5,12");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_word_start_and_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xtables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vocabulary_follows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vocabulary_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_raised_meanwhile, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
