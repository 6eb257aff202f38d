/*
 * watch.c: the stream of a `watch` command (`raftfs watch`). After each apply, the events of every
 * open watch are read from the store into its handle's answer, as lines or JSON, while little of
 * it is unread; a read past the end (ns.c) waits for more, and the stream ends with an error line
 * when a compaction overtakes the watch. An interrupted read is answered from the loop, outside
 * libfuse's locks.
 */
#include "control/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define WATCH_UNREAD_MAX (256u * 1024) /* a watch reads no more history while this much waits */

static void out_base64(struct out *o, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	fs__control_out_bytes(o, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63],
			     i + 1 < n ? tab[v >> 6 & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
		fs__control_out_bytes(o, q, 4);
	}
	fs__control_out_bytes(o, "\"", 1);
}

static void watch_event(struct fs_control_handle *h, const struct store_event *ev)
{
	const struct store_kv *kv = &ev->kv;
	int put = ev->type == STORE_EVENT_PUT;
	struct out *o = &h->out;
	if (h->json) {
		fs__control_out_printf(o, "{\"type\":\"%s\",\"key\":", put ? "PUT" : "DELETE");
		fs__control_out_json_str(o, kv->key, kv->key_len);
		fs__control_out_printf(o, ",\"revision\":%" PRId64, kv->mod_revision);
		if (put) {
			fs__control_out_printf(o, ",\"create_revision\":%" PRId64
						  ",\"version\":%" PRId64 ",\"lease\":%" PRId64
						  ",\"size\":%zu,\"value\":",
					       kv->create_revision, kv->version, kv->lease,
					       kv->value_len);
			out_base64(o, kv->value, kv->value_len);
		}
		fs__control_out_printf(o, "}\n");
	} else if (put) {
		fs__control_out_printf(o, "PUT %.*s rev=%" PRId64 " version=%" PRId64
					  " size=%zu lease=%" PRId64 "\n",
				       (int)kv->key_len, (const char *)kv->key, kv->mod_revision,
				       kv->version, kv->value_len, kv->lease);
	} else {
		fs__control_out_printf(o, "DELETE %.*s rev=%" PRId64 "\n", (int)kv->key_len,
				       (const char *)kv->key, kv->mod_revision);
	}
}

/* Reads what the watch has (while little is unread); ends it on compaction. */
void fs__control_watch_pump(struct fs_control_handle *h)
{
	while (h->watch && !h->watch_ended && h->out.len < WATCH_UNREAD_MAX) {
		struct store_watch_batch b;
		int rc = store_watch_next(h->watch, 256, &b);
		if (rc == STORE_ECOMPACTED) {
			fs__control_out_printf(
				&h->out,
				"error: the watch fell behind a compaction at revision %" PRId64
				"; watch again from revision %" PRId64 "\n",
				b.compact_rev, b.compact_rev + 1);
			h->watch_ended = 1;
		} else if (rc != 0) {
			fs__control_out_printf(&h->out, "error: the watch ended: %s\n",
					       fs_strerror(rc));
			h->watch_ended = 1;
		}
		size_t n = rc == 0 ? b.n : 0;
		for (size_t i = 0; i < n; i++)
			watch_event(h, &b.events[i]);
		store_watch_batch_free(&b);
		if (!n)
			break;
	}
}

/* Answers h's waiting read with what there is (nothing: the end of the stream). */
void fs__control_read_answer(struct fs_control_handle *h)
{
	fuse_req_t req = h->read_req;
	h->read_req = NULL;
	size_t n = h->out.len < h->read_size ? h->out.len : h->read_size;
	fuse_reply_buf(req, h->out.p, n);
	/* a watch's stream is read in order: what was read goes */
	memmove(h->out.p, h->out.p + n, h->out.len - n);
	h->out.len -= n;
	h->base += n;
}

void fs_control_after_apply(struct fs_control *c)
{
	for (struct fs_control_handle *h = c->handles; h; h = h->next) {
		if (!h->watch || h->watch_ended)
			continue;
		fs__control_watch_pump(h);
		if (h->read_req && (h->out.len || h->watch_ended))
			fs__control_read_answer(h);
	}
}

static void on_kick(uv_timer_t *t);

void fs__control_on_interrupt(fuse_req_t req, void *data)
{
	/* libfuse holds the request's lock here: answer from the loop, right after */
	struct fs_control_handle *h = data;
	h->read_interrupted = 1;
	uv_timer_start(&h->c->kick, on_kick, 0, 0);
}

static void on_kick(uv_timer_t *t)
{
	struct fs_control *c = t->data;
	for (struct fs_control_handle *h = c->handles; h; h = h->next)
		if (h->read_req && (h->read_interrupted || c->stopping)) {
			fuse_reply_err(h->read_req, EINTR);
			h->read_req = NULL;
			h->read_interrupted = 0;
		}
}
