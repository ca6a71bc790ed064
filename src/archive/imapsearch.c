/* Thin instance-level access to the full-text indexes for IMAP SEARCH (imapsearch.h). The
 * index handle is opened read-only as the archive's own search does; catching up a lagging
 * index is left to the import that writes it (the caller reads what the index lacks). */
#include "archive/imapsearch.h"

#include "archive/instance_int.h"

static arca_status open_index(arca_instance *in, uint32_t store_id, uint32_t archive_id,
                              arca_index **ix, arca_error *err)
{
	inst_store *s = inst_store_by_id(in, store_id);
	arca_status st;
	if (s == NULL || s->state == ARCA_STORE_DISABLED || !s->key_ok)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "no store %u", store_id);
	if ((st = inst_store_open(in, s, false, err)) != ARCA_OK)
		return st;
	st = inst_index_get(in, s, archive_id, false, ix, err);
	if (st == ARCA_ERR_NOTFOUND)
		return arca_error_set(err, ARCA_ERR_NOTFOUND, "store %u has no index of archive %u",
		                      store_id, archive_id);
	return st;
}

arca_status arca_instance_imap_indexed(arca_instance *in, uint32_t store_id, uint32_t archive_id,
                                       uint32_t folder_id, uint64_t **ids, size_t *n,
                                       arca_error *err)
{
	arca_index *ix;
	arca_status st = open_index(in, store_id, archive_id, &ix, err);
	*ids = NULL;
	*n = 0;
	if (st != ARCA_OK)
		return st;
	return arca_index_imap_folder(ix, folder_id, ids, n, err);
}

arca_status arca_instance_imap_words(arca_instance *in, uint32_t store_id, uint32_t archive_id,
                                     uint32_t folder_id, const char *text, size_t len,
                                     unsigned fields, uint64_t **ids, size_t *n, arca_error *err)
{
	arca_index *ix;
	arca_status st = open_index(in, store_id, archive_id, &ix, err);
	*ids = NULL;
	*n = 0;
	if (st != ARCA_OK)
		return st;
	return arca_index_imap_words(ix, folder_id, text, len, fields, ids, n, err);
}
