/* Listening sockets: "HOST:PORT", "[V6]:PORT", or a Unix socket "unix:/path" (or any path
 * starting with '/'). Unix sockets are created mode 0660, a stale socket file is replaced. */
#ifndef ARCA_NET_LISTEN_H
#define ARCA_NET_LISTEN_H

#include <event2/listener.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "lib/error.h"

typedef struct {
	struct sockaddr_storage ss;
	socklen_t len;
	bool is_unix;
	char text[300]; /* as given, for logs */
} arca_listen_addr;

arca_status arca_listen_parse(const char *spec, arca_listen_addr *out, arca_error *err);
arca_status arca_listen_open(struct event_base *base, const arca_listen_addr *addr,
                             evconnlistener_cb cb, void *arg, struct evconnlistener **out,
                             arca_error *err);
/* Peer address as text ("127.0.0.1:5555", "[::1]:5555", "unix") for logs and throttling
 * (port-less in host_only mode). */
void arca_listen_peer_text(const struct sockaddr *sa, int len, bool host_only, char *out,
                           size_t out_len);

#endif
