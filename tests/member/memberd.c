/*
 * memberd.c: one member in its own process, for the process-level failure tests of the member
 * (tests/member/test_crash.py): the real member code on a libuv loop, applying to a small
 * replicated state machine (the ordered list of applied payloads with their indexes), driven by a
 * line protocol on stdin/stdout.
 *
 * Flags: the member's own (--name --data-dir --listen-peer --initial-cluster ... parsed by
 * fs_config_flag), plus --request-timeout MS and --catchup-entries N (fs_member_options).
 *
 * Every command line is "TAG COMMAND ARGS..."; every answer line starts with the same TAG:
 *   TAG put VALUE             -> TAG ok INDEX | TAG err CODE NAME   (after the member's callback)
 *   TAG putn COUNT PREFIX WINDOW -> TAG done OK FAILED FIRST_ERR    (COUNT puts PREFIX<k>, at most
 *                                WINDOW in flight; the acknowledged values are listed by `acked`)
 *   TAG acked                 -> TAG acked V1 V2 ...   (values acknowledged by putn, then cleared)
 *   TAG status                -> TAG status id=.. cluster=.. leader=.. term=.. commit=.. ...
 *   TAG dump                  -> TAG dump COUNT HASH INDEX:VALUE ...
 *   TAG hash                  -> TAG hash COUNT HASH LAST_INDEX
 *   TAG add-learner NAME ADDR | add-voter NAME ADDR | promote NAME [ADDR] | remove NAME [ADDR]
 *                             -> TAG ok 0 | TAG err CODE NAME   (once applied here)
 *   TAG block NAME ADDR | unblock NAME ADDR -> TAG ok   (the transport's fault hook)
 *   TAG id NAME ADDR          -> TAG id HEX
 * Ids are fs_member_id(token, name, addr) with this member's --initial-cluster-token. SIGTERM, or
 * end of stdin, stops the member (fs_member_stop) and exits 0; a removed member stops and exits 0.
 * Logs go to stderr in the project's format.
 */
#include "member/member.h"
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- the state machine: every applied payload with its index ------------------------------- */

struct item {
	uint64_t index;
	char *value;
	size_t len;
};

struct list {
	struct item *items;
	size_t n, cap;
};

static struct list L;

static void list_clear(void)
{
	for (size_t i = 0; i < L.n; i++)
		free(L.items[i].value);
	L.n = 0;
}

static int list_push(uint64_t index, const uint8_t *v, size_t len)
{
	if (L.n == L.cap) {
		size_t cap = L.cap ? 2 * L.cap : 1024;
		struct item *p = realloc(L.items, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		L.items = p;
		L.cap = cap;
	}
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, v, len);
	s[len] = '\0';
	L.items[L.n++] = (struct item){index, s, len};
	return 0;
}

static int sm_apply(void *ud, uint64_t index, const uint8_t *req, size_t len, void **result,
		    size_t *rlen)
{
	(void)ud;
	if (L.n && L.items[L.n - 1].index >= index) {
		FS_ERROR("memberd: entry %" PRIu64 " applied after %" PRIu64, index,
			 L.items[L.n - 1].index);
		return -EINVAL;
	}
	int rc = list_push(index, req, len);
	if (rc)
		return rc;
	char *r = malloc(24);
	if (r) {
		*rlen = (size_t)snprintf(r, 24, "%" PRIu64, index);
		*result = r;
	}
	return 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Image: count, then per item index and length (8 bytes each, little-endian) and the bytes. */
static int sm_snapshot(void *ud, uint8_t **image, size_t *len)
{
	(void)ud;
	size_t n = 8;
	for (size_t i = 0; i < L.n; i++)
		n += 16 + L.items[i].len;
	uint8_t *p = malloc(n);
	if (!p)
		return -ENOMEM;
	size_t off = 8;
	put_u64(p, L.n);
	for (size_t i = 0; i < L.n; i++) {
		put_u64(p + off, L.items[i].index);
		put_u64(p + off + 8, L.items[i].len);
		memcpy(p + off + 16, L.items[i].value, L.items[i].len);
		off += 16 + L.items[i].len;
	}
	*image = p;
	*len = n;
	return 0;
}

static int sm_restore(void *ud, const uint8_t *image, size_t len)
{
	(void)ud;
	if (len < 8)
		return -EINVAL;
	uint64_t n = get_u64(image);
	size_t off = 8;
	list_clear();
	for (uint64_t i = 0; i < n; i++) {
		if (len - off < 16)
			return -EINVAL;
		uint64_t index = get_u64(image + off), vl = get_u64(image + off + 8);
		off += 16;
		if (len - off < vl)
			return -EINVAL;
		int rc = list_push(index, image + off, (size_t)vl);
		if (rc)
			return rc;
		off += (size_t)vl;
	}
	FS_INFO("memberd: restored %zu items, last index %" PRIu64, L.n,
		L.n ? L.items[L.n - 1].index : 0);
	return off == len ? 0 : -EINVAL;
}

static uint64_t list_hash(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < L.n; i++) {
		const unsigned char *b = (const unsigned char *)L.items[i].value;
		for (size_t j = 0; j <= L.items[i].len; j++) { /* with the NUL: a separator */
			h ^= j < L.items[i].len ? b[j] : 0;
			h *= 0x100000001b3ull;
		}
	}
	return h;
}

