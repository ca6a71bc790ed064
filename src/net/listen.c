#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

arca_status arca_listen_parse(const char *spec, arca_listen_addr *out, arca_error *err)
{
	char host[256];
	const char *colon, *port_s;
	char *end;
	unsigned long port;
	memset(out, 0, sizeof(*out));
	if (spec == NULL || spec[0] == 0)
		return arca_error_set(err, ARCA_ERR_INVALID, "empty listen address");
	snprintf(out->text, sizeof(out->text), "%s", spec);
	if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
		const char *path = spec[0] == '/' ? spec : spec + 5;
		if (strlen(path) == 0 || strlen(path) >= sizeof(sun->sun_path))
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "unix socket path must be 1..%zu bytes: %s",
			                      sizeof(sun->sun_path) - 1, path);
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		out->len = sizeof(*sun);
		out->is_unix = true;
		return ARCA_OK;
	}
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof(host))
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "bad listen address '%s' (use [ADDR]:PORT for IPv6)", spec);
		memcpy(host, spec + 1, (size_t)(rb - spec - 1));
		host[rb - spec - 1] = 0;
		port_s = rb + 2;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "bad listen address '%s' (use ADDR:PORT)", spec);
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = 0;
		port_s = colon + 1;
	}
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (port_s[0] == 0 || *end != 0 || errno != 0 || port > 65535)
		return arca_error_set(err, ARCA_ERR_INVALID, "bad port in listen address '%s'", spec);
	if (host[0] == 0 || strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "0.0.0.0");
	{
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
			out->len = sizeof(*sin);
		} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)port);
			out->len = sizeof(*sin6);
		} else {
			return arca_error_set(err, ARCA_ERR_INVALID,
			                      "bad listen address '%s': '%s' is not an IP address", spec,
			                      host);
		}
	}
	return ARCA_OK;
}

arca_status arca_listen_open(struct event_base *base, const arca_listen_addr *addr,
                             evconnlistener_cb cb, void *arg, struct evconnlistener **out,
                             arca_error *err)
{
	struct evconnlistener *l;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
	*out = NULL;
	if (addr->is_unix) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr->ss;
		struct stat sb;
		if (lstat(sun->sun_path, &sb) == 0 && S_ISSOCK(sb.st_mode))
			unlink(sun->sun_path);
		flags &= ~(unsigned)LEV_OPT_REUSEABLE;
	}
	l = evconnlistener_new_bind(base, cb, arg, flags, 511, (const struct sockaddr *)&addr->ss,
	                            (int)addr->len);
	if (l == NULL)
		return arca_error_errno(err, errno, "cannot listen on %s", addr->text);
	if (addr->is_unix) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr->ss;
		if (chmod(sun->sun_path, 0660) != 0) {
			int e = errno;
			evconnlistener_free(l);
			return arca_error_errno(err, e, "cannot chmod %s", sun->sun_path);
		}
	}
	*out = l;
	return ARCA_OK;
}

void arca_listen_peer_text(const struct sockaddr *sa, int len, bool host_only, char *out,
                           size_t out_len)
{
	char host[INET6_ADDRSTRLEN];
	if (sa == NULL || len <= 0) {
		snprintf(out, out_len, "unknown");
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		if (host_only)
			snprintf(out, out_len, "%s", host);
		else
			snprintf(out, out_len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		if (host_only)
			snprintf(out, out_len, "%s", host);
		else
			snprintf(out, out_len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, out_len, "unix");
	}
}
