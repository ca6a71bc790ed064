/* Internal state of the IMAP server, shared by the files of src/imap/ that implement it
 * (imapd.c: connections, I/O, dispatch; cmd_*.c: the commands). Prefix imapd_. */
#ifndef ARCA_IMAP_IMAPD_INT_H
#define ARCA_IMAP_IMAPD_INT_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/imapd.h"
#include "imap/parser.h"
#include "lib/limits.h"
#include "net/deflate.h"
#include "net/svc.h"

typedef enum {
	IMAPD_NOTAUTH = 1u << 0,
	IMAPD_AUTH = 1u << 1,
	IMAPD_SELECTED = 1u << 2,
	IMAPD_LOGOUT = 1u << 3,
} imapd_state;
#define IMAPD_ANY (IMAPD_NOTAUTH | IMAPD_AUTH | IMAPD_SELECTED)
#define IMAPD_AUTHED (IMAPD_AUTH | IMAPD_SELECTED)

/* FETCHes queued behind a running one, per session: a client pipelining more waits for TCP
 * (each queued FETCH holds a bitmap of the mailbox, 125 KB for a million messages). */
#define IMAPD_CHAIN_MAX 64u

typedef struct imapd_session imapd_session;
typedef struct imapd_cmd imapd_cmd;
typedef struct imapd_mailbox imapd_mailbox;

struct arca_imapd {
	arca_svc *svc;
	arca_imapd_config cfg;
	char instance_id[ARCA_NAME_MAX];
	struct evconnlistener *listeners[8];
	bool listener_tls[8], listener_trusted[8];
	unsigned n_listeners;
	imapd_session *sessions; /* doubly linked */
	unsigned n_sessions;
	uint64_t next_id;
	bool shutting_down;
	int change_id;
	/* parallel sessions per user: small open list, users are few per process */
	struct imapd_user_count {
		char name[ARCA_NAME_MAX];
		unsigned n;
	} *user_counts;
	size_t n_user_counts, cap_user_counts;
};

struct imapd_session {
	imapd_session *prev, *next;
	arca_imapd *d;
	uint64_t id;
	struct bufferevent *bev;
	arca_imap_parser *parser;
	unsigned state;
	char peer[64], peer_host[64];
	bool tls, trusted, compressed;
	bool tls_shut_down;   /* close_notify sent */
	unsigned close_ticks; /* graceful close: 10 ms waits so far */
	bool busy;          /* a command is running (on a worker, a timer, or waiting for a line) */
	bool closing;       /* connection gone or going: the session is freed when not busy */
	bool flush_close;   /* close once the output is written (LOGOUT, BYE) */
	bool bye_pending;   /* shutdown: say BYE when the current command ends */
	bool line_expected; /* the parser was told the next line is raw */
	/* authenticated user */
	char user[ARCA_NAME_MAX];
	uint32_t user_id, privileges;
	bool counted;       /* counted in d->user_counts */
	/* ENABLEd extensions */
	bool rev2, condstore, utf8;
	/* selected mailbox */
	imapd_mailbox *mbox;
	bool examine;
	uint32_t *searchres; /* SEARCHRES $: UIDs */
	size_t n_searchres;
	/* current command */
	imapd_cmd *cmd;
	/* Pipelined FETCHes parsed while a chainable command runs (under mu): the worker runs them
	 * in turn, without a trip through the loop per command (imapd.c, "chain"). */
	imapd_cmd *chain_head, *chain_tail;
	unsigned chain_len; /* at most IMAPD_CHAIN_MAX: each holds its FETCH's state */
	bool held; /* a parsed command that is not chainable waits for the chain to drain */
	struct event *timer; /* login delay, IDLE poll */
	/* output from workers, handed to bev on the loop thread (flow control: see imapd.c) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct evbuffer *out;
	struct event *wake_ev;
	int out_failed; /* (under mu) errno of a failed compression: the loop closes the session */
	/* COMPRESS: z compresses what joins `out`, under zmu (see out_append in imapd.c) */
	arca_deflate_out *z;
	pthread_mutex_t zmu;
	struct evbuffer *zraw;   /* deferred bytes waiting to be compressed (out_append) */
	struct evbuffer *ztmp;   /* compressed bytes on their way to `out` */
	uint64_t zlast;          /* when output was last compressed (monotonic ms) */
	bool zarmed;             /* ztrim_ev is pending */
	struct event *ztrim_ev;  /* frees z's state after a quiet spell */
};

