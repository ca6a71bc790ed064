/* Unit tests for src/crypto: SHA-256 vectors, AEAD round trips, tampering, key wrap, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "crypto/crypto.h"

static int setup(void **state)
{
	(void)state;
	return arca_crypto_init(NULL) == ARCA_OK ? 0 : -1;
}

static void test_sha256(void **state)
{
	uint8_t d[ARCA_SHA256_LEN];
	char hex[2 * ARCA_SHA256_LEN + 1];
	(void)state;
	arca_sha256("abc", 3, d);
	arca_hex_encode(d, sizeof(d), hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	arca_sha256("", 0, d);
	arca_hex_encode(d, sizeof(d), hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_aead_roundtrip(void **state)
{
	uint8_t key[ARCA_KEY_LEN], nonce[ARCA_GCM_NONCE_LEN], tag[ARCA_GCM_TAG_LEN];
	uint8_t pt[1000], ct[1000], back[1000];
	arca_error e;
	(void)state;
	arca_crypto_random(key, sizeof(key));
	arca_crypto_random(nonce, sizeof(nonce));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	assert_int_equal(arca_aead_seal(key, nonce, "aad", 3, pt, sizeof(pt), ct, tag, &e), ARCA_OK);
	assert_memory_not_equal(pt, ct, sizeof(pt));
	assert_int_equal(arca_aead_open(key, nonce, "aad", 3, ct, sizeof(ct), back, tag, &e),
	                 ARCA_OK);
	assert_memory_equal(pt, back, sizeof(pt));
	/* empty plaintext, no aad */
	assert_int_equal(arca_aead_seal(key, nonce, NULL, 0, NULL, 0, NULL, tag, &e), ARCA_OK);
	assert_int_equal(arca_aead_open(key, nonce, NULL, 0, NULL, 0, NULL, tag, &e), ARCA_OK);
}

static void test_aead_tamper(void **state)
{
	uint8_t key[ARCA_KEY_LEN], key2[ARCA_KEY_LEN], nonce[ARCA_GCM_NONCE_LEN];
	uint8_t tag[ARCA_GCM_TAG_LEN], pt[64], ct[64], back[64];
	arca_error e;
	(void)state;
	arca_crypto_random(key, sizeof(key));
	memcpy(key2, key, sizeof(key));
	key2[5] ^= 1;
	arca_crypto_random(nonce, sizeof(nonce));
	memset(pt, 'x', sizeof(pt));
	assert_int_equal(arca_aead_seal(key, nonce, "h", 1, pt, sizeof(pt), ct, tag, &e), ARCA_OK);
	ct[10] ^= 0x40;
	assert_int_equal(arca_aead_open(key, nonce, "h", 1, ct, sizeof(ct), back, tag, &e),
	                 ARCA_ERR_CRYPTO);
	assert_non_null(strstr(e.msg, "authentication failed"));
	ct[10] ^= 0x40;
	assert_int_equal(arca_aead_open(key, nonce, "H", 1, ct, sizeof(ct), back, tag, &e),
	                 ARCA_ERR_CRYPTO);
	assert_int_equal(arca_aead_open(key2, nonce, "h", 1, ct, sizeof(ct), back, tag, &e),
	                 ARCA_ERR_CRYPTO);
	tag[0] ^= 1;
	assert_int_equal(arca_aead_open(key, nonce, "h", 1, ct, sizeof(ct), back, tag, &e),
	                 ARCA_ERR_CRYPTO);
	tag[0] ^= 1;
	assert_int_equal(arca_aead_open(key, nonce, "h", 1, ct, sizeof(ct), back, tag, &e), ARCA_OK);
	assert_memory_equal(pt, back, sizeof(pt));
}

static void test_key_wrap(void **state)
{
	uint8_t kek[ARCA_KEY_LEN], key[ARCA_KEY_LEN], back[ARCA_KEY_LEN];
	uint8_t w[ARCA_WRAPPED_KEY_LEN], w2[ARCA_WRAPPED_KEY_LEN];
	arca_error e;
	(void)state;
	arca_crypto_random(kek, sizeof(kek));
	arca_crypto_random(key, sizeof(key));
	assert_int_equal(arca_key_wrap(kek, key, "arca-store-key", w, &e), ARCA_OK);
	assert_int_equal(arca_key_wrap(kek, key, "arca-store-key", w2, &e), ARCA_OK);
	assert_memory_not_equal(w, w2, sizeof(w)); /* fresh nonce each time */
	assert_int_equal(arca_key_unwrap(kek, w, "arca-store-key", back, &e), ARCA_OK);
	assert_memory_equal(key, back, sizeof(key));
	assert_int_equal(arca_key_unwrap(kek, w, "other-label", back, &e), ARCA_ERR_CRYPTO);
	kek[0] ^= 1;
	assert_int_equal(arca_key_unwrap(kek, w, "arca-store-key", back, &e), ARCA_ERR_CRYPTO);
	kek[0] ^= 1;
	w[ARCA_WRAPPED_KEY_LEN - 1] ^= 1;
	assert_int_equal(arca_key_unwrap(kek, w, "arca-store-key", back, &e), ARCA_ERR_CRYPTO);
	arca_crypto_wipe(key, sizeof(key));
	for (size_t i = 0; i < sizeof(key); i++)
		assert_int_equal(key[i], 0);
}

static void test_hex(void **state)
{
	uint8_t b[4];
	char s[9];
	(void)state;
	assert_int_equal(arca_hex_decode("DEad-be ef", b, 4), ARCA_OK);
	arca_hex_encode(b, 4, s);
	assert_string_equal(s, "deadbeef");
	assert_int_equal(arca_hex_decode("deadbe", b, 4), ARCA_ERR_INVALID);
	assert_int_equal(arca_hex_decode("deadbeef00", b, 4), ARCA_ERR_INVALID);
	assert_int_equal(arca_hex_decode("deadbeeg", b, 4), ARCA_ERR_INVALID);
	assert_int_equal(arca_hex_decode("deadbee", b, 4), ARCA_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_aead_roundtrip),
		cmocka_unit_test(test_aead_tamper),
		cmocka_unit_test(test_key_wrap),
		cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
