/*
 * control.c: the life cycle of the control services on the member's loop (start, the timers, and
 * the stop that revokes the session lease first), the proposals they make (each a struct
 * fs_control_call, answered by its done callback and, for a command, by the reply to the write
 * that carried it), and the output buffers every answer of `.raftfs/` is written into. See
 * control/control.h for what the services are, control/internal.h for how the files of this
 * folder share them.
 */
#include "control/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_WAIT_MS 2000

/* ---- output buffers --------------------------------------------------------------------------- */

static int out_reserve(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 1024;
	while (cap < o->len + n)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (!p) {
		o->oom = 1;
		return -ENOMEM;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

void fs__control_out_bytes(struct out *o, const void *b, size_t n)
{
	if (n && out_reserve(o, n) == 0) {
		memcpy(o->p + o->len, b, n);
		o->len += n;
	}
}

__attribute__((format(printf, 2, 0))) void fs__control_out_vprintf(struct out *o, const char *fmt,
								      va_list ap)
{
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n > 0 && out_reserve(o, (size_t)n + 1) == 0) {
		vsnprintf(o->p + o->len, (size_t)n + 1, fmt, ap);
		o->len += (size_t)n;
	}
}

__attribute__((format(printf, 2, 3))) void fs__control_out_printf(struct out *o, const char *fmt,
								  ...)
{
	va_list ap;
	va_start(ap, fmt);
	fs__control_out_vprintf(o, fmt, ap);
	va_end(ap);
}

/* A JSON string of s[0..n): quotes, backslashes and control bytes escaped. */
void fs__control_out_json_str(struct out *o, const void *s, size_t n)
{
	const unsigned char *p = s;
	fs__control_out_bytes(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fs__control_out_printf(o, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fs__control_out_printf(o, "\\u%04x", p[i]);
		else
			fs__control_out_bytes(o, &p[i], 1);
	}
	fs__control_out_bytes(o, "\"", 1);
}

/* ---- proposals -------------------------------------------------------------------------------- */

void fs__control_call_free(struct fs_control_call *call)
{
	struct fs_control *c = call->c;
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	free(call);
}

void fs__control_on_call(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct fs_control_call *call = arg;
	Rpc__Response resp;
	if (fs_kv_decode_response(result, len, &resp) != 0)
		rpc__response__init(&resp);
	call->done(call, status, &resp);
	if (call->req)
		fuse_reply_write(call->req, call->req_size);
	fs__control_call_free(call);
}

/* Proposes req for call (time set here); on failure call is freed and the error returned. */
int fs__control_call_propose(struct fs_control_call *call, Rpc__Request *req)
{
	struct fs_control *c = call->c;
	req->has_time_ns = 1;
	req->time_ns = fs_clock_wall_ns();
	int rc = fs_kv_propose(c->member, req, fs__control_on_call, call);
	if (rc)
		fs__control_call_free(call);
	return rc;
}

struct fs_control_call *fs__control_call_new(struct fs_control *c, struct fs_control_handle *h,
					     void (*done)(struct fs_control_call *, int,
							  const Rpc__Response *))
{
	struct fs_control_call *call = calloc(1, sizeof *call);
	if (!call)
		return NULL;
	call->c = c;
	call->h = h;
	call->done = done;
	call->next = c->calls;
	if (call->next)
		call->next->prev = call;
	c->calls = call;
	return call;
}

/* ---- life cycle ------------------------------------------------------------------------------- */

int fs_control_start(struct fs_control *c, uv_loop_t *loop, struct fs_member *member,
		     struct store *store, const struct fs_member_config *cfg,
		     const struct fs_control_options *opt)
{
	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->member = member;
	c->store = store;
	c->cfg = cfg;
	if (opt)
		c->opt = *opt;
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->kick);
	c->timer.data = c->kick.data = c;
	c->timers = 1;
	uv_timer_start(&c->timer, fs__control_on_tick, FS_CONTROL_TICK_MS, FS_CONTROL_TICK_MS);
	return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
	struct fs_control *c = t->data;
	if (t == (uv_handle_t *)&c->kick && c->stopped)
		c->stopped(c->stopped_arg);
}

static void stop_finish(struct fs_control *c)
{
	if (c->finished)
		return;
	c->finished = 1;
	if (c->moving)
		fs__control_move_finish(c, FS_ESTOPPING);
	/* the session goes next: answer what waits on it now, not after */
	for (struct fs_control_call *call = c->calls; call; call = call->next)
		if (call->req) {
			fuse_reply_err(call->req, EINTR);
			call->req = NULL;
		}
	for (struct fs_control_handle *h = c->handles; h; h = h->next)
		if (h->read_req) {
			fuse_reply_err(h->read_req, EINTR);
			h->read_req = NULL;
		}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	uv_close((uv_handle_t *)&c->kick, on_timer_closed);
}

static void on_stop_wait(uv_timer_t *t)
{
	stop_finish(t->data);
}

static void on_session_revoked(struct fs_control_call *call, int status,
			       const Rpc__Response *resp)
{
	struct fs_control *c = call->c;
	if (status == 0)
		FS_INFO("session lease %" PRId64 " revoked: this member's ephemeral files are deleted",
			call->arg);
	else
		FS_WARN("session lease %" PRId64 " not revoked (%s): its files go when it expires",
			call->arg, fs_strerror(status));
	uv_timer_stop(&c->timer);
	stop_finish(c);
}

void fs_control_stop(struct fs_control *c, void (*done)(void *arg), void *arg)
{
	c->stopping = 1;
	c->stopped = done;
	c->stopped_arg = arg;
	if (!c->timers) {
		if (done)
			done(arg);
		return;
	}
	uv_timer_stop(&c->timer);
	struct fs_control_call *call =
		c->session ? fs__control_call_new(c, NULL, on_session_revoked) : NULL;
	if (call) {
		call->arg = c->session;
		Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
		r.has_id = 1;
		r.id = c->session;
		Rpc__Request req = RPC__REQUEST__INIT;
		req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
		req.lease_revoke = &r;
		c->session = 0;
		if (fs__control_call_propose(call, &req) == 0) {
			/* no quorum: do not hold the unmount for long */
			uv_timer_start(&c->timer, on_stop_wait, STOP_WAIT_MS, 0);
			return;
		}
	}
	stop_finish(c);
}
