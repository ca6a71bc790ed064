/* The selected mailbox: a folder's messages in UID order (sequence number = index + 1), and
 * sequence sets over it. Built on a worker from the archive's folder view; read-only, so
 * messages only ever get appended (new arrivals), never expunged. */
#include <stdlib.h>
#include <string.h>

#include "imap/imapd_int.h"

struct imapd_mailbox {
	char *name;
	uint32_t archive_id, folder_id;
	arca_folder_view *view; /* NULL for the empty INBOX that stands in for a missing one */
};

arca_status imapd_mailbox_open(arca_svc_handles *h, const char *name, uint32_t archive_id,
                               uint32_t folder_id, imapd_mailbox **out, arca_error *err)
{
	imapd_mailbox *m;
	arca_status st = ARCA_OK;
	*out = NULL;
	if (h->inst == NULL) {
		*err = h->open_err;
		return err->status != ARCA_OK ? err->status : ARCA_ERR_IO;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->name = strdup(name)) == NULL) {
		free(m);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	m->archive_id = archive_id;
	m->folder_id = folder_id;
	if (folder_id != 0)
		st = arca_instance_folder_view(h->inst, folder_id, &m->view, err);
	if (st != ARCA_OK) {
		imapd_mailbox_free(&m);
		return st;
	}
	*out = m;
	return ARCA_OK;
}

arca_status imapd_mailbox_refresh(arca_svc_handles *h, imapd_mailbox *m, size_t *added,
                                  arca_error *err)
{
	*added = 0;
	if (m->view == NULL)
		return ARCA_OK;
	if (h->inst == NULL) {
		*err = h->open_err;
		return err->status != ARCA_OK ? err->status : ARCA_ERR_IO;
	}
	return arca_folder_view_refresh(h->inst, m->view, added, err);
}

void imapd_mailbox_free(imapd_mailbox **pm)
{
	imapd_mailbox *m = pm != NULL ? *pm : NULL;
	if (m == NULL)
		return;
	free(m->name);
	arca_folder_view_free(&m->view);
	free(m);
	*pm = NULL;
}

size_t imapd_mailbox_count(const imapd_mailbox *m)
{
	return m->view != NULL ? m->view->count : 0;
}

void imapd_mailbox_folder(const imapd_mailbox *m, uint32_t *archive_id, uint32_t *folder_id)
{
	*archive_id = m->archive_id;
	*folder_id = m->folder_id;
}

uint32_t imapd_mailbox_uidvalidity(const imapd_mailbox *m)
{
	return m->view != NULL ? m->view->uidvalidity : 1;
}

uint32_t imapd_mailbox_uidnext(const imapd_mailbox *m)
{
	return m->view != NULL && m->view->uid_next != 0 ? m->view->uid_next : 1;
}

/* MODSEQ of a message is its UID: nothing about a message changes after it is archived, so
 * its mod-sequence is the moment it arrived (RFC 7162 allows any increasing assignment). */
uint64_t imapd_mailbox_highestmodseq(const imapd_mailbox *m)
{
	size_t n = imapd_mailbox_count(m);
	return n > 0 ? m->view->msgs[n - 1].uid : 1;
}

void imapd_mailbox_entry(const imapd_mailbox *m, size_t idx, uint32_t *uid, uint32_t *store_id,
                         uint64_t *msg_id)
{
	const arca_folder_msg *e = &m->view->msgs[idx];
	*uid = e->uid;
	*store_id = e->store_id;
	*msg_id = e->msg_id;
}

size_t imapd_mailbox_lower_bound(const imapd_mailbox *m, uint32_t uid)
{
	size_t lo = 0, hi = imapd_mailbox_count(m);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->view->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

arca_status imapd_mailbox_msginfo(arca_svc_handles *h, const imapd_mailbox *m, size_t idx,
                                  uint64_t *size, int64_t *archived, arca_error *err)
{
	arca_message_info info;
	arca_status st;
	if (h->inst == NULL) {
		if (err != NULL)
			*err = h->open_err;
		return ARCA_ERR_IO;
	}
	st = arca_instance_msginfo(h->inst, m->view->msgs[idx].store_id, m->view->msgs[idx].msg_id,
	                           &info, err);
	if (st == ARCA_OK) {
		*size = info.size;
		*archived = info.archive_time;
	}
	return st;
}

static void set_bit(uint8_t *b, size_t i)
{
	b[i / 8] |= (uint8_t)(1u << (i % 8));
}

arca_status imapd_mailbox_select_set(imapd_session *s, const char *text, size_t len, bool uid,
                                     uint8_t **bitmap, arca_error *err)
{
	const imapd_mailbox *m = s->mbox;
	arca_imap_seqset *set = NULL;
	uint8_t *b;
	size_t n;
	arca_status st;
	*bitmap = NULL;
	st = arca_imap_seqset_parse(text, len, &set, err);
	if (st != ARCA_OK)
		return st;
	n = imapd_mailbox_count(m);
	b = calloc(n / 8 + 1, 1);
	if (b == NULL) {
		arca_imap_seqset_free(&set);
		return arca_error_set(err, ARCA_ERR_NOMEM, "out of memory");
	}
	if (arca_imap_seqset_is_searchres(set)) {
		/* $: the UIDs the last SEARCH ... RETURN (SAVE) found (RFC 5182) */
		for (size_t i = 0; i < s->n_searchres; i++) {
			size_t k = imapd_mailbox_lower_bound(m, s->searchres[i]);
			if (k < n && m->view->msgs[k].uid == s->searchres[i])
				set_bit(b, k);
		}
	} else {
		uint32_t max = uid ? (n > 0 ? m->view->msgs[n - 1].uid : 0) : (uint32_t)n;
		for (size_t r = 0; r < arca_imap_seqset_count(set); r++) {
			arca_imap_seqrange rg = arca_imap_seqset_range(set, r);
			uint32_t lo = rg.lo == ARCA_IMAP_SEQ_STAR ? max : rg.lo;
			uint32_t hi = rg.hi == ARCA_IMAP_SEQ_STAR ? max : rg.hi;
			if (lo > hi) {
				uint32_t t = lo;
				lo = hi;
				hi = t;
			}
			if (uid) {
				for (size_t k = imapd_mailbox_lower_bound(m, lo); k < n && m->view->msgs[k].uid <= hi;
				     k++)
					set_bit(b, k);
			} else {
				if (n == 0 || hi > n || lo == 0) {
					free(b);
					arca_imap_seqset_free(&set);
					return arca_error_set(err, ARCA_ERR_SYNTAX,
					                      n == 0 ? "the mailbox is empty: no message numbers" :
					                               "message number beyond the last message (%zu)",
					                      n);
				}
				for (uint32_t k = lo; k <= hi; k++)
					set_bit(b, k - 1);
			}
		}
	}
	arca_imap_seqset_free(&set);
	*bitmap = b;
	return ARCA_OK;
}
