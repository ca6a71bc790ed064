/* Thin wrappers over OpenSSL 3 (SHA-256, AES-256-GCM) and libsodium (randomness, wiping).
 * Every function is stateless so that it can be called from any thread. */
#include "crypto/crypto.h"

#include "lib/hex.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sodium.h>

arca_status arca_crypto_init(arca_error *err)
{
	if (sodium_init() < 0)
		return arca_error_set(err, ARCA_ERR_CRYPTO, "libsodium initialisation failed");
	return ARCA_OK;
}

void arca_crypto_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

void arca_crypto_wipe(void *buf, size_t len)
{
	sodium_memzero(buf, len);
}

void arca_sha256(const void *data, size_t len, uint8_t out[ARCA_SHA256_LEN])
{
	SHA256(data, len, out);
}

/* OpenSSL takes int lengths; feed large inputs in chunks. */
#define CHUNK_MAX ((size_t)1 << 30)

static arca_status gcm(int enc, const uint8_t key[ARCA_KEY_LEN],
                       const uint8_t nonce[ARCA_GCM_NONCE_LEN], const void *aad, size_t aadlen,
                       const void *in, size_t len, void *out, uint8_t tag[ARCA_GCM_TAG_LEN],
                       arca_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	const uint8_t *ip = in;
	uint8_t *op = out;
	uint8_t fin[32]; /* GCM final produces no output; keeps NULL out legal */
	arca_status st = ARCA_ERR_CRYPTO;
	int n;
	if (ctx == NULL)
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory (cipher context)");
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
		goto fail;
	for (size_t off = 0; off < aadlen; off += CHUNK_MAX) {
		size_t c = aadlen - off < CHUNK_MAX ? aadlen - off : CHUNK_MAX;
		if (EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t *)aad + off, (int)c) != 1)
			goto fail;
	}
	for (size_t off = 0; off < len; off += CHUNK_MAX) {
		size_t c = len - off < CHUNK_MAX ? len - off : CHUNK_MAX;
		if (EVP_CipherUpdate(ctx, op + off, &n, ip + off, (int)c) != 1 || (size_t)n != c)
			goto fail;
	}
	if (enc) {
		if (EVP_CipherFinal_ex(ctx, fin, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ARCA_GCM_TAG_LEN, tag) != 1)
			goto fail;
	} else {
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ARCA_GCM_TAG_LEN, tag) != 1)
			goto fail;
		if (EVP_CipherFinal_ex(ctx, fin, &n) != 1) {
			/* Do not hand out unauthenticated plaintext. */
			if (len > 0)
				sodium_memzero(out, len);
			EVP_CIPHER_CTX_free(ctx);
			return arca_error_set(err, ARCA_ERR_CRYPTO,
			                      "authentication failed (wrong key or altered data)");
		}
	}
	st = ARCA_OK;
fail:
	EVP_CIPHER_CTX_free(ctx);
	if (st != ARCA_OK)
		return arca_error_set(err, st, "AES-256-GCM %s failed", enc ? "encryption" : "decryption");
	return st;
}

arca_status arca_aead_seal(const uint8_t key[ARCA_KEY_LEN], const uint8_t nonce[ARCA_GCM_NONCE_LEN],
                           const void *aad, size_t aadlen, const void *in, size_t len, void *out,
                           uint8_t tag[ARCA_GCM_TAG_LEN], arca_error *err)
{
	return gcm(1, key, nonce, aad, aadlen, in, len, out, tag, err);
}

arca_status arca_aead_open(const uint8_t key[ARCA_KEY_LEN], const uint8_t nonce[ARCA_GCM_NONCE_LEN],
                           const void *aad, size_t aadlen, const void *in, size_t len, void *out,
                           const uint8_t tag[ARCA_GCM_TAG_LEN], arca_error *err)
{
	uint8_t t[ARCA_GCM_TAG_LEN];
	memcpy(t, tag, sizeof(t));
	return gcm(0, key, nonce, aad, aadlen, in, len, out, t, err);
}

arca_status arca_key_wrap(const uint8_t kek[ARCA_KEY_LEN], const uint8_t key[ARCA_KEY_LEN],
                          const char *label, uint8_t out[ARCA_WRAPPED_KEY_LEN], arca_error *err)
{
	size_t ll = label != NULL ? strlen(label) : 0;
	arca_crypto_random(out, ARCA_GCM_NONCE_LEN);
	return arca_aead_seal(kek, out, label, ll, key, ARCA_KEY_LEN, out + ARCA_GCM_NONCE_LEN,
	                      out + ARCA_GCM_NONCE_LEN + ARCA_KEY_LEN, err);
}

arca_status arca_key_unwrap(const uint8_t kek[ARCA_KEY_LEN], const uint8_t in[ARCA_WRAPPED_KEY_LEN],
                            const char *label, uint8_t key[ARCA_KEY_LEN], arca_error *err)
{
	size_t ll = label != NULL ? strlen(label) : 0;
	arca_status st = arca_aead_open(kek, in, label, ll, in + ARCA_GCM_NONCE_LEN, ARCA_KEY_LEN,
	                                key, in + ARCA_GCM_NONCE_LEN + ARCA_KEY_LEN, err);
	if (st == ARCA_ERR_CRYPTO)
		arca_error_set(err, st, "cannot unwrap key \"%s\": wrong key or altered data",
		               label != NULL ? label : "");
	return st;
}

void arca_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

arca_status arca_hex_decode(const char *in, uint8_t *out, size_t outlen)
{
	size_t n = 0;
	int hi = -1;
	for (const char *p = in; *p != '\0'; p++) {
		int v;
		if (*p == '-' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			continue;
		v = arca_hex_digit(*p);
		if (v < 0 || n >= outlen)
			return ARCA_ERR_INVALID;
		if (hi < 0) {
			hi = v;
		} else {
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return n == outlen && hi < 0 ? ARCA_OK : ARCA_ERR_INVALID;
}
