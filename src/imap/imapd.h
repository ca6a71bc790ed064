/* The read-only IMAP server of an instance process (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2
 * on ENABLE). Sessions live on the event loop; commands that touch the archive run on the
 * service's worker pool and stream their responses back with flow control. */
#ifndef ARCA_IMAP_IMAPD_H
#define ARCA_IMAP_IMAPD_H

#include <stdbool.h>

#include "imap/fetch_cache.h"
#include "lib/error.h"
#include "net/svc.h"

struct evconnlistener;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct arca_imapd arca_imapd;

typedef struct {
	SSL_CTX *tls;                 /* for STARTTLS and implicit-TLS listeners; NULL: no TLS */
	unsigned max_user_conns;      /* parallel sessions per user (0: default 20) */
	unsigned idle_timeout_s;      /* authenticated, idle (0: default and minimum 1800, RFC 9051) */
	unsigned login_timeout_s;     /* before login (0: default 60) */
	unsigned idle_poll_s;         /* IDLE re-checks the folder for other writers (0: default 15) */
	const char *instance_id;      /* "ID/user" logins are accepted for this instance id */
	bool no_compress;             /* COMPRESS=DEFLATE not offered: saves server CPU where links are
	                               * fast (it is offered by default) */
	arca_imap_fcache *fetch_cache; /* borrowed, outlives the server; NULL: no FETCH cache */
} arca_imapd_config;

arca_status arca_imapd_new(arca_svc *svc, const arca_imapd_config *cfg, arca_imapd **out,
                           arca_error *err);
/* Serves IMAP on a listening socket. implicit_tls: TLS from the first byte (port 993).
 * trusted: a Unix socket inside the run directory (the Client Access Server terminated TLS):
 * plaintext logins are allowed there; on TCP without TLS they are refused (LOGINDISABLED). */
arca_status arca_imapd_listen(arca_imapd *d, struct evconnlistener *l, bool implicit_tls,
                              bool trusted, arca_error *err);
/* New timeouts and limits (SIGHUP); sessions pick them up on their next timer. */
void arca_imapd_reconfigure(arca_imapd *d, const arca_imapd_config *cfg);
/* Stops accepting and says BYE to every session after its current command. */
void arca_imapd_shutdown(arca_imapd *d);
/* Tells every session's running command to stop and unregisters from the service (call
 * before the service and its worker pool are freed; arca_imapd_free comes after). */
void arca_imapd_abort(arca_imapd *d);
/* Sessions still open (shutdown waits for 0 or a deadline). */
unsigned arca_imapd_sessions(const arca_imapd *d);
void arca_imapd_free(arca_imapd **d);

#endif
