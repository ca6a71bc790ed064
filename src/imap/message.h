/* Everything the IMAP server says about one message, from its exact raw bytes: the MIME
 * structure with the byte range of every part's header and body, ENVELOPE, BODY and
 * BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2), BODY[section]<partial> (RFC 3501 §6.4.5),
 * BINARY[section], BINARY.SIZE (RFC 3516), and the decoded header values, text and date that
 * SEARCH needs. No I/O. See docs/adr/004-imap-message-structure.md for why the structure
 * scanner is our own and GMime only decodes header values and text.
 *
 * Ownership: arca_imap_msg_parse borrows the raw bytes; the caller keeps them alive and
 * unchanged until arca_imap_msg_free. Everything else the message holds lives in one arena
 * freed with it. Output functions append to a caller-owned arca_buf. Section functions return a
 * pointer either into the raw bytes (when the answer is one contiguous range: BODY[] of a
 * 50 MB message is not copied) or into the caller's scratch buffer, valid until the raw
 * bytes or the scratch buffer change.
 *
 * Parsing never fails on malformed input (only on allocation failure). Decisions, following
 * Dovecot (the de facto reference) unless noted:
 * - Sizes are of the raw bytes and lines count LF characters: bytes in are bytes out, so
 *   BODY[] is exactly the archived message and RFC822.SIZE its length (Dovecot instead counts
 *   bare LF as CRLF because it converts on output). Bare-LF messages parse like CRLF ones.
 * - A header ends at the first empty line; without one the whole message is header and the
 *   body is empty. A boundary line of an enclosing multipart also ends a part's header (the
 *   newline before it belongs to the boundary). Lines without a colon are kept, never fatal.
 * - Content-* fields count only if the part is MIME: it has MIME-Version or Content-Type, or
 *   it is a child of a multipart. Otherwise it is text/plain; charset=us-ascii, 7bit.
 *   Without a valid type "/" subtype the part is text/plain (RFC 2045 §5.2), or message/rfc822
 *   under multipart/digest. The first occurrence of each field counts.
 * - Boundaries (RFC 2046 §5.1.1): a line "--" + boundary (prefix match, longest active
 *   boundary wins, trailing "--" closes); an enclosing multipart's boundary closes every part
 *   inside it; a missing close delimiter ends the multipart at its parent's end or EOF.
 *   Every line is looked at once against at most ARCA_MIME_MAX_DEPTH boundaries: linear.
 * - A multipart with no usable boundary, no body part found, or beyond ARCA_MIME_MAX_DEPTH
 *   is shown as a text/plain leaf holding its whole body (Dovecot shows an empty text/plain
 *   child instead, which hides the content). After ARCA_MIME_MAX_PARTS parts, or when the
 *   message's header budget (lib/limits.h) is spent, the rest of a multipart is epilogue.
 *   A header beyond ARCA_MIME_MAX_HEADER_BYTES / ARCA_MIME_MAX_HEADERS ends there; the rest is
 *   body. A message/rfc822 part always gets its nested message (header + envelope), but one
 *   beyond the limits is not parsed further (its body is a text/plain leaf).
 * - BODYSTRUCTURE writes types, subtypes and parameter names as sent; text parts without a
 *   charset get "charset" "us-ascii" appended; RFC 2231 continuations are merged and an
 *   encoded value keeps its charset'lang'%XX form under the name with a trailing "*". */
#ifndef ARCA_IMAP_MESSAGE_H
#define ARCA_IMAP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/parser.h"
#include "lib/buf.h"
#include "lib/error.h"
#include "lib/limits.h"

typedef struct arca_imap_msg arca_imap_msg;

/* Parses data[0..len). Fails only with ARCA_ERR_NOMEM. The bytes are borrowed (see above). */
arca_status arca_imap_msg_parse(const uint8_t *data, size_t len, arca_imap_msg **out,
                                arca_error *err);
/* Frees the message and everything it owns; sets *msg to NULL; accepts NULL. */
void arca_imap_msg_free(arca_imap_msg **msg);

size_t arca_imap_msg_size(const arca_imap_msg *msg);       /* RFC822.SIZE: raw length */
size_t arca_imap_msg_part_count(const arca_imap_msg *msg); /* parts in the tree, root included */
/* True if a limit of lib/limits.h shaped the structure (for a warning in the log). */
bool arca_imap_msg_limited(const arca_imap_msg *msg);

/* Appends the ENVELOPE value "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)" (the caller writes the item name). Date, subject and ids are the raw header
 * values unfolded (encoded-words are not decoded; the first occurrence of a field counts);
 * addresses are ((name adl mailbox host) ...) with group syntax as in RFC 3501; a missing
 * mailbox or host becomes "MISSING_MAILBOX" / "MISSING_DOMAIN"; Sender and Reply-To default
 * to From; NIL where absent. */
