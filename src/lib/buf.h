/* Growable byte buffer with a hard cap (like curl's dynbuf). Always NUL-terminated. */
#ifndef ARCA_LIB_BUF_H
#define ARCA_LIB_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct {
	char *data;  /* NUL-terminated; NULL until first append */
	size_t len;
	size_t cap;
	size_t max;  /* appends beyond this fail with ARCA_ERR_LIMIT */
} arca_buf;

void arca_buf_init(arca_buf *b, size_t max);
void arca_buf_free(arca_buf *b);   /* frees data, keeps max, len = 0 */
void arca_buf_reset(arca_buf *b);  /* len = 0, keeps allocation */
arca_status arca_buf_reserve(arca_buf *b, size_t extra);
arca_status arca_buf_append(arca_buf *b, const void *data, size_t len);
arca_status arca_buf_appendz(arca_buf *b, const char *s);
arca_status arca_buf_printf(arca_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *arca_buf_steal(arca_buf *b, size_t *len);

#endif
