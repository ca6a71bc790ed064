#include "lib/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void arca_buf_init(arca_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void arca_buf_free(arca_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void arca_buf_reset(arca_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

arca_status arca_buf_reserve(arca_buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;
	if (extra > b->max || b->len > b->max - extra)
		return ARCA_ERR_LIMIT;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return ARCA_OK;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return ARCA_ERR_NOMEM;
	b->data = p;
	b->cap = ncap;
	return ARCA_OK;
}

arca_status arca_buf_append(arca_buf *b, const void *data, size_t len)
{
	arca_status st = arca_buf_reserve(b, len);
	if (st != ARCA_OK)
		return st;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return ARCA_OK;
}

arca_status arca_buf_appendz(arca_buf *b, const char *s)
{
	return arca_buf_append(b, s, strlen(s));
}

arca_status arca_buf_printf(arca_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	arca_status st;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return ARCA_ERR_INVALID;
	st = arca_buf_reserve(b, (size_t)n);
	if (st != ARCA_OK)
		return st;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return ARCA_OK;
}

char *arca_buf_steal(arca_buf *b, size_t *len)
{
	char *p = b->data;
	if (p == NULL) {
		p = calloc(1, 1);
	}
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