arca_status arca_imap_msg_envelope(const arca_imap_msg *msg, arca_buf *out);
/* Appends the value of BODYSTRUCTURE (extended) or BODY (not extended), parentheses included
 * (the caller writes the item name): e.g. for BODYSTRUCTURE of a one-line text message
 * ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL). */
arca_status arca_imap_msg_bodystructure(const arca_imap_msg *msg, bool extended, arca_buf *out);

/* ---- sections ---------------------------------------------------------------------- */

typedef enum {
	ARCA_IMAP_FETCH_BODY,        /* BODY[...] and BODY.PEEK[...] */
	ARCA_IMAP_FETCH_BINARY,      /* BINARY[...] and BINARY.PEEK[...] */
	ARCA_IMAP_FETCH_BINARY_SIZE, /* BINARY.SIZE[...] */
} arca_imap_fetch_kind;

typedef enum {
	ARCA_IMAP_SPEC_ALL,               /* [] or [1.2]: the whole message / the part's body */
	ARCA_IMAP_SPEC_HEADER,            /* [HEADER], [2.HEADER] */
	ARCA_IMAP_SPEC_HEADER_FIELDS,     /* [HEADER.FIELDS (...)] */
	ARCA_IMAP_SPEC_HEADER_FIELDS_NOT, /* [HEADER.FIELDS.NOT (...)] */
	ARCA_IMAP_SPEC_TEXT,              /* [TEXT], [2.TEXT] */
	ARCA_IMAP_SPEC_MIME,              /* [1.MIME] */
} arca_imap_spec;

typedef struct {
	const char *name; /* NUL-terminated */
	size_t len;
} arca_imap_field_name;

/* One fetch item's section spec. Fill it from a parser SECTION node, or by hand (zeroed,
 * fields pointing at the caller's names, which the caller then owns). */
typedef struct {
	arca_imap_fetch_kind kind;
	bool peek;
	size_t nparts;
	uint32_t parts[ARCA_IMAP_MAX_SECTION_PARTS];
	arca_imap_spec spec;
	arca_imap_field_name *fields; /* HEADER.FIELDS[.NOT] names */
	size_t nfields;
	bool partial; /* <offset.count> given */
	uint32_t offset, count;
	/* Set by from_node: the fields sorted by length then name (case-insensitive), so that a
	 * long list costs a binary search per header field; NULL means search fields in order. */
	const arca_imap_field_name *sorted;
	void *owned; /* from_node: the one allocation holding fields, sorted and their text */
} arca_imap_fetch_section;

/* Copies what a SECTION node of the parser says into *out, which then owns the field names
 * (release with arca_imap_fetch_section_clear; the node may go away). ARCA_ERR_SYNTAX for a node
 * that is not a section or a combination RFC 9051 does not allow; ARCA_ERR_NOMEM. */
arca_status arca_imap_fetch_section_from_node(const arca_imap_node *node, arca_imap_fetch_section *out,
                                            arca_error *err);
/* Frees what from_node allocated and zeroes *sec. */
void arca_imap_fetch_section_clear(arca_imap_fetch_section *sec);
/* Appends the response item name: BODY[1.HEADER.FIELDS (From To)]<0>, BINARY[2],
 * BINARY.SIZE[2] (never .PEEK; only the origin octet of a partial, RFC 3501 §7.4.2). */
arca_status arca_imap_fetch_section_format(const arca_imap_fetch_section *sec, arca_buf *out);
/* Narrows data and len to sec's <partial> range ("" from at or past the end); no-op without one. */
void arca_imap_fetch_section_partial(const arca_imap_fetch_section *sec, const uint8_t **data,
                                     size_t *len);

/* Status for BINARY / BINARY.SIZE of a part whose Content-Transfer-Encoding is not 7bit,
 * 8bit, binary, base64 or quoted-printable: the server answers NO [UNKNOWN-CTE]. No other
 * section function returns ARCA_ERR_INVALID. */
#define ARCA_IMAP_MSG_UNKNOWN_CTE ARCA_ERR_INVALID

/* BODY[section]<partial> (sec->kind is ignored). ARCA_OK: *data and *len is the answer.
 * ARCA_ERR_NOTFOUND: the section names a part that does not exist, or HEADER/TEXT of a part
 * that is not message/rfc822; *data and *len is then "" / 0 and the server should send "" (as
 * Dovecot does; the grammar's nstring would also allow NIL). Part 1 of a non-multipart message
 * is its body; n.MIME is part n's MIME header (for a non-multipart message 1.MIME is the
 * message header, as Dovecot); n.HEADER / n.TEXT of a message/rfc822 part are the nested
 * message's. HEADER.FIELDS[.NOT] keeps the matching field lines in order, with their
 * folding, plus the empty line. A partial <o.n> starting at or past the end is "". NUL bytes
 * become 0x80 (a literal cannot carry NUL), copied into scratch only when the range holds one.
 * scratch is reset and used when the answer is not one range of the raw bytes; its max bounds
 * the copy (ARCA_ERR_LIMIT beyond). */
