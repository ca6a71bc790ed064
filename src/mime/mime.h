/* GMime wrapper: turns the raw bytes of one message into the fields Arca indexes.
 * All strings are UTF-8, NUL-terminated, owned by the arca_mime_info and freed with it.
 * Parsing never fails on malformed input: whatever can be parsed is returned and the
 * problems are reported in `warnings` (a bit set) and `warning` (first reason, text). */
#ifndef ARCA_MIME_MIME_H
#define ARCA_MIME_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

#define ARCA_MIME_DATE_NONE INT64_MIN

enum {
	ARCA_MIME_WARN_NO_HEADERS = 1u << 0,     /* no header block found */
	ARCA_MIME_WARN_BAD_BOUNDARY = 1u << 1,   /* multipart without (closing) boundary */
	ARCA_MIME_WARN_BAD_ENCODING = 1u << 2,   /* base64/qp errors, undecodable transfer enc. */
	ARCA_MIME_WARN_BAD_CHARSET = 1u << 3,    /* unknown charset or invalid bytes replaced */
	ARCA_MIME_WARN_BINARY = 1u << 4,         /* NUL bytes or binary junk in headers/text */
	ARCA_MIME_WARN_LIMIT = 1u << 5,          /* a limit in lib/limits.h cut the parse short */
	ARCA_MIME_WARN_BAD_DATE = 1u << 6,       /* Date header missing or unparseable */
};

typedef struct {
	char *filename;     /* decoded (RFC 2047/2231), may be "" */
	char *content_type; /* lower-case "type/subtype" */
	uint64_t size;      /* decoded size in bytes */
} arca_mime_attachment;

typedef struct {
	/* Header fields, decoded to UTF-8. Address fields are "Display Name <addr>, ..." with
	 * addresses lower-cased; "" when absent. */
	char *subject;
	char *from;
	char *sender;
	char *reply_to;
	char *to;
	char *cc;
	char *bcc;
	char *message_id;  /* without angle brackets, "" if none */
	char *in_reply_to; /* message-ids separated by spaces, no angle brackets */
	char *references;  /* same */
	int64_t date;      /* seconds since epoch (UTC), ARCA_MIME_DATE_NONE if none/unparseable */
	uint64_t size;     /* raw size in bytes */

	/* Text of text/plain and text/html body parts (tags removed, entities decoded),
	 * parts separated by "\n". At most ARCA_MIME_MAX_TEXT bytes. */
	char *body_text;
	size_t body_text_len;
	/* Text of textual attachments (text/plain, text/html, text/csv, ...). */
	char *attachment_text;
	size_t attachment_text_len;

	arca_mime_attachment *attachments;
	size_t n_attachments;
	bool has_attachment;

	unsigned warnings; /* ARCA_MIME_WARN_* */
	char *warning;     /* first warning as text, "" if none */
} arca_mime_info;

/* Initialise GMime once per process (thread-safe to call repeatedly). */
void arca_mime_init(void);

/* Parses one message. Fails only for allocation failure or data > ARCA_MAX_MESSAGE_SIZE. */
arca_status arca_mime_parse(const void *data, size_t len, arca_mime_info **out, arca_error *err);
void arca_mime_info_free(arca_mime_info **info);

/* Converts HTML to plain text: tags removed, <script>/<style> contents dropped, entities
 * decoded, block elements become line breaks, whitespace collapsed. Appends to out (caller
 * frees with free()); returns length. Exposed for tests and for the index's snippets. */
char *arca_mime_html_to_text(const char *html, size_t len, size_t *out_len);

#endif
