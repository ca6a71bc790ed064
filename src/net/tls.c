/* OpenSSL server-side setup. Certificates are generated with the EVP/X509 API rather than by
 * running openssl(1), so a fresh machine needs no extra tool and no shell. */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static arca_status ssl_err(arca_error *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	ERR_clear_error();
	return arca_error_set(err, ARCA_ERR_CRYPTO, "%s: %s", what, buf);
}

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ex == NULL)
		return 0;
	X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
	return 1;
}

static arca_status write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert,
                             arca_error *err)
{
	char tmp[4200];
	int fd, ok;
	FILE *f;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return arca_error_set(err, ARCA_ERR_INVALID, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return arca_error_errno(err, errno, "cannot create %s", tmp);
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return arca_error_errno(err, errno, "cannot open %s", tmp);
	}
	ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
	                   PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	fclose(f);
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return arca_error_errno(err, errno ? errno : EIO, "cannot write %s", path);
	}
	return ARCA_OK;
}

arca_status arca_tls_ensure_self_signed(const char *cert_path, const char *key_path,
                                        const char *common_name, bool *created, arca_error *err)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	char san[600];
	arca_status st = ARCA_OK;
	struct stat sb;
	*created = false;
	if (stat(cert_path, &sb) == 0)
		return ARCA_OK;
	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (key == NULL || cert == NULL) {
		st = ssl_err(err, "cannot generate a key");
		goto out;
	}
	X509_set_version(cert, 2);
	{
		unsigned char serial[16];
		BIGNUM *bn;
		if (RAND_bytes(serial, sizeof(serial)) != 1) {
			st = ssl_err(err, "no randomness");
			goto out;
		}
		serial[0] &= 0x7f;
		bn = BN_bin2bn(serial, sizeof(serial), NULL);
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Arca", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1,
	                           -1, 0);
	X509_set_issuer_name(cert, name);
	snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1%s%.200s",
	         strcmp(common_name, "localhost") != 0 ? ",DNS:" : "",
	         strcmp(common_name, "localhost") != 0 ? common_name : "");
	if (!add_ext(cert, NID_subject_alt_name, san) ||
	    !add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(cert, NID_ext_key_usage, "serverAuth") ||
	    X509_sign(cert, key, EVP_sha256()) == 0) {
		st = ssl_err(err, "cannot build the certificate");
		goto out;
	}
	st = write_pem(key_path, 0600, key, NULL, err);
	if (st == ARCA_OK)
		st = write_pem(cert_path, 0644, NULL, cert, err);
	if (st == ARCA_OK)
		*created = true;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return st;
}

arca_status arca_tls_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out,
                                arca_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	*out = NULL;
	if (ctx == NULL)
		return ssl_err(err, "cannot create a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* no renegotiation, no compression (CRIME); keep the server's cipher preference */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Small buffers for idle connections: OpenSSL frees its read/write buffers between
	 * records, which is what lets a thousand idle sessions stay cheap. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		SSL_CTX_free(ctx);
		return ssl_err(err, "cannot load the certificate");
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return ssl_err(err, "cannot load the certificate's private key");
	}
	*out = ctx;
	return ARCA_OK;
}

void arca_tls_ctx_free(SSL_CTX **ctx)
{
	if (ctx != NULL && *ctx != NULL) {
		SSL_CTX_free(*ctx);
		*ctx = NULL;
	}
}

arca_status arca_tls_fingerprint(const char *cert_path, char out[ARCA_TLS_FINGERPRINT_LEN],
                                 arca_error *err)
{
	FILE *f = fopen(cert_path, "r");
	X509 *cert;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	out[0] = 0;
	if (f == NULL)
		return arca_error_errno(err, errno, "cannot open %s", cert_path);
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL)
		return ssl_err(err, "cannot read the certificate");
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
		X509_free(cert);
		return ssl_err(err, "cannot hash the certificate");
	}
	X509_free(cert);
	for (unsigned i = 0; i < n; i++)
		snprintf(out + i * 3, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
	return ARCA_OK;
}
