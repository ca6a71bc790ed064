/* Cryptographic primitives used by the store and the instance key hierarchy.
 * OpenSSL 3 for SHA-256 and AES-256-GCM; libsodium for randomness and wiping. */
#ifndef ARCA_CRYPTO_CRYPTO_H
#define ARCA_CRYPTO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

#define ARCA_KEY_LEN 32
#define ARCA_SHA256_LEN 32
#define ARCA_GCM_NONCE_LEN 12
#define ARCA_GCM_TAG_LEN 16
/* nonce || ciphertext(32) || tag */
#define ARCA_WRAPPED_KEY_LEN (ARCA_GCM_NONCE_LEN + ARCA_KEY_LEN + ARCA_GCM_TAG_LEN)

/* Must be called once before anything else (initialises libsodium). */
arca_status arca_crypto_init(arca_error *err);

void arca_crypto_random(void *buf, size_t len);
void arca_crypto_wipe(void *buf, size_t len);

void arca_sha256(const void *data, size_t len, uint8_t out[ARCA_SHA256_LEN]);

/* AES-256-GCM. out must hold len bytes; tag is separate. aad may be NULL if aadlen == 0. */
arca_status arca_aead_seal(const uint8_t key[ARCA_KEY_LEN], const uint8_t nonce[ARCA_GCM_NONCE_LEN],
                           const void *aad, size_t aadlen, const void *in, size_t len, void *out,
                           uint8_t tag[ARCA_GCM_TAG_LEN], arca_error *err);
/* Returns ARCA_ERR_CRYPTO if the tag does not verify (wrong key or altered data). */
arca_status arca_aead_open(const uint8_t key[ARCA_KEY_LEN], const uint8_t nonce[ARCA_GCM_NONCE_LEN],
                           const void *aad, size_t aadlen, const void *in, size_t len, void *out,
                           const uint8_t tag[ARCA_GCM_TAG_LEN], arca_error *err);

/* Wraps a 32-byte key with a key-encryption key; label is bound as AAD (e.g. "arca-store-key"). */
arca_status arca_key_wrap(const uint8_t kek[ARCA_KEY_LEN], const uint8_t key[ARCA_KEY_LEN],
                          const char *label, uint8_t out[ARCA_WRAPPED_KEY_LEN], arca_error *err);
arca_status arca_key_unwrap(const uint8_t kek[ARCA_KEY_LEN], const uint8_t in[ARCA_WRAPPED_KEY_LEN],
                            const char *label, uint8_t key[ARCA_KEY_LEN], arca_error *err);

/* Lower-case hex encoding; out must hold 2*len+1. */
void arca_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly outlen bytes of hex, ignoring '-' and whitespace; ARCA_ERR_INVALID otherwise. */
arca_status arca_hex_decode(const char *in, uint8_t *out, size_t outlen);

#endif
