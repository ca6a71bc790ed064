/* Incremental IMAP4rev1/IMAP4rev2 command parser for the server side (RFC 3501, RFC 9051),
 * with LITERAL+/LITERAL- (RFC 7888), BINARY literals (RFC 3516) and SEARCHRES "$" (RFC 5182).
 * No I/O: the caller feeds bytes as they arrive, in chunks of any size, and gets back events.
 *
 * Grammar handled here is the generic one shared by all commands: tag, command name, then a
 * tree of arguments (atoms, numbers, NIL, quoted strings, literals, parenthesised lists, and
 * BODY[...]<o.n> / BINARY[...] section specs as one structured node). What the arguments mean
 * is up to the command layer above.
 *
 * Decisions (see docs/adr or the report that introduced this file):
 * - A bare LF ends a line like CRLF (lenient, as Dovecot); a CR elsewhere is an error.
 * - Spacing is lenient: one or more SP separate arguments; SP after '(' or before ')' and at
 *   the end of the line is ignored. Two arguments must still be separated by SP.
 * - Any error is reported at the end of the offending line (an overlong line is discarded up
 *   to its end first). If that line announced a non-synchronizing literal {n+}, the parser
 *   silently skips those n bytes and the rest of the command afterwards, so the client's
 *   following command parses again. A rejected synchronizing literal is never read: the
 *   client must not send it (RFC 9051 TOOBIG).
 * - Section specs are recognised after BODY, BODY.PEEK, BINARY, BINARY.PEEK and BINARY.SIZE
 *   (case-insensitive) in any command; elsewhere '[' and ']' are ordinary atom characters
 *   (mailbox "[Gmail]/Sent").
 * - An all-digit atom up to 2^63-1 is a NUMBER node, "NIL" (any case) a NIL node; both keep
 *   their text, so a mailbox called "123" or "nil" is still readable as an astring. */
#ifndef ARCA_IMAP_PARSER_H
#define ARCA_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

typedef struct arca_imap_parser arca_imap_parser;
typedef struct arca_imap_node arca_imap_node;

typedef enum {
	ARCA_IMAP_NEED_MORE = 0,     /* all input consumed, no event yet */
	ARCA_IMAP_COMMAND,           /* a complete command: tag, command, args */
	ARCA_IMAP_CONTINUE_LITERAL,  /* a synchronizing literal was announced: send "+ ..." */
	ARCA_IMAP_LINE,              /* a raw line after arca_imap_parser_expect_line() */
	ARCA_IMAP_ERROR,             /* a bad command: answer BAD (tagged if a tag is known) */
} arca_imap_result;

/* Response code that goes with an ERROR ("BAD [TOOBIG] ..."). */
typedef enum {
	ARCA_IMAP_CODE_NONE = 0,
	ARCA_IMAP_CODE_TOOBIG, /* a line, literal or command exceeded a limit of lib/limits.h */
} arca_imap_resp_code;

typedef enum {
	ARCA_IMAP_NODE_ATOM,    /* text; includes flags (\Seen), sequence sets (1:*), '*', '%' */
	ARCA_IMAP_NODE_NUMBER,  /* all digits, <= 2^63-1; text kept */
	ARCA_IMAP_NODE_NIL,     /* NIL in any case; text kept */
	ARCA_IMAP_NODE_STRING,  /* quoted string or literal; length given, binary may hold NUL */
	ARCA_IMAP_NODE_LIST,    /* parenthesised list; the command's arguments are one too */
	ARCA_IMAP_NODE_SECTION, /* BODY[...]<o.n>, BODY.PEEK[...], BINARY[...], BINARY.SIZE[...] */
} arca_imap_node_type;

typedef enum {
	ARCA_IMAP_STRING_QUOTED,
	ARCA_IMAP_STRING_LITERAL, /* {n} or {n+} */
	ARCA_IMAP_STRING_BINARY,  /* ~{n} or ~{n+}: any octet, NUL included */
} arca_imap_string_kind;

typedef struct {
	bool literal_plus;  /* LITERAL+ advertised: {n+} up to max_literal; else LITERAL-, n <= 4096 */
	size_t max_literal; /* 0 means ARCA_IMAP_MAX_LITERAL; larger values are cut to it */
} arca_imap_parser_opts;

/* opts may be NULL (LITERAL- only, ARCA_IMAP_MAX_LITERAL). */
arca_status arca_imap_parser_new(const arca_imap_parser_opts *opts, arca_imap_parser **out,
                                 arca_error *err);
/* Frees the parser and everything it returned; sets *p to NULL; accepts NULL. */
void arca_imap_parser_free(arca_imap_parser **p);

/* Parses from data[0..len) and stops at the first event. *consumed (always <= len) says how
 * many bytes were used; call again with the rest. Everything the accessors below return for
 * the event stays valid until the next call to feed (or free). */
arca_imap_result arca_imap_parser_feed(arca_imap_parser *p, const void *data, size_t len,
                                       size_t *consumed);

/* The next line is returned raw as ARCA_IMAP_LINE instead of being parsed as a command: the
 * DONE that ends IDLE, the client's answers during AUTHENTICATE. Only between commands. */