/* How a command continues after its first step (set by the handler). */
typedef enum {
	IMAPD_DONE = 0,   /* tagged response written */
	IMAPD_WORKER,     /* run c->work on a worker, then c->after on the loop thread */
	IMAPD_WAIT_LINE,  /* wait for a raw line (AUTHENTICATE continuation, IDLE's DONE): c->line */
	IMAPD_WAIT_TIMER, /* a timer was set (login delay): the timer continues the command */
	IMAPD_CLOSE,      /* close after writing (LOGOUT) */
} imapd_next;

typedef void (*imapd_cmd_fn)(imapd_cmd *c);

struct imapd_cmd {
	imapd_session *s;
	char *tag;                     /* copied: parser memory moves on during line waits */
	const char *name;              /* upper case, without "UID " */
	bool uid;                      /* UID FETCH / UID SEARCH ... */
	const arca_imap_node *args;    /* parser-owned; valid until the command ends */
	size_t argi;                   /* next argument for the handler (UID prefix skipped) */
	struct evbuffer *buf;          /* responses being built */
	arca_svc_handles *h;           /* while running on a worker */
	imapd_next next;
	imapd_cmd_fn work;             /* worker step */
	imapd_cmd_fn after;            /* loop step after work (may set next again) */
	imapd_cmd_fn line;             /* loop step for a raw line */
	const char *line_data;
	size_t line_len;
	void *data;                    /* command-specific state */
	void (*data_free)(void *data);
	bool client_gone;
	bool idling;                   /* IDLE: its polls answer untagged only */
	bool chainable;                /* set by the handler: the worker step needs nothing of the
	                                * parser (args may go), nor changes the session (FETCH) */
	imapd_cmd *chain_next;         /* in the session's chain, or in chain_done */
	imapd_cmd *chain_done;         /* chained commands a worker step also ran (freed with c) */
};

