/*
 * control/internal.h: what the files of control/ share with each other; no other folder includes
 * it (they include control/control.h). control.c starts and stops the services, makes their
 * proposals and keeps the output buffers answers are written into; leases.c is the timer's tick;
 * watch.c feeds the streams of `watch` commands; status.c renders the status; commands.c runs
 * the commands of `ctl`; ns.c serves `.raftfs/` through FUSE and owns its handles. Everything
 * runs on the member's loop.
 */
#ifndef RAFTFS_FS_CONTROL_INTERNAL_H
#define RAFTFS_FS_CONTROL_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "control/control.h"

#define FS_CONTROL_TICK_MS 200 /* the timer's period (leases.c's tick) */

/* ---- the types the files share ---- */

struct out {
	char *p;
	size_t len, cap;
	int oom; /* a write was lost to ENOMEM */
};

struct fs_control_handle {
	struct fs_control *c;
	struct fs_control_handle *prev, *next;
	int kind;                /* INO_* */
	int json;                /* the command asked for -w json */
	struct out out;          /* what reads return, from offset base */
	uint64_t base;
	struct store_watch *watch; /* a `watch` command's, until it ends */
	int watch_ended;
	fuse_req_t read_req;     /* a read waiting for the watch */
	size_t read_size;
	int read_interrupted;
};

/* A proposal in flight for a command; the handle may be released before it answers. */
struct fs_control_call {
	struct fs_control *c;
	struct fs_control_call *prev, *next;
	struct fs_control_handle *h; /* NULL once released */
	fuse_req_t req;              /* the write that carried the command, answered at the end */
	size_t req_size;
	void (*done)(struct fs_control_call *call, int status, const Rpc__Response *resp);
	int64_t arg;
	unsigned gen;        /* the session lease's: which attempt this is */
	char text[8192]; /* what a membership change reports when done */
};

/* ---- control.c: output buffers (o->p is the owner's to free; a failed growth sets o->oom) ---- */

/* Appends b[0..n) to o; lost (o->oom set) when o cannot grow. */
void fs__control_out_bytes(struct out *o, const void *b, size_t n);
/* Appends the formatted text to o (without its NUL: o->len counts the text); ap is consumed. */
__attribute__((format(printf, 2, 0))) void fs__control_out_vprintf(struct out *o, const char *fmt,
								      va_list ap);
/* fs__control_out_vprintf with the arguments given here. */
__attribute__((format(printf, 2, 3))) void fs__control_out_printf(struct out *o, const char *fmt,
								     ...);
/* Appends a JSON string of s[0..n): quotes, backslashes and control bytes escaped. */
void fs__control_out_json_str(struct out *o, const void *s, size_t n);

/* ---- control.c: proposals ---- */

/* A new call for handle h (NULL: none) that done answers, linked into c->calls and owned there;
   NULL when out of memory. It is freed after done runs (fs__control_on_call). */
struct fs_control_call *fs__control_call_new(struct fs_control *c, struct fs_control_handle *h,
					     void (*done)(struct fs_control_call *, int,
							  const Rpc__Response *));
/* Proposes req for call (time set here); on failure call is freed and the error returned. */
int fs__control_call_propose(struct fs_control_call *call, Rpc__Request *req);
/* Unlinks call from its control's list and frees it (a call whose proposal never started). */
void fs__control_call_free(struct fs_control_call *call);
/* The proposal's callback, arg a call: decodes result, runs done, answers the write, frees call. */
void fs__control_on_call(void *arg, uint64_t id, int status, const void *result, size_t len);

/* ---- leases.c ---- */

/* The timer's callback (t->data: the control), every FS_CONTROL_TICK_MS until the stop. */
void fs__control_on_tick(uv_timer_t *t);

/* ---- watch.c ---- */

/* Reads what h's watch has into h->out while little is unread; ends the watch on compaction. */
void fs__control_watch_pump(struct fs_control_handle *h);
/* Answers h's waiting read (h->read_req, cleared) with what there is; an empty one is the end. */
void fs__control_read_answer(struct fs_control_handle *h);
/* libfuse's interrupt callback for a waiting read, data the handle: answered from the loop. */
void fs__control_on_interrupt(fuse_req_t req, void *data);

/* ---- status.c ---- */

/* Appends the status of c's member to o: JSON (json != 0) or the table. */
void fs__control_status_render(struct fs_control *c, struct out *o, int json);

/* ---- commands.c ---- */

/* Runs the command in buf[0..size) (NUL-separated words) for h; answers req, now or later. */
void fs__control_command(struct fs_control *c, struct fs_control_handle *h, fuse_req_t req,
			 const char *buf, size_t size);
/* On each tick: finishes the `member move-leader` in c->moving once st shows the move or late. */
void fs__control_move_tick(struct fs_control *c, const struct fs_member_status *st, int64_t now);
/* Finishes c->moving (which must be set) with status and frees it; c->moving becomes NULL. */
void fs__control_move_finish(struct fs_control *c, int status);

/* ---- ns.c ---- */

/* Empties h for a new command: cancels its watch and frees its answer (h stays open). */
void fs__control_handle_reset(struct fs_control_handle *h);

#endif
