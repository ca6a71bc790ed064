/* libFuzzer harness for IMAP SEARCH's candidate lookup (src/index/imap.c): the string of a
 * text key comes from the client. Any bytes, with any fields, must give candidates or
 * ARCA_ERR_INVALID ("check every message"), never a database error: the MATCH expressions
 * built from the string's words, the longer words around them and the case-folded ones must
 * always be valid FTS5. The index is a small one made once, with words inside words, folded
 * words and quotes in it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static arca_index *ix;

static void add(uint64_t id, const char *subject, const char *body, const char *hdr)
{
	arca_mime_info m;
	arca_index_xtext x = {0};
	arca_index_doc d = {.msg_id = id, .folder_id = 1, .date = 1577836800 + (int64_t)id * 3600,
	                    .size = 100, .info = &m, .x = &x};
	arca_error err;
	memset(&m, 0, sizeof(m));
	m.subject = (char *)subject;
	m.from = m.sender = m.reply_to = m.to = m.cc = m.bcc = (char *)"";
	m.message_id = m.in_reply_to = m.references = (char *)"";
	m.body_text = (char *)body;
	m.body_text_len = strlen(body);
	m.attachment_text = (char *)"";
	m.warning = (char *)"";
	x.headers = (char *)hdr;
	x.headers_len = strlen(hdr);
	x.body = (char *)body;
	x.body_len = strlen(body);
	x.fields[ARCA_INDEX_X_SUBJECT] = (char *)subject;
	x.fields_len[ARCA_INDEX_X_SUBJECT] = strlen(subject);
	if (arca_index_add(ix, &d, &err) != ARCA_OK)
		abort();
}

static void init(void)
{
	char dir[] = "/tmp/arca-fuzz-ix-XXXXXX", path[64];
	arca_error err;
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/a.db", dir);
	if (arca_index_open(path, ARCA_INDEX_CREATE, &ix, &err) != ARCA_OK)
		abort();
	add(1, "Quarterly \"invoice\" NEAR", "Foobar attached AND OR NOT * ^ : {subject}",
	    "Subject: Quarterly\nReceived: from relay.example.net\nX-Q: \"quoted\" (paren)\n");
	add(2, "Stra\xc3\x9f" "e \xef\xac\x81le", "Hauptstra\xc3\x9f" "e caf\xc3\xa9 \xe2\x84\xaa",
	    "Subject: Stra\xc3\x9f" "e\nX-Long: \xc5\xbf\xc5\xbf\n");
	add(3, "zzz", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbb", "Subject: zzz\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	unsigned fields;
	arca_error err;
	arca_status st;
	if (ix == NULL)
		init();
	if (size < 2)
		return 0;
	fields = ((unsigned)data[0] | (unsigned)data[1] << 8) & ((1u << 12) - 1);
	st = arca_index_imap_words(ix, 1, (const char *)data + 2, size - 2, fields, &ids, &n, &err);
	if (st != ARCA_OK && st != ARCA_ERR_INVALID && st != ARCA_ERR_LIMIT) {
		fprintf(stderr, "unexpected failure %d: %s\n", (int)st, err.msg);
		abort();
	}
	free(ids);
	return 0;
}