/* ---- output (any thread that runs the command) ---- */
void imapd_printf(imapd_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imapd_write(imapd_cmd *c, const void *data, size_t len);
/* Tagged status: imapd_tagged(c, "OK", "[READ-ONLY] SELECT completed"). */
void imapd_tagged(imapd_cmd *c, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Worker only: hands what was written so far to the connection, waiting while the client is
 * slow. Returns false when the client is gone (stop working). */
bool imapd_flush(imapd_cmd *c);
/* Untagged BAD/NO with the status text of err, mapped in one place. */
void imapd_tagged_error(imapd_cmd *c, const arca_error *e);

/* Continues c after an asynchronous step of its own (a timer) on the loop thread. */
void imapd_resume(imapd_cmd *c);

/* ---- arguments ---- */
const arca_imap_node *imapd_arg(imapd_cmd *c);      /* next argument or NULL */
size_t imapd_args_left(const imapd_cmd *c);
/* astring/string argument as text (NUL-terminated), NULL if missing or a list. */
const char *imapd_arg_string(imapd_cmd *c, size_t *len);

/* ---- commands ---- */
typedef struct {
	const char *name;
	unsigned states;
	imapd_cmd_fn fn;
} imapd_command;
const imapd_command *imapd_command_find(const char *name);

const char *imapd_capabilities(const imapd_session *s);

/* STARTTLS / COMPRESS: replace the connection's bufferevent by a filter on top of it. */
bool imapd_start_tls(imapd_session *s);
bool imapd_start_compress(imapd_session *s);
/* Login bookkeeping: counts a user's sessions; false if over the limit. */
bool imapd_user_enter(imapd_session *s, const char *user);
void imapd_user_leave(imapd_session *s);

/* ---- the selected mailbox (imapd_mbox.c): a folder's messages in UID order ---- */
/* Worker thread. folder_id 0: the always-present, empty INBOX. */
arca_status imapd_mailbox_open(arca_svc_handles *h, const char *name, uint32_t archive_id,
                               uint32_t folder_id, imapd_mailbox **out, arca_error *err);
/* Worker thread: appends messages archived since; *added says how many. */
arca_status imapd_mailbox_refresh(arca_svc_handles *h, imapd_mailbox *m, size_t *added,
                                  arca_error *err);
size_t imapd_mailbox_count(const imapd_mailbox *m);
/* The archive and folder behind the mailbox (folder 0: the stand-in empty INBOX). */
void imapd_mailbox_folder(const imapd_mailbox *m, uint32_t *archive_id, uint32_t *folder_id);
uint32_t imapd_mailbox_uidvalidity(const imapd_mailbox *m);
uint32_t imapd_mailbox_uidnext(const imapd_mailbox *m);
uint64_t imapd_mailbox_highestmodseq(const imapd_mailbox *m);
/* Message idx (0-based; sequence number idx + 1). */
void imapd_mailbox_entry(const imapd_mailbox *m, size_t idx, uint32_t *uid, uint32_t *store_id,
                         uint64_t *msg_id);
/* Index of the first message with UID >= uid (count if none). */
size_t imapd_mailbox_lower_bound(const imapd_mailbox *m, uint32_t uid);
/* Size and archive time without reading the message. */
arca_status imapd_mailbox_msginfo(arca_svc_handles *h, const imapd_mailbox *m, size_t idx,
                                  uint64_t *size, int64_t *archived, arca_error *err);
/* A sequence set (message numbers, or UIDs with uid) -> bitmap over the selected mailbox
 * (caller frees). "$" is the saved SEARCHRES result. Message numbers beyond the mailbox are an
 * error (RFC 9051 §6.4.8 BAD); UIDs that do not exist are ignored. */
arca_status imapd_mailbox_select_set(imapd_session *s, const char *set, size_t len, bool uid,
                                     uint8_t **bitmap, arca_error *err);

/* the change listener (IDLE) */
void imapd_idle_changed(imapd_session *s);
void imapd_mailbox_free(imapd_mailbox **m);
/* NOOP/CHECK in the selected state: report new messages (runs on a worker). */
void imapd_mailbox_poll(imapd_cmd *c);

/* command families */
void imapd_cmd_capability(imapd_cmd *c);
void imapd_cmd_noop(imapd_cmd *c);
void imapd_cmd_logout(imapd_cmd *c);
void imapd_cmd_id(imapd_cmd *c);
void imapd_cmd_enable(imapd_cmd *c);
void imapd_cmd_starttls(imapd_cmd *c);
void imapd_cmd_compress(imapd_cmd *c);
void imapd_cmd_login(imapd_cmd *c);
void imapd_cmd_authenticate(imapd_cmd *c);
void imapd_cmd_readonly(imapd_cmd *c);
void imapd_cmd_namespace(imapd_cmd *c);
void imapd_cmd_list(imapd_cmd *c);
void imapd_cmd_status(imapd_cmd *c);
void imapd_cmd_select(imapd_cmd *c);
void imapd_cmd_close(imapd_cmd *c);
void imapd_cmd_idle(imapd_cmd *c);
void imapd_cmd_subscribe(imapd_cmd *c);
void imapd_cmd_fetch(imapd_cmd *c);
void imapd_cmd_search(imapd_cmd *c);
void imapd_cmd_sort(imapd_cmd *c);
void imapd_cmd_thread(imapd_cmd *c);

#endif
