/* The HTTP JSON API of an instance process (docs/api.md): POST /api/invoke/<Command> with a
 * JSON object of named arguments, asynchronous jobs (/api/get-status, /api/cancel-async),
 * sessions (/api/login, /api/logout), uploads and downloads. Runs on the service context's
 * event loop; every command's work runs on its worker pool, archive-changing operations on
 * one job thread of its own. */
#ifndef ARCA_API_API_H
#define ARCA_API_API_H

#include <event2/listener.h>

#include "lib/error.h"
#include "net/svc.h"
#include "net/tls.h"

typedef struct arca_api arca_api;

/* Creates the API of the instance served by svc (creates <base>/run/tmp for uploads and
 * exports, starts the job thread). Loop thread. */
arca_status arca_api_new(arca_svc *svc, arca_api **out, arca_error *err);
/* Stops accepting, cancels jobs and waits for them to stop at a commit boundary, waits for
 * running worker work, frees. Accepts NULL; sets *api to NULL. Loop thread. */
void arca_api_free(arca_api **api);
/* Serves HTTP on an already-listening evconnlistener (TCP or Unix socket), which the API
 * then owns (enables it; frees it in arca_api_shutdown / arca_api_free). tls != NULL: HTTPS
 * with that context (not owned; must outlive the API). Call once per listener. */
arca_status arca_api_listen(arca_api *api, struct evconnlistener *l, SSL_CTX *tls,
                            arca_error *err);
/* Stops accepting connections; requests and jobs in flight go on. */
void arca_api_shutdown(arca_api *api);

#endif
