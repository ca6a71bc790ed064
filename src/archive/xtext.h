/* The text IMAP SEARCH reads of a message, for the index (src/archive/xtext.c). */
#ifndef ARCA_ARCHIVE_XTEXT_H
#define ARCA_ARCHIVE_XTEXT_H

#include <stddef.h>

#include "index/index.h"
#include "mime/mime.h"

/* Fills *x from the raw message (info: the MIME reader's parse of it; unused for now). On any
 * failure *x stays empty, which the index treats as "not known" (the message is then a
 * candidate of every IMAP text search). */
void inst_xtext_make(const void *data, size_t len, const arca_mime_info *info, arca_index_xtext *x);

#endif
