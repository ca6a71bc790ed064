/* Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for IMAP4rev1 clients that did not enable
 * UTF-8 names (IMAP4rev2 / UTF8=ACCEPT clients get UTF-8 as stored). */
#ifndef ARCA_IMAP_MUTF7_H
#define ARCA_IMAP_MUTF7_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"

/* UTF-8 -> modified UTF-7. ARCA_ERR_INVALID for invalid UTF-8. Appends to out. */
arca_status arca_imap_mutf7_encode(const char *utf8, size_t len, arca_buf *out, arca_error *err);
/* Modified UTF-7 -> UTF-8. ARCA_ERR_SYNTAX for a malformed name. Appends to out. */
arca_status arca_imap_mutf7_decode(const char *mutf7, size_t len, arca_buf *out, arca_error *err);

#endif
