/* TLS for the listeners: server contexts from PEM files, a self-signed certificate when none
 * is configured, and SHA-256 certificate fingerprints (what pairing and users compare). */
#ifndef ARCA_NET_TLS_H
#define ARCA_NET_TLS_H

#include <stdbool.h>

#include "lib/error.h"

typedef struct ssl_ctx_st SSL_CTX;

#define ARCA_TLS_FINGERPRINT_LEN 96 /* "AB:CD:..." 32 bytes -> 95 chars + NUL */

/* Writes a new self-signed certificate (ECDSA P-256, SAN localhost, 127.0.0.1, ::1 and
 * common_name) and its key (mode 0600) if cert_path does not exist yet. *created tells. */
arca_status arca_tls_ensure_self_signed(const char *cert_path, const char *key_path,
                                        const char *common_name, bool *created, arca_error *err);
/* A server context (TLS 1.2 and 1.3 only) with the chain and key from PEM files. */
arca_status arca_tls_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out,
                                arca_error *err);
void arca_tls_ctx_free(SSL_CTX **ctx);
arca_status arca_tls_fingerprint(const char *cert_path, char out[ARCA_TLS_FINGERPRINT_LEN],
                                 arca_error *err);

#endif
