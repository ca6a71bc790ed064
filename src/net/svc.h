/* The service context of one instance process, shared by its protocol front ends (IMAP, HTTP
 * API): the event loop, the worker pool whose threads each hold their own read handles on the
 * instance (archive engine + users), login throttling, and "archive changed" notifications
 * (an import committed: IDLE sessions announce new messages). */
#ifndef ARCA_NET_SVC_H
#define ARCA_NET_SVC_H

#include <stdint.h>

#include "archive/instance.h"
#include "auth/throttle.h"
#include "auth/users.h"
#include "lib/error.h"
#include "net/pool.h"

struct event_base;
typedef struct arca_svc arca_svc;

typedef struct {
	const char *base;     /* instance base directory */
	const char *key_file; /* instance key */
	unsigned workers;     /* worker threads (0: default 4) */
} arca_svc_config;

/* A worker's handles, opened on first use on that thread. If opening failed, inst/users are
 * NULL and open_err says why (the work function reports it to its client). */
typedef struct {
	arca_instance *inst; /* ARCA_INSTANCE_READONLY */
	arca_users *users;   /* read-write: logins, user management */
	arca_error open_err;
} arca_svc_handles;

typedef void (*arca_svc_work_fn)(arca_svc_handles *h, void *job);
typedef void (*arca_svc_change_fn)(void *arg);

arca_status arca_svc_new(struct event_base *base, const arca_svc_config *cfg, arca_svc **out,
                         arca_error *err);
void arca_svc_free(arca_svc **svc);

struct event_base *arca_svc_base(arca_svc *svc);
const char *arca_svc_base_dir(const arca_svc *svc);
const char *arca_svc_key_file(const arca_svc *svc);

/* Runs work on a worker thread, then done (may be NULL) on the loop thread. */
arca_status arca_svc_submit(arca_svc *svc, arca_svc_work_fn work, arca_pool_done_fn done, void *job,
                            arca_error *err);
/* Loop thread only. */
arca_throttle *arca_svc_throttle(arca_svc *svc);

/* Change listeners run on the loop thread. on_change returns an id for off_change (< 0 if
 * out of memory). notify_change may be called from any thread; notifications coalesce. */
int arca_svc_on_change(arca_svc *svc, arca_svc_change_fn fn, void *arg);
void arca_svc_off_change(arca_svc *svc, int id);
void arca_svc_notify_change(arca_svc *svc);

/* Monotonic milliseconds. */
uint64_t arca_svc_now_ms(void);

#endif
