/* libFuzzer harness for the container reader: the input is written as a container file and
 * the recovery walk (arca_store_recreate_meta) runs over it with a fixed key. Seeds in
 * fuzz/corpus/fuzz_container/ are real containers made with the same key, so mutations
 * exercise header parsing, resync and (for intact records) the inner-record parsers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fs.h"
#include "lib/log.h"
#include "store/store.h"

/* The seed corpus key: bytes 0x00..0x1f, key id 1. */
static uint8_t key[ARCA_KEY_LEN];
static char dir[64], meta[128], content[128], cfile[160];

static arca_status resolve(void *ctx, const char *archive_name, const char *folder_path,
                           uint32_t *archive_id, uint32_t *folder_id)
{
	(void)ctx;
	*archive_id = 1 + (uint32_t)strlen(archive_name) % 7;
	*folder_id = 1 + (uint32_t)strlen(folder_path) % 13;
	return ARCA_OK;
}

static void damage(void *ctx, uint64_t msg_id, const char *reason)
{
	(void)ctx;
	(void)msg_id;
	(void)reason;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	if (arca_crypto_init(NULL) != ARCA_OK)
		abort();
	arca_log_set_level(ARCA_LOG_ERROR);
	/* tmpfs if available: every run creates a database and syncs it */
	snprintf(dir, sizeof(dir), "%s/arca-fuzz-container-XXXXXX",
	         arca_fs_is_dir("/dev/shm") ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(meta, sizeof(meta), "%s/meta.db", dir);
	snprintf(content, sizeof(content), "%s/content", dir);
	snprintf(cfile, sizeof(cfile), "%s/c000001.dat", content);
	if (arca_fs_mkdirs(content, NULL) != ARCA_OK)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arca_store_paths p = {.meta_path = meta, .content_dir = content};
	FILE *f = fopen(cfile, "wb");
	arca_error e;
	uint64_t n;
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	unlink(meta);
	arca_store_recreate_meta(&p, key, 1, resolve, NULL, damage, NULL, &n, &e);
	/* The rebuilt store must open (read-only: the walk result is what is tested). */
	if (arca_fs_exists(meta)) {
		arca_store *s = NULL;
		if (arca_store_open(&p, key, 1, ARCA_STORE_READONLY, &s, &e) == ARCA_OK) {
			uint64_t checked, damaged;
			arca_store_verify(s, NULL, NULL, &checked, &damaged, &e);
			arca_store_close(&s);
		}
		unlink(meta);
	}
	return 0;
}
