/* Writers for IMAP response data (RFC 3501 / RFC 9051 formal syntax), shared by the message
 * layer (ENVELOPE, BODYSTRUCTURE) and the server. Every function appends to out and returns
 * ARCA_OK, or ARCA_ERR_LIMIT / ARCA_ERR_NOMEM from the buffer (out may then hold a partial
 * item; the caller discards the response).
 *
 * Strings: a quoted string when the bytes are 7-bit text without CR, LF or NUL and at most
 * ARCA_IMAP_QUOTED_MAX long ('"' and '\' escaped); otherwise a literal "{n}\r\n" followed by
 * the bytes. A literal must not carry NUL (CHAR8 is %x01-ff), so NUL bytes are written as 0x80,
 * as Dovecot does; the length is unchanged. */
#ifndef ARCA_IMAP_WRITE_H
#define ARCA_IMAP_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

/* Longer strings go out as literals even when they could be quoted. */
#define ARCA_IMAP_QUOTED_MAX 4096u

/* string: quoted or literal (see above). s may be NULL only when len is 0. */
arca_status arca_imap_write_string(arca_buf *out, const void *s, size_t len);
/* nstring: NIL when s is NULL, else as arca_imap_write_string. */
arca_status arca_imap_write_nstring(arca_buf *out, const void *s, size_t len);
/* astring: the bytes as an atom when they are non-empty ASTRING-CHARs and not "NIL" (any
 * case), else a string. */
arca_status arca_imap_write_astring(arca_buf *out, const void *s, size_t len);
/* Convenience for NUL-terminated text. */
arca_status arca_imap_write_stringz(arca_buf *out, const char *s);

/* True if s[0..len) can be sent as a quoted string (7-bit, no CR/LF/NUL, not too long). */
bool arca_imap_quotable(const void *s, size_t len);

/* RFC 3501 date-time in double quotes, e.g. "17-Jul-1996 02:44:25 -0700" (day padded with a
 * space), for the instant unix_seconds shown in the zone tz_offset_minutes east of UTC (clamped
 * to +-99:59). Used for INTERNALDATE. */
arca_status arca_imap_write_datetime(arca_buf *out, int64_t unix_seconds, int tz_offset_minutes);

#endif