/* ---- the daemon ----------------------------------------------------------------------------- */

static uv_loop_t loop;
static struct fs_member *M;
static struct fs_member_config cfg;
static uv_pipe_t in_pipe;
static uv_signal_t sig_term;
static int in_open, stopping;
static char inbuf[65536];
static size_t inlen;

/* Output: one line per answer, written whole (stdout is a pipe; lines may be long). */
struct obuf {
	char *p;
	size_t n, cap;
};

static void ob_printf(struct obuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ob_printf(struct obuf *o, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (o->p && o->n + (size_t)n < o->cap) {
			o->n += (size_t)n;
			return;
		}
		size_t cap = o->cap ? o->cap : 256;
		while (cap <= o->n + (size_t)n)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (!p) {
			perror("memberd: realloc");
			exit(2);
		}
		o->p = p;
		o->cap = cap;
	}
}

static void ob_send(struct obuf *o)
{
	ob_printf(o, "\n");
	size_t off = 0;
	while (off < o->n) {
		ssize_t w = write(STDOUT_FILENO, o->p + off, o->n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the test went away: nothing to answer to */
		off += (size_t)w;
	}
	free(o->p);
	*o = (struct obuf){0};
}

static void reply(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(const char *tag, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	struct obuf o = {0};
	ob_printf(&o, "%s %s", tag, line);
	ob_send(&o);
}

static const char *err_name(int status)
{
	switch (status) {
	case -ETIMEDOUT:
		return "ETIMEDOUT";
	case FS_ETOOMANYREQUESTS:
		return "ETOOMANYREQUESTS";
	case FS_ESTOPPING:
		return "ESTOPPING";
	case FS_EREMOVED:
		return "EREMOVED";
	case -ENOMEM:
		return "ENOMEM";
	case -EINVAL:
		return "EINVAL";
	default:
		return "OTHER";
	}
}

/* A single put or change: the tag to answer with. */
struct pending {
	char tag[32];
};

static void on_single(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	(void)id;
	struct pending *p = arg;
	if (status == 0 && result && len)
		reply(p->tag, "ok %.*s", (int)len, (const char *)result);
	else if (status == 0)
		reply(p->tag, "ok 0");
	else
		reply(p->tag, "err %d %s", status, err_name(status));
	free(p);
}

/* putn: COUNT puts at most WINDOW at a time. */
struct batch {
	char tag[32];
	char prefix[64];
	uint64_t count, next, inflight, ok, failed;
	int first_err;
	unsigned window;
};

static char **acked;
static size_t n_acked, cap_acked;

struct batch_put {
	struct batch *b;
	char value[96];
};

static void batch_pump(struct batch *b);

static void on_batch_put(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	(void)id;
	(void)result;
	(void)len;
	struct batch_put *bp = arg;
	struct batch *b = bp->b;
	b->inflight--;
	if (status == 0) {
		b->ok++;
		if (n_acked == cap_acked) {
			size_t cap = cap_acked ? 2 * cap_acked : 1024;
			char **p = realloc(acked, cap * sizeof *p);
			if (p) {
				acked = p;
				cap_acked = cap;
			}
		}
		if (n_acked < cap_acked)
			acked[n_acked++] = strdup(bp->value);
	} else {
		b->failed++;
		if (!b->first_err)
			b->first_err = status;
	}
	free(bp);
	batch_pump(b);
}

static void batch_pump(struct batch *b)
{
	while (!stopping && b->next < b->count && b->inflight < b->window) {
		struct batch_put *bp = malloc(sizeof *bp);
		if (!bp)
			break;
		bp->b = b;
		int n = snprintf(bp->value, sizeof bp->value, "%s%" PRIu64, b->prefix, b->next);
		if (fs_member_propose(M, bp->value, (size_t)n, on_batch_put, bp) != 0) {
			free(bp);
			break;
		}
		b->next++;
		b->inflight++;
	}
	if (b->inflight == 0) {
		b->failed += b->count - b->next; /* not proposed: stopping or out of memory */
		reply(b->tag, "done %" PRIu64 " %" PRIu64 " %d %s", b->ok, b->failed, b->first_err,
		      b->first_err ? err_name(b->first_err) : "-");
		free(b);
	}
}

/* Names of members this daemon heard of: --initial-cluster and every change command. */
static struct fs_peer_config known[FS_MAX_MEMBERS * 2];
static int n_known;

static const char *addr_of(const char *name)
{
	for (int i = 0; i < n_known; i++)
		if (!strcmp(known[i].name, name))
			return known[i].addr;
	return NULL;
}

static void remember(const char *name, const char *addr)
{
	for (int i = 0; i < n_known; i++) {
		if (!strcmp(known[i].name, name)) {
			snprintf(known[i].addr, sizeof known[i].addr, "%s", addr);
			return;
		}
	}
	if (n_known < (int)(sizeof known / sizeof known[0])) {
		snprintf(known[n_known].name, sizeof known[n_known].name, "%s", name);
		snprintf(known[n_known].addr, sizeof known[n_known].addr, "%s", addr);
		n_known++;
	}
}

static void status_line(const char *tag)
{
	struct fs_member_status st;
	fs_member_status(M, &st);
	struct obuf o = {0};
	ob_printf(&o,
		  "%s status id=%016" PRIx64 " cluster=%016" PRIx64 " leader=%016" PRIx64
		  " term=%" PRIu64 " commit=%" PRIu64 " applied=%" PRIu64 " last=%" PRIu64
		  " snapshot=%" PRIu64 " is_leader=%d items=%zu voters=",
		  tag, st.id, st.cluster_id, st.leader, st.term, st.commit, st.applied, st.last_index,
		  st.snapshot_index, st.is_leader, L.n);
	for (int i = 0; i < st.n_voters; i++)
		ob_printf(&o, "%s%016" PRIx64, i ? "," : "", st.voters[i]);
	ob_printf(&o, " learners=");
	for (int i = 0; i < st.n_learners; i++)
		ob_printf(&o, "%s%016" PRIx64, i ? "," : "", st.learners[i]);
	ob_send(&o);
}

static void stop_member(const char *why);

static void command(char *line)
{
	char *save = NULL;
	char *tag = strtok_r(line, " ", &save);
	char *cmd = tag ? strtok_r(NULL, " ", &save) : NULL;
	char *a1 = cmd ? strtok_r(NULL, " ", &save) : NULL;
	char *a2 = a1 ? strtok_r(NULL, " ", &save) : NULL;
	char *a3 = a2 ? strtok_r(NULL, " ", &save) : NULL;
	if (!tag)
		return;
	if (!cmd) {
		reply(tag, "err %d EINVAL no command", -EINVAL);
		return;
	}
	if (stopping) {
		reply(tag, "err %d ESTOPPING", FS_ESTOPPING);
		return;
	}
	if (!strcmp(cmd, "put") && a1) {
		struct pending *p = malloc(sizeof *p);
		if (!p) {
			reply(tag, "err %d ENOMEM", -ENOMEM);
			return;
		}
		snprintf(p->tag, sizeof p->tag, "%s", tag);
		int rc = fs_member_propose(M, a1, strlen(a1), on_single, p);
		if (rc) {
			free(p);
			reply(tag, "err %d %s", rc, err_name(rc));
		}
	} else if (!strcmp(cmd, "putn") && a1 && a2) {
		struct batch *b = calloc(1, sizeof *b);
		if (!b) {
			reply(tag, "err %d ENOMEM", -ENOMEM);
			return;
		}
		snprintf(b->tag, sizeof b->tag, "%s", tag);
		snprintf(b->prefix, sizeof b->prefix, "%s", a2);
		b->count = strtoull(a1, NULL, 10);
		b->window = a3 ? (unsigned)strtoul(a3, NULL, 10) : 64;
		if (!b->window)
			b->window = 1;
		batch_pump(b);
	} else if (!strcmp(cmd, "acked")) {
		struct obuf o = {0};
		ob_printf(&o, "%s acked", tag);
		for (size_t i = 0; i < n_acked; i++) {
			ob_printf(&o, " %s", acked[i]);
			free(acked[i]);
		}
		n_acked = 0;
		ob_send(&o);
	} else if (!strcmp(cmd, "status")) {
		status_line(tag);
	} else if (!strcmp(cmd, "dump")) {
		struct obuf o = {0};
		ob_printf(&o, "%s dump %zu %016" PRIx64, tag, L.n, list_hash());
		for (size_t i = 0; i < L.n; i++)
			ob_printf(&o, " %" PRIu64 ":%s", L.items[i].index, L.items[i].value);
		ob_send(&o);
	} else if (!strcmp(cmd, "hash")) {
		reply(tag, "hash %zu %016" PRIx64 " %" PRIu64, L.n, list_hash(),
		      L.n ? L.items[L.n - 1].index : 0);
	} else if (!strcmp(cmd, "id") && a1 && a2) {
		reply(tag, "id %016" PRIx64, fs_member_id(cfg.token, a1, a2));
	} else if ((!strcmp(cmd, "block") || !strcmp(cmd, "unblock")) && a1 && a2) {
		fs_member_block_peer(M, fs_member_id(cfg.token, a1, a2), !strcmp(cmd, "block"));
		FS_INFO("memberd: %s %s at %s", cmd, a1, a2);
		reply(tag, "ok");
	} else if ((!strcmp(cmd, "add-learner") || !strcmp(cmd, "add-voter") ||
		    !strcmp(cmd, "promote") || !strcmp(cmd, "remove")) &&
		   a1) {
		char addr[FS_ADDR_MAX + 1];
		const char *known_addr = a2 ? a2 : addr_of(a1);
		if (!known_addr) {
			reply(tag, "err %d EINVAL unknown member %s", -EINVAL, a1);
			return;
		}
		snprintf(addr, sizeof addr, "%s", known_addr); /* remember() may rewrite known[] */
		remember(a1, addr);
		enum fs_member_change_type type = !strcmp(cmd, "add-learner") ? FS_MEMBER_ADD_LEARNER
						  : !strcmp(cmd, "remove")    ? FS_MEMBER_REMOVE
									      : FS_MEMBER_ADD_VOTER;
		struct pending *p = malloc(sizeof *p);
		if (!p) {
			reply(tag, "err %d ENOMEM", -ENOMEM);
			return;
		}
		snprintf(p->tag, sizeof p->tag, "%s", tag);
		uint64_t id = fs_member_id(cfg.token, a1, addr);
		FS_INFO("memberd: %s %s (%016" PRIx64 ") at %s", cmd, a1, id, addr);
		int rc = fs_member_change(M, type, id, a1, addr, on_single, p);
		if (rc) {
			free(p);
			reply(tag, "err %d %s", rc, err_name(rc));
		}
	} else if (!strcmp(cmd, "stop")) {
		reply(tag, "ok");
		stop_member("stop command");
	} else {
		reply(tag, "err %d EINVAL unknown command %s", -EINVAL, cmd);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(inbuf + inlen, (unsigned)(sizeof inbuf - inlen));
}

static void on_closed(uv_handle_t *h)
{
	(void)h;
}

static void close_input(void)
{
	if (in_open) {
		in_open = 0;
		uv_close((uv_handle_t *)&in_pipe, on_closed);
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)s;
	(void)buf;
	if (n < 0) {
		close_input();
		stop_member("end of stdin");
		return;
	}
	inlen += (size_t)n;
	char *start = inbuf, *nl;
	while ((nl = memchr(start, '\n', inlen - (size_t)(start - inbuf)))) {
		*nl = '\0';
		command(start);
		start = nl + 1;
	}
	inlen -= (size_t)(start - inbuf);
	memmove(inbuf, start, inlen);
	if (inlen == sizeof inbuf) {
		FS_ERROR("memberd: command line longer than %zu bytes", sizeof inbuf);
		inlen = 0;
	}
}

static void on_stopped(void *arg)
{
	(void)arg;
	M = NULL;
	close_input();
	uv_close((uv_handle_t *)&sig_term, on_closed);
}

static void stop_member(const char *why)
{
	if (stopping)
		return;
	stopping = 1;
	FS_INFO("memberd: stopping (%s)", why);
	fs_member_stop(M, on_stopped, NULL);
}

static void on_sigterm(uv_signal_t *s, int sig)
{
	(void)s;
	(void)sig;
	stop_member("SIGTERM");
}

static void on_removed(void *arg)
{
	(void)arg;
	FS_INFO("memberd: this member was removed from the cluster; stopping");
	stop_member("removed");
}

int main(int argc, char **argv)
{
	struct fs_member_options opt = {.on_removed = on_removed};
	fs_config_defaults(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
		if (!value) {
			fprintf(stderr, "memberd: %s needs a value\n", flag);
			return 2;
		}
		int rc = fs_config_flag(&cfg, flag, value, stderr);
		if (rc < 0)
			return 2;
		if (rc == 0) {
			if (!strcmp(flag, "--request-timeout")) {
				opt.request_timeout_ms = strtoull(value, NULL, 10);
			} else if (!strcmp(flag, "--catchup-entries")) {
				opt.catchup_entries = strtoull(value, NULL, 10);
			} else {
				fprintf(stderr, "memberd: unknown flag %s\n", flag);
				return 2;
			}
		}
		i++;
	}
	if (fs_config_finish(&cfg, stderr) != 0)
		return 2;
	enum fs_log_level level;
	if (fs_log_parse_level(cfg.log_level, &level) != 0)
		level = FS_LOG_INFO;
	fs_log_setup(level, cfg.name);
	for (int i = 0; i < cfg.n_peers; i++)
		remember(cfg.peers[i].name, cfg.peers[i].addr);
	signal(SIGPIPE, SIG_IGN);

	uv_loop_init(&loop);
	struct fs_state_machine sm = {NULL, sm_apply, sm_snapshot, sm_restore};
	if (fs_member_start(&M, &loop, &cfg, &opt, &sm) != 0) {
		FS_FATAL("memberd: the member did not start");
		return 1;
	}
	FS_INFO("memberd: member %s (%016" PRIx64 ") started, pid %d", cfg.name, cfg.self_id,
		(int)getpid());
	uv_signal_init(&loop, &sig_term);
	uv_signal_start(&sig_term, on_sigterm, SIGTERM);
	uv_pipe_init(&loop, &in_pipe, 0);
	if (uv_pipe_open(&in_pipe, STDIN_FILENO) == 0 &&
	    uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_read) == 0)
		in_open = 1;
	reply("0", "ready %016" PRIx64, cfg.self_id);
	uv_run(&loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&loop);
	if (rc)
		FS_WARN("memberd: loop closed with handles left: %s", uv_strerror(rc));
	list_clear();
	free(L.items);
	for (size_t i = 0; i < n_acked; i++)
		free(acked[i]);
	free(acked);
	FS_INFO("memberd: exiting");
	return 0;
}
