/* File system helpers: bounded reads, durable writes, directory fsync, paths. */
#ifndef ARCA_LIB_FS_H
#define ARCA_LIB_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

/* Reads a whole file into out (appending); fails with ARCA_ERR_LIMIT beyond max bytes. */
arca_status arca_fs_read_file(const char *path, size_t max, arca_buf *out, arca_error *err);
/* Writes data to path via a temp file + fsync + rename + directory fsync. mode e.g. 0600. */
arca_status arca_fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                                 arca_error *err);
/* fsync() the directory that contains path (or path itself if it is a directory). */
arca_status arca_fs_fsync_dir(const char *dir, arca_error *err);
/* mkdir -p with mode 0700 for created components. */
arca_status arca_fs_mkdirs(const char *path, arca_error *err);
bool arca_fs_exists(const char *path);
bool arca_fs_is_dir(const char *path);
/* Sum of file sizes (st_blocks*512 if on_disk, else st_size) below path, recursively. */
uint64_t arca_fs_du(const char *path, bool on_disk);
/* Joins a and b with one '/' into out (size outsz); ARCA_ERR_LIMIT if too long. */
arca_status arca_fs_join(char *out, size_t outsz, const char *a, const char *b);
/* Expands a configured path: "~/x" is relative to base, absolute stays, else relative to base. */
arca_status arca_fs_expand(char *out, size_t outsz, const char *base, const char *path);

#endif
