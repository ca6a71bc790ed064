/* File import sources: one .eml, a directory tree of .eml files, an mbox file (mboxrd and
 * mboxo From_ quoting) or a Maildir (cur/ new/, Maildir++ ".Sub.Folder" sub-folders).
 * A source yields messages one at a time with the sub-folder they belong to. */
#ifndef ARCA_SOURCES_FILES_H
#define ARCA_SOURCES_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef enum {
	ARCA_SRC_AUTO = 0,
	ARCA_SRC_EML,
	ARCA_SRC_DIR,
	ARCA_SRC_MBOX,
	ARCA_SRC_MAILDIR,
} arca_source_format;

typedef struct arca_source arca_source;

typedef struct {
	const uint8_t *data; /* valid until the next call to arca_source_next / close */
	size_t len;
	const char *subfolder; /* "" for the top folder, else "a/b" relative to it */
	const char *origin;    /* file path, or "mbox-path:offset", for messages and reports */
} arca_source_msg;

/* Parses a format name ("auto", "eml", "dir", "mbox", "maildir"). */
arca_status arca_source_format_parse(const char *name, arca_source_format *out);
const char *arca_source_format_name(arca_source_format f);

arca_status arca_source_open(const char *path, arca_source_format fmt, arca_source **out,
                             arca_error *err);
void arca_source_close(arca_source **src);
arca_source_format arca_source_get_format(const arca_source *src);
/* The folder an import of path goes to when none is given: the source's base name, without
 * its extension for an .eml or mbox file ("Import" when that leaves nothing). Truncated to
 * outsz. */
void arca_source_default_folder(const arca_source *src, const char *path, char *out, size_t outsz);
/* Number of messages (files) if known up front, else bytes total for mbox (see *is_bytes). */
uint64_t arca_source_total(const arca_source *src, int *is_bytes);
/* Progress in the same unit as arca_source_total. */
uint64_t arca_source_done(const arca_source *src);

/* Next message: ARCA_OK with *msg filled; ARCA_ERR_NOTFOUND at the end. Any other error is
 * about one item (err says which, msg->origin is set): the caller counts it and may go on. */
arca_status arca_source_next(arca_source *src, arca_source_msg *msg, arca_error *err);

/* mbox helpers, exposed for the exporter and for tests/fuzzing. */
/* Splits an mbox buffer: calls cb for each message with the unquoted bytes (mboxrd: one '>'
 * removed from lines matching ^>+From ; the separator newline before the next From_ line is
 * not part of the message). Returns the number of messages, or stops early if cb != 0. */
typedef int (*arca_mbox_cb)(void *ctx, const uint8_t *msg, size_t len, uint64_t offset);
arca_status arca_mbox_split(const uint8_t *data, size_t len, arca_mbox_cb cb, void *ctx,
                            uint64_t *count, arca_error *err);
/* Appends one message to out in mboxrd form: From_ line, quoted body, separator newline. */
#include "lib/buf.h"
arca_status arca_mbox_append(arca_buf *out, const uint8_t *msg, size_t len, int64_t date);

#endif
