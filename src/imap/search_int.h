/* SEARCH, SORT and THREAD (cmd_search.c and search_*.c), shared by those files only. The parts
 * without I/O live in search_prog.c (search programs, dates), search_sort.c (base subjects,
 * collation, sort addresses) and search_thread.c (THREAD algorithms); they are unit-tested on
 * their own (tests/unit/imap/test_search.c). Prefix imapd_search_. */
#ifndef ARCA_IMAP_SEARCH_INT_H
#define ARCA_IMAP_SEARCH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/parser.h"
#include "lib/buf.h"
#include "lib/error.h"

/* Nesting of NOT, OR and parentheses in one search program: bounds the recursion of parsing
 * and evaluation (OR chains of a few dozen terms are common, hundreds are not). */
#define IMAPD_SEARCH_MAX_DEPTH 256u

/* ---- search programs (search_prog.c) ---- */

typedef enum {
	IMAPD_SK_ALL,  /* ALL, SEEN, OLD, UNANSWERED, ...: every message (flags never change) */
	IMAPD_SK_NONE, /* UNSEEN, NEW, RECENT, ANSWERED, KEYWORD ...: no message */
	IMAPD_SK_AND,
	IMAPD_SK_OR,
	IMAPD_SK_NOT,
	IMAPD_SK_SET, /* sequence set, UID set, $ */
	IMAPD_SK_LARGER,
	IMAPD_SK_SMALLER,
	IMAPD_SK_MODSEQ,
	IMAPD_SK_BEFORE, /* internal date */
	IMAPD_SK_ON,
	IMAPD_SK_SINCE,
	IMAPD_SK_SENTBEFORE, /* Date header, in its own zone */
	IMAPD_SK_SENTON,
	IMAPD_SK_SENTSINCE,
	IMAPD_SK_HEADER, /* also SUBJECT, FROM, TO, CC, BCC (field set accordingly) */
	IMAPD_SK_BODY,
	IMAPD_SK_TEXT,
} imapd_search_kind;

typedef struct imapd_skey imapd_skey;
struct imapd_skey {
	imapd_search_kind kind;
	imapd_skey *kids; /* AND: nkids; OR: 2; NOT: 1 */
	size_t nkids;
	uint64_t num;     /* LARGER, SMALLER, MODSEQ */
	int32_t day;      /* date keys: days since 1970-01-01 */
	char *field;      /* HEADER: field name (NUL-terminated) */
	char *text;       /* HEADER, BODY, TEXT: the string (NUL-terminated; may hold NUL) */
	size_t len;
	char *set;        /* SET: the sequence set as sent */
	size_t setlen;
	bool uid;         /* SET: UIDs */
	/* filled by the command on the worker */
	uint8_t *bits;    /* SET: members; text keys: index candidates (NULL: every message) */
	unsigned cost;    /* 0: no I/O, 1: message size/time, 2: reads the message */
};

/* Parses the search keys list[first..] (implicitly ANDed) into *out (an IMAPD_SK_AND key,
 * caller frees with imapd_search_free). Keys are case-insensitive; SUBJECT/FROM/TO/CC/BCC
 * become HEADER keys. ARCA_ERR_SYNTAX with a message for the client ("unknown search key
 * FOO", "BEFORE needs a date like 1-Feb-2024", ...); ARCA_ERR_LIMIT when nested deeper than
 * IMAPD_SEARCH_MAX_DEPTH; ARCA_ERR_NOMEM. */
arca_status imapd_search_parse(const arca_imap_node *list, size_t first, imapd_skey **out,
                               arca_error *err);
void imapd_search_free(imapd_skey **key);
/* True if any key of the program is MODSEQ (the response then carries the highest one). */
bool imapd_search_uses_modseq(const imapd_skey *key);

/* RFC 3501 date ("1-Feb-2024", day 1 or 2 digits, month name in any case) -> days since
 * 1970-01-01. False if malformed or out of range (years 1..9999). */
bool imapd_search_parse_date(const char *s, size_t len, int32_t *day);
/* The calendar day (days since 1970-01-01) of a moment as seen in a zone (minutes east). */
int32_t imapd_search_day(int64_t unix_seconds, int tz_minutes);

/* ---- sorting support (search_sort.c) ---- */

/* RFC 5256 §2.1 base subject of a decoded (UTF-8) subject, in a new string (caller frees);
 * *refwd (may be NULL) is set if a reply/forward marker ("Re:", "Fwd:", "(fwd)", "[fwd: ...]")
 * was removed. NULL only when out of memory. */
char *imapd_search_base_subject(const char *subject, size_t len, bool *refwd);
/* Key of s under the i;unicode-casemap collation (RFC 5051: titlecase, then decomposed,
 * compared octet by octet), i;ascii-casemap when s is not valid UTF-8. Caller frees. */
char *imapd_search_casemap(const char *s, size_t len);
/* From a raw (undecoded) address header value: the addr-mailbox (local part) of the first
 * address (RFC 5256 FROM/TO/CC), or with display its display name, else its addr-spec
 * (RFC 5957 DISPLAYFROM/DISPLAYTO), decoded. "" when there is none. Caller frees. */
char *imapd_search_sort_address(const char *raw, size_t len, bool display);

/* ---- threading (search_thread.c) ---- */

typedef struct {
	uint32_t id;       /* what the response shows: sequence number or UID */
	uint32_t seq;      /* sequence number: the tie-breaker */
	int64_t date;      /* sent date (UTC); the internal date if the Date header is unusable */
	const char *msgid; /* Message-ID without <>, NULL if none */
	const char *const *refs; /* References ids in order (or the In-Reply-To id), without <> */
	size_t nrefs;
	const char *subject; /* base subject, already collated (imapd_search_casemap); "" if none */
	bool refwd;          /* the subject was a reply or forward */
} imapd_thread_msg;

/* Appends the thread-lists ("(1 2)(3 (4)(5))") of msgs to out. REFERENCES: RFC 5256 §2.3;
 * ORDEREDSUBJECT: RFC 5256 §2.2 (threads by base subject, each a parent and its children).
 * ARCA_ERR_NOMEM, or out's status. */
arca_status imapd_thread_references(const imapd_thread_msg *msgs, size_t n, arca_buf *out);
arca_status imapd_thread_orderedsubject(const imapd_thread_msg *msgs, size_t n, arca_buf *out);
/* Message ids ("<a@b>" tokens, brackets removed) of a header value, appended as strings
 * into ids (at most max). Returns how many were found. Text outside <> (comments, junk) is
 * skipped; an id must be non-empty and hold no whitespace. */
size_t imapd_thread_msgids(const char *s, size_t len, char **ids, size_t max);

#endif
