/* One error convention for every module: functions return arca_status and,
 * when given a non-NULL arca_error, fill it with a human-readable detail. */
#ifndef ARCA_LIB_ERROR_H
#define ARCA_LIB_ERROR_H

#include <stddef.h>

typedef enum {
	ARCA_OK = 0,
	ARCA_ERR_INVALID,  /* bad argument or bad input from a user */
	ARCA_ERR_NOTFOUND, /* no such object */
	ARCA_ERR_EXISTS,   /* object already exists */
	ARCA_ERR_IO,       /* read/write/open failed */
	ARCA_ERR_NOSPACE,  /* ENOSPC / SQLITE_FULL: disk full */
	ARCA_ERR_CORRUPT,  /* stored data failed a check */
	ARCA_ERR_CRYPTO,   /* decryption/authentication failed, wrong key */
	ARCA_ERR_NOMEM,    /* allocation failed */
	ARCA_ERR_LIMIT,    /* a bound in lib/limits.h was exceeded */
	ARCA_ERR_STATE,    /* operation not allowed in this state (e.g. write-protected) */
	ARCA_ERR_DB,       /* SQLite error other than the above */
	ARCA_ERR_SYNTAX,   /* query or command syntax error */
} arca_status;

#define ARCA_ERROR_MSG_MAX 512

typedef struct {
	arca_status status;
	char msg[ARCA_ERROR_MSG_MAX];
} arca_error;

/* Stable lower-case name of a status, e.g. "nospace". */
const char *arca_status_name(arca_status st);

/* Sets err (if non-NULL) and returns st, so callers can `return arca_error_set(...)`. */
arca_status arca_error_set(arca_error *err, arca_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like arca_error_set but appends ": strerror(errnum)" and maps ENOSPC/EDQUOT to
 * ARCA_ERR_NOSPACE, ENOMEM to ARCA_ERR_NOMEM, ENOENT to ARCA_ERR_NOTFOUND, else ARCA_ERR_IO. */
arca_status arca_error_errno(arca_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to ARCA_OK / "". */
void arca_error_clear(arca_error *err);

#endif
