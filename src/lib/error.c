#include "lib/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *arca_status_name(arca_status st)
{
	switch (st) {
	case ARCA_OK: return "ok";
	case ARCA_ERR_INVALID: return "invalid";
	case ARCA_ERR_NOTFOUND: return "notfound";
	case ARCA_ERR_EXISTS: return "exists";
	case ARCA_ERR_IO: return "io";
	case ARCA_ERR_NOSPACE: return "nospace";
	case ARCA_ERR_CORRUPT: return "corrupt";
	case ARCA_ERR_CRYPTO: return "crypto";
	case ARCA_ERR_NOMEM: return "nomem";
	case ARCA_ERR_LIMIT: return "limit";
	case ARCA_ERR_STATE: return "state";
	case ARCA_ERR_DB: return "db";
	case ARCA_ERR_SYNTAX: return "syntax";
	}
	return "unknown";
}

arca_status arca_error_set(arca_error *err, arca_status st, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		err->status = st;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return st;
}

arca_status arca_error_errno(arca_error *err, int errnum, const char *fmt, ...)
{
	arca_status st;
	switch (errnum) {
	case ENOSPC:
	case EDQUOT: st = ARCA_ERR_NOSPACE; break;
	case ENOMEM: st = ARCA_ERR_NOMEM; break;
	case ENOENT: st = ARCA_ERR_NOTFOUND; break;
	default: st = ARCA_ERR_IO; break;
	}
	if (err != NULL) {
		va_list ap;
		int n;
		va_start(ap, fmt);
		err->status = st;
		n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(errnum));
	}
	return st;
}

void arca_error_clear(arca_error *err)
{
	if (err != NULL) {
		err->status = ARCA_OK;
		err->msg[0] = '\0';
	}
}
