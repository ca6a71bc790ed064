/* The API's command table: one static array gives dispatch, argument checking and the
 * reference documentation (docs/api.md is generated from it by gen-api-doc, and a test
 * fails if the committed file differs). Parsing and checking do no I/O (fuzzed). */
#ifndef ARCA_API_CMD_H
#define ARCA_API_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef enum {
	ARCA_API_STRING,  /* JSON string: valid UTF-8, no NUL, at most max (or ARCA_API_MAX_STRING) bytes */
	ARCA_API_INT,     /* JSON integer in [min, max] */
	ARCA_API_BOOL,    /* true / false */
	ARCA_API_STRINGS, /* array of strings, at most max (or ARCA_API_MAX_ARRAY) elements */
} arca_api_type;

typedef struct {
	const char *name;
	arca_api_type type;
	bool required;
	int64_t min, max;
	const char *doc;
} arca_api_arg;

#define ARCA_API_CMD_ARGS 10

enum {
	ARCA_API_ASYNC = 1u << 0,         /* runs on the job thread; the call answers with a token */
	ARCA_API_SERIAL = 1u << 1,        /* runs on the job thread; the call waits for it */
	ARCA_API_STORES_CHANGE = 1u << 2, /* may change the store registry: worker handles reopen */
	ARCA_API_USER_CHANGE = 1u << 3,   /* changes a user's login: cached logins of userName end */
};

struct arca_api_call;
struct arca_api_job;
typedef arca_status (*arca_api_handler)(struct arca_api_call *c, arca_error *err);
typedef arca_status (*arca_api_job_fn)(struct arca_api_job *j, arca_error *err);

typedef struct {
	const char *name;
	const char *group;
	const char *summary;
	uint32_t privilege; /* ARCA_PRIV_* bits the caller needs (0: any user who may log in) */
	const char *access; /* who may call it, for the documentation */
	unsigned flags;
	arca_api_arg args[ARCA_API_CMD_ARGS]; /* ends at the first entry without a name */
	const char *result; /* what "result" holds, for the documentation */
	arca_api_handler handler; /* worker thread: access checks and the work of quick commands */
	arca_api_job_fn job;      /* job thread (ASYNC, SERIAL) */
} arca_api_cmd;

const arca_api_cmd *arca_api_commands(size_t *n);
/* NULL if there is no such command (names are case-sensitive). */
const arca_api_cmd *arca_api_command(const char *name);

/* Parses a request body: empty means {}, else one JSON object (UTF-8, no duplicate keys, no
 * NUL in strings, nesting at most ARCA_API_MAX_JSON_DEPTH). *out is a new reference. */
arca_status arca_api_parse_json(const void *body, size_t len, json_t **out, arca_error *err);
/* Checks args against the command's argument list: every key known, every required one
 * present (null counts as absent), every value of its type and range. The message names the
 * argument, e.g. "argument 'userName': expected a string, got number". */
arca_status arca_api_check_args(const arca_api_cmd *c, json_t *args, arca_error *err);
/* Both, for one command. */
arca_status arca_api_parse_args(const arca_api_cmd *c, const void *body, size_t len, json_t **out,
                                arca_error *err);

/* HTTP status and error code name of an arca_status or ARCA_API_E_* code: the one mapping. */
enum {
	ARCA_API_E_AUTH = 100, /* not logged in / wrong credentials */
	ARCA_API_E_FORBIDDEN,  /* logged in, but lacks the privilege */
	ARCA_API_E_BUSY,       /* queue full: try again later */
	ARCA_API_E_METHOD,     /* wrong HTTP method for the path */
	ARCA_API_E_NOROUTE,    /* no such path */
	ARCA_API_E_COMMAND,    /* no such command */
	ARCA_API_E_TOOBIG,     /* request body too large */
};
int arca_api_http_status(int code);
const char *arca_api_code_name(int code);

/* docs/api.md (malloc'd). */
char *arca_api_doc_markdown(void);

#endif