arca_status arca_imap_msg_section(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                  arca_buf *scratch, const uint8_t **data, size_t *len,
                                  arca_error *err);
/* BINARY[section]<partial> (RFC 3516): the part's body with its Content-Transfer-Encoding
 * removed. Base64 skips characters outside the alphabet and restarts after "=" padding;
 * quoted-printable keeps malformed "=" sequences as they are and drops whitespace before line
 * ends (both lenient, like Dovecot's and GMime's decoders: garbage never fails a fetch).
 * 7bit/8bit/binary (or no field) return the bytes as is, without a copy. BINARY[] and BINARY
 * of a multipart or message/rfc822 part return the bytes as is (a composite part can only be
 * 7bit/8bit/binary, RFC 2045 §6.4; its inner parts are not decoded). NUL bytes are kept (the
 * server sends literal8). ARCA_IMAP_MSG_UNKNOWN_CTE for an unknown encoding; ARCA_ERR_NOTFOUND
 * as for sections. Only the decoded bytes up to the end of the partial range are produced. */
arca_status arca_imap_msg_binary(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                 arca_buf *scratch, const uint8_t **data, size_t *len,
                                 arca_error *err);
/* BINARY.SIZE[section]: the decoded size (counted, nothing is kept). Same statuses. */
arca_status arca_imap_msg_binary_size(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                      uint64_t *size, arca_error *err);
/* Dispatches on sec->kind to one of the three above (BINARY.SIZE: *len is the size and *data
 * is NULL). */
arca_status arca_imap_msg_fetch(const arca_imap_msg *msg, const arca_imap_fetch_section *sec,
                                arca_buf *scratch, const uint8_t **data, size_t *len,
                                arca_error *err);

/* ---- search support ---------------------------------------------------------------- */

/* Appends the values of every top-level header field called field (case-insensitive),
 * unfolded, RFC 2047-decoded and converted to UTF-8 (8-bit bytes that are not UTF-8 are read
 * as windows-1252), joined by "\n". ARCA_ERR_NOTFOUND if there is no such field (an empty
 * field is found and appends nothing). Each value is cut at ARCA_MIME_MAX_FIELD bytes. */
arca_status arca_imap_msg_header(const arca_imap_msg *msg, const char *field, arca_buf *out);
/* Appends the UTF-8 text of the message's text leaf parts (those of attached messages
 * included), transfer-decoded and charset-converted, HTML reduced to its text, parts separated
 * by "\n"; with with_headers the top-level header fields ("Name: decoded value\n") come first.
 * Stops at max bytes (0 means ARCA_MIME_MAX_TEXT), cutting at a UTF-8 character boundary.
 * Errors only from out (ARCA_ERR_LIMIT / ARCA_ERR_NOMEM). */
arca_status arca_imap_msg_text(const arca_imap_msg *msg, bool with_headers, arca_buf *out,
                               size_t max);
/* Only the header part of arca_imap_msg_text's with_headers text: every top-level field as
 * "Name: decoded value\n". */
arca_status arca_imap_msg_header_text(const arca_imap_msg *msg, arca_buf *out, size_t max);
/* True when a multipart/alternative of the message (nested ones included) has two or more
 * alternatives that hold text: arca_imap_msg_text reads all of them, an indexer may not. */
bool arca_imap_msg_has_text_alternatives(const arca_imap_msg *msg);
/* Case-insensitive substring test (RFC 3501 SEARCH semantics) on UTF-8 text: Unicode simple
 * case folding (g_utf8_casefold) when either side has non-ASCII bytes and both are valid
 * UTF-8, ASCII folding otherwise. Linear in hlen + nlen. An empty needle matches. */
bool arca_imap_match_substring(const char *haystack, size_t hlen, const char *needle, size_t nlen);
/* The top-level Date header as seconds since the epoch and the zone it was written in
 * (minutes east of UTC), for SENTBEFORE/SENTON/SENTSINCE (which compare the date in that zone)
 * and for an INTERNALDATE taken from the message (arca_imap_write_datetime writes it).
 * ARCA_ERR_NOTFOUND if there is no Date field or it cannot be parsed. */
arca_status arca_imap_msg_date(const arca_imap_msg *msg, int64_t *unix_seconds,
                               int *tz_offset_minutes);

#endif
