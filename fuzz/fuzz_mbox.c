/* libFuzzer harness: the mbox splitter/unquoter on arbitrary input, and for every message it
 * yields, the export->import round trip (mboxrd quoting must give back the exact bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "sources/files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	const uint8_t *want;
	size_t want_len;
	int seen;
} rt_ctx;

static int compare_cb(void *vctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	rt_ctx *c = vctx;
	(void)offset;
	if (c->seen++ > 0 || len != c->want_len || (len > 0 && memcmp(msg, c->want, len) != 0))
		abort(); /* one exported message must split back into exactly itself */
	return 0;
}

static int roundtrip_cb(void *vctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	arca_buf mbox;
	rt_ctx c = {msg, len, 0};
	(void)vctx;
	(void)offset;
	arca_buf_init(&mbox, 8u * 1024u * 1024u);
	if (arca_mbox_append(&mbox, msg, len, 0) == ARCA_OK) {
		arca_mbox_split((const uint8_t *)mbox.data, mbox.len, compare_cb, &c, NULL, NULL);
		if (c.seen != 1)
			abort();
	}
	arca_buf_free(&mbox);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arca_mbox_split(data, size, roundtrip_cb, NULL, NULL, NULL);
	return 0;
}