void arca_imap_parser_expect_line(arca_imap_parser *p);

/* True while a command is partly read (or the rest of a bad one is being discarded):
 * EOF now means the client went away mid-command. */
bool arca_imap_parser_in_command(const arca_imap_parser *p);

/* After COMMAND: tag as sent, command name upper-cased, arguments as one LIST node. After
 * ERROR: tag if it could be read, else NULL (answer with an untagged BAD). */
const char *arca_imap_parser_tag(const arca_imap_parser *p);
const char *arca_imap_parser_command(const arca_imap_parser *p);
const arca_imap_node *arca_imap_parser_args(const arca_imap_parser *p);
/* After CONTINUE_LITERAL: the announced size. */
uint64_t arca_imap_parser_literal_size(const arca_imap_parser *p);
/* After LINE: the line without its CRLF (may hold any octet but LF). */
const char *arca_imap_parser_line(const arca_imap_parser *p, size_t *len);
/* After ERROR: status (ARCA_ERR_SYNTAX, ARCA_ERR_LIMIT or ARCA_ERR_NOMEM) and a message safe
 * to send to the client; and the response code to put in front of it. */
const arca_error *arca_imap_parser_error(const arca_imap_parser *p);
arca_imap_resp_code arca_imap_parser_error_code(const arca_imap_parser *p);
/* "TOOBIG" or NULL. */
const char *arca_imap_resp_code_name(arca_imap_resp_code code);

/* Node accessors. Nodes belong to the parser (valid until the next feed). */
arca_imap_node_type arca_imap_node_kind(const arca_imap_node *n);
/* Text of an ATOM, NUMBER, NIL or STRING node (NUL-terminated; *len, if given, is its length,
 * which matters for binary literals); NULL for LIST and SECTION. */
const char *arca_imap_node_text(const arca_imap_node *n, size_t *len);
uint64_t arca_imap_node_number(const arca_imap_node *n); /* NUMBER only, else 0 */
arca_imap_string_kind arca_imap_node_string_kind(const arca_imap_node *n);
size_t arca_imap_node_count(const arca_imap_node *n);                        /* LIST, else 0 */
const arca_imap_node *arca_imap_node_child(const arca_imap_node *n, size_t i); /* NULL if out of range */

/* SECTION accessors. Name: "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK" or "BINARY.SIZE".
 * Parts: the section-part numbers (1.2.3 -> 3 parts). Text: "", "HEADER", "HEADER.FIELDS",
 * "HEADER.FIELDS.NOT", "TEXT" or "MIME" (always "" for BINARY*). Fields: the header-list as
 * a LIST of astring nodes for HEADER.FIELDS[.NOT], else NULL. Partial: true with <offset.count>. */
const char *arca_imap_section_name(const arca_imap_node *n);
size_t arca_imap_section_nparts(const arca_imap_node *n);
uint32_t arca_imap_section_part(const arca_imap_node *n, size_t i);
const char *arca_imap_section_text(const arca_imap_node *n);
const arca_imap_node *arca_imap_section_fields(const arca_imap_node *n);
bool arca_imap_section_partial(const arca_imap_node *n, uint32_t *offset, uint32_t *count);

/* Appends a canonical one-line rendering of n to out, for tests and debug logs: atoms as is,
 * strings quoted (literals prefixed {n} / ~{n}, bytes outside 0x20-0x7e as \xNN), lists in
 * parentheses, sections as BODY.PEEK[1.HEADER.FIELDS (From)]<0.100>. */
arca_status arca_imap_node_format(const arca_imap_node *n, arca_buf *out);

/* Sequence sets (RFC 9051 sequence-set, RFC 5182 "$"). Ranges are normalised to lo <= hi;
 * '*' is ARCA_IMAP_SEQ_STAR (0, which no nz-number can be) and sorts last: "*:4" -> 4:*. */
#define ARCA_IMAP_SEQ_STAR 0u

typedef struct {
	uint32_t lo, hi; /* hi may be ARCA_IMAP_SEQ_STAR; lo is STAR only in "*" / "*:*" */
} arca_imap_seqrange;

typedef struct arca_imap_seqset arca_imap_seqset;

/* Parses text[0..len) (at most ARCA_IMAP_MAX_LINE bytes). Errors: ARCA_ERR_SYNTAX with e.g.
 * "invalid sequence set: 0 is not a valid number"; ARCA_ERR_LIMIT if too long. "$" stands
 * alone (RFC 5182) and gives a set with no ranges and is_searchres true. */
arca_status arca_imap_seqset_parse(const char *text, size_t len, arca_imap_seqset **out,
                                   arca_error *err);
void arca_imap_seqset_free(arca_imap_seqset **s);
bool arca_imap_seqset_is_searchres(const arca_imap_seqset *s);
size_t arca_imap_seqset_count(const arca_imap_seqset *s);
arca_imap_seqrange arca_imap_seqset_range(const arca_imap_seqset *s, size_t i);
/* True if n (1-based) is in the set, '*' standing for max (the highest number or UID in use;
 * when max is 0 the mailbox is empty and nothing matches). Always false for "$". */
bool arca_imap_seqset_contains(const arca_imap_seqset *s, uint32_t n, uint32_t max);

#endif
