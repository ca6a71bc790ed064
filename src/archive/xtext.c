/* What IMAP SEARCH reads of a message, for the index's exact-substring tables (arca_index_xtext,
 * src/index/imap.c): made at ingest with the IMAP server's own message reader, so that the
 * words the index holds are the words IMAP's check later sees. */
#include "archive/xtext.h"

#include <stdlib.h>
#include <string.h>

#include "imap/message.h"
#include "lib/limits.h"

/* The header fields whose values each fts header column holds (index.h ARCA_INDEX_X_*). */
static const char *const column_fields[ARCA_INDEX_X_FIELDS][4] = {
	{ "Subject", NULL },
	{ "From", "Sender", "Reply-To", NULL },
	{ "To", NULL },
	{ "Cc", NULL },
	{ "Bcc", NULL },
	{ "Message-ID", "In-Reply-To", "References", NULL },
};

/* IMAP's decoded values of the fields of column i, "\n" between (*out NULL when it has none). */
static bool field_values(const arca_imap_msg *m, int i, char **out, size_t *len)
{
	arca_buf b;
	arca_status st = ARCA_OK;
	arca_buf_init(&b, ARCA_MIME_MAX_HEADER_TOTAL + 16);
	for (int f = 0; st == ARCA_OK && column_fields[i][f] != NULL; f++) {
		size_t before = b.len;
		if (b.len > 0)
			st = arca_buf_append(&b, "\n", 1);
		if (st == ARCA_OK)
			st = arca_imap_msg_header(m, column_fields[i][f], &b);
		if (st == ARCA_ERR_NOTFOUND) {
			b.len = before;
			st = ARCA_OK;
		}
	}
	if (st == ARCA_OK && b.len > 0)
		st = arca_buf_append(&b, "", 1);
	if (st != ARCA_OK) {
		arca_buf_free(&b);
		return false;
	}
	*out = NULL;
	*len = 0;
	if (b.len > 0) {
		*out = arca_buf_steal(&b, len);
		(*len)--;
	}
	arca_buf_free(&b);
	return true;
}

/* U+0345 (combining ypogegrammeni) separates words for the index's tokenizer but folds to ι
 * for IMAP's check: written as ι, the words it is part of are found (same UTF-8 length). */
static void ypogegrammeni(char *s, size_t n)
{
	for (char *p = s; p != NULL && (size_t)(p - s) + 1 < n;) {
		p = memmem(p, n - (size_t)(p - s), "\xcd\x85", 2);
		if (p != NULL) {
			memcpy(p, "\xce\xb9", 2);
			p += 2;
		}
	}
}

void inst_xtext_make(const void *data, size_t len, const arca_mime_info *info, arca_index_xtext *x)
{
	arca_imap_msg *m = NULL;
	arca_error e = {0};
	arca_buf b;
	memset(x, 0, sizeof(*x));
	/* a message IMAP cannot read gets none: the index then offers it to every search */
	if (arca_imap_msg_parse(data, len, &m, &e) != ARCA_OK)
		return;
	arca_buf_init(&b, ARCA_MIME_MAX_TEXT + 16);
	if (arca_imap_msg_header_text(m, &b, ARCA_MIME_MAX_TEXT) != ARCA_OK ||
	    arca_buf_append(&b, "", 1) != ARCA_OK) {
		arca_buf_free(&b);
		arca_imap_msg_free(&m);
		return;
	}
	x->headers = arca_buf_steal(&b, &x->headers_len);
	x->headers_len--; /* the NUL */
	for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
		if (!field_values(m, i, &x->fields[i], &x->fields_len[i])) {
			arca_index_xtext_free(x);
			arca_imap_msg_free(&m);
			return;
		}
	/* The body's text too, always: the MIME reader and IMAP's can read a part differently
	 * without either noticing (a type IMAP reads as text/plain by RFC 2045's default, the parts
	 * of multipart/signed, a transfer encoding without MIME-Version, a soft line break before
	 * white space); the index keeps only the words the fts columns lack. */
	(void)info;
	arca_buf_init(&b, ARCA_MIME_MAX_TEXT + 16);
	if (arca_imap_msg_text(m, false, &b, ARCA_MIME_MAX_TEXT) == ARCA_OK &&
	    arca_buf_append(&b, "", 1) == ARCA_OK) {
		x->body = arca_buf_steal(&b, &x->body_len);
		x->body_len--;
	} else {
		/* without the body's words the document must not claim to have them */
		arca_buf_free(&b);
		arca_index_xtext_free(x);
	}
	arca_imap_msg_free(&m);
	if (x->headers != NULL) {
		ypogegrammeni(x->headers, x->headers_len);
		ypogegrammeni(x->body, x->body_len);
		for (int i = 0; i < ARCA_INDEX_X_FIELDS; i++)
			ypogegrammeni(x->fields[i], x->fields_len[i]);
	}
}
