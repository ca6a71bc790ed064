/* Internals of the IMAP message layer (message.c and msg_*.c): the part tree, the arena, the
 * header-value helpers. Not for use outside src/imap/message*.c and src/imap/msg_*.c. */
#ifndef ARCA_IMAP_MSG_INT_H
#define ARCA_IMAP_MSG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap/message.h"
#include "lib/buf.h"

#define ARCA_MSG_NONE SIZE_MAX /* offset of an absent header field */

/* A byte range of the raw message (a header value: after the colon, folding included, up to
 * but not including the field's final newline). off == ARCA_MSG_NONE when absent. */
typedef struct {
	size_t off, len;
} arca_msg_range;

typedef struct {
	const char *s; /* NULL when absent; NUL-terminated, may hold NUL inside */
	size_t len;
} arca_msg_str;

typedef struct {
	arca_msg_str name, value;
} arca_msg_param;

enum {
	ARCA_MSG_ENV_DATE,
	ARCA_MSG_ENV_SUBJECT,
	ARCA_MSG_ENV_FROM,
	ARCA_MSG_ENV_SENDER,
	ARCA_MSG_ENV_REPLY_TO,
	ARCA_MSG_ENV_TO,
	ARCA_MSG_ENV_CC,
	ARCA_MSG_ENV_BCC,
	ARCA_MSG_ENV_IN_REPLY_TO,
	ARCA_MSG_ENV_MESSAGE_ID,
	ARCA_MSG_ENV_N
};

enum {
	ARCA_MSG_C_TYPE,
	ARCA_MSG_C_ENCODING,
	ARCA_MSG_C_ID,
	ARCA_MSG_C_DESCRIPTION,
	ARCA_MSG_C_DISPOSITION,
	ARCA_MSG_C_LANGUAGE,
	ARCA_MSG_C_LOCATION,
	ARCA_MSG_C_MD5,
	ARCA_MSG_C_N
};

enum {
	ARCA_MSG_F_MULTIPART = 1u << 0, /* has children separated by a boundary */
	ARCA_MSG_F_RFC822 = 1u << 1,    /* message/rfc822: one child, the nested message */
	ARCA_MSG_F_TEXT = 1u << 2,      /* type text (or the default) */
	ARCA_MSG_F_MIME = 1u << 3,      /* Content-* fields count */
	ARCA_MSG_F_ROOT = 1u << 4,      /* a message's root: the top one or a nested one */
	ARCA_MSG_F_LEAF_ONLY = 1u << 5, /* beyond a limit: never gets children */
	ARCA_MSG_F_DEMOTED = 1u << 6,   /* written as text/plain whatever its header says */
	ARCA_MSG_F_MIMEVER = 1u << 7,   /* has MIME-Version */
	ARCA_MSG_F_DIGEST = 1u << 8,    /* multipart/digest: children default to message/rfc822 */
};

enum { ARCA_MSG_CTE_IDENTITY, ARCA_MSG_CTE_BASE64, ARCA_MSG_CTE_QP, ARCA_MSG_CTE_UNKNOWN };

typedef struct arca_msg_part arca_msg_part;
struct arca_msg_part {
	arca_msg_part *parent, *children, *last_child, *next;
	size_t nchildren;
	unsigned flags;
	unsigned depth;
	size_t hdr_off, hdr_len;   /* header incl. its empty line */
	size_t body_off, body_len; /* body; for multiparts preamble to epilogue */
	size_t body_lines;         /* LF characters in the body */
	size_t lf_at_body;         /* scanner: LFs before body_off */
	arca_msg_range content[ARCA_MSG_C_N];
	arca_msg_range *env; /* ARCA_MSG_ENV_N ranges for roots, else NULL */
	/* Parsed at the end of the header (MIME parts only). */
	arca_msg_str type, subtype; /* as sent; NULL when absent or invalid */
	arca_msg_param *params;
	size_t nparams;
	arca_msg_str boundary;
	arca_msg_str encoding; /* the CTE token as sent, NULL when absent/invalid */
	int cte;
	arca_msg_str disposition;
	arca_msg_param *dparams;
	size_t ndparams;
	arca_msg_str *languages;
	size_t nlanguages;
};

/* One growing arena per message: blocks chained, nothing freed before the message. */
typedef struct arca_msg_block arca_msg_block;
struct arca_msg_block {
	arca_msg_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct arca_imap_msg {
	const uint8_t *data;
	size_t len;
	arca_msg_part *root;
	size_t nparts;
	bool limited;
	bool has_nul;
	arca_msg_block *blocks;
};

/* arca_buf_append with the common case (room left) inline: output is many tiny appends. */
static inline arca_status arca_msg_put(arca_buf *b, const void *s, size_t n)
{
	if (b->data != NULL && b->cap - b->len > n && b->max - b->len >= n) {
		memcpy(b->data + b->len, s, n);
		b->len += n;
		b->data[b->len] = '\0';
		return ARCA_OK;
	}
	return arca_buf_append(b, s, n);
}

void *arca_msg_alloc(arca_imap_msg *m, size_t n);
char *arca_msg_strdup(arca_imap_msg *m, const void *s, size_t n);

/* Header-value helpers (msg_mime.c). */
bool arca_msg_range_present(arca_msg_range r);
/* Appends the range unfolded: CR LF / LF of folding removed (the whitespace after stays),
 * leading whitespace skipped. */
arca_status arca_msg_unfold(const arca_imap_msg *m, arca_msg_range r, arca_buf *out);
/* Parses the Content-* fields of a MIME part into its parsed members. False on NOMEM. */
bool arca_msg_parse_content(arca_imap_msg *m, arca_msg_part *p);
/* Writes BODY / BODYSTRUCTURE of p (not its enclosing parentheses). */
arca_status arca_msg_write_body(const arca_imap_msg *m, const arca_msg_part *p, bool ext,
                                arca_buf *out);
/* Writes the envelope of the message whose root is p (msg_envelope.c), with parentheses. */
arca_status arca_msg_write_envelope(const arca_imap_msg *m, const arca_msg_part *p, arca_buf *out);

/* Decoders (msg_decode.c). Append at most limit bytes of the decoded data to out (out may be
 * NULL to only count); return the number of decoded bytes (up to limit), or SIZE_MAX when out
 * failed (its status in *st). */
size_t arca_msg_decode(int cte, const uint8_t *p, size_t len, size_t limit, arca_buf *out,
                       arca_status *st);
int arca_msg_cte_kind(const char *token, size_t len);

/* Iterates the fields of a header range: sets *name_len (trailing whitespace removed),
 * *field_off and *field_len (the whole field with folding, without its final newline) and *next.
 * Returns false at the end. A line without a colon has name_len equal to the line's length
 * and *value_off ARCA_MSG_NONE. */
bool arca_msg_next_field(const uint8_t *d, size_t end, size_t *pos, size_t *name_len,
                         size_t *field_off, size_t *field_len, size_t *value_off);

#endif
