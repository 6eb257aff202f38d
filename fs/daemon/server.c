/*
 * server.c: `raftfs mount` and `raftfs umount`: a member process serving its mount.
 *
 * One libuv loop owns the store, the member (raft, WAL, transport) and the FUSE session. The
 * command returns once the mount is live (the daemon goes on in the background, logging to
 * DATA_DIR/raftfs.log) unless -f keeps it in the foreground. SIGTERM, SIGINT, `raftfs umount` and
 * `fusermount3 -u` all end it the same way: unmount, hand leadership over, finish or fail what is
 * pending, exit 0.
 */
#include "fs.h"

#include "member/member.h"
#include "control/control.h"
#include "daemon/daemon.h"
#include "common/common.h"
#include "fuse/face.h"
#include "replay/replay.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

struct server {
	uv_loop_t loop;
	struct store *store;
	struct fs_kv kv;           /* the store as the member's state machine */
	uv_timer_t hash_timer;     /* the leader's periodic consistency check */
	int64_t checked_rev;       /* the revision last checked: an idle cluster is checked once */
	struct fs_member *member;
	struct fs_ops ops;
	struct fs_control control; /* leases, compaction, .raftfs/ */
	struct fs_replay *replay;  /* remote changes raise inotify events; NULL: no_remote_inotify */
	struct fs_mount mount;
	uv_signal_t sigterm, sigint;
	uv_signal_t sighup; /* re-reads the peer TLS files */
	int stopping;
	int serving;  /* ops are initialized and the mount is live */
	int exit_code;
};

static void server_on_member_stopped(void *arg)
{
	struct server *sv = arg;
	sv->member = NULL;
	uv_close((uv_handle_t *)&sv->hash_timer, NULL);
	uv_close((uv_handle_t *)&sv->sigterm, NULL);
	uv_close((uv_handle_t *)&sv->sigint, NULL);
	uv_close((uv_handle_t *)&sv->sighup, NULL);
}

static void server_on_mount_closed(void *arg)
{
	struct server *sv = arg;
	fs_member_stop(sv->member, server_on_member_stopped, sv);
}

static void server_stop_mount(void *arg)
{
	struct server *sv = arg;
	fs_notify_stop(&sv->ops.notifier);
	fs_mount_close(&sv->mount, server_on_mount_closed, sv);
}

static void server_on_control_stopped(void *arg)
{
	struct server *sv = arg;
	/* no more invalidations: the session is about to go */
	sv->serving = 0;
	/* the replay thread leaves the mount first: the loop serves its last request meanwhile */
	fs_replay_stop(sv->replay, &sv->loop, server_stop_mount, sv);
}

static void server_stop(struct server *sv, const char *why)
{
	if (sv->stopping)
		return;
	sv->stopping = 1;
	FS_INFO("stopping: %s", why);
	/* the session lease first, while the member can still propose its revoke */
	fs_control_stop(&sv->control, server_on_control_stopped, sv);
}

/* Fire and forget: outcomes show in the log (a mismatch) or not at all. */
static void server_on_proposed(void *arg, uint64_t id, int status, const void *r, size_t len)
{
	(void)arg;
}

static void server_propose(struct server *sv, const Rpc__Request *req)
{
	if (!sv->stopping)
		fs_kv_propose(sv->member, req, server_on_proposed, sv);
}

/* This member's store differs from another's: raise the CORRUPT alarm through raft. */
static void server_on_mismatch(void *arg, int64_t rev, uint64_t mine, uint64_t theirs,
			       uint64_t their_member)
{
	struct server *sv = arg;
	struct fs_member_status st;
	fs_member_status(sv->member, &st);
	FS_ERROR("consistency check: at revision %" PRId64 " this member (%016" PRIx64 ") has hash "
		 "%016" PRIx64 ", member %016" PRIx64 " has %016" PRIx64 "; raising the CORRUPT "
		 "alarm, writes are refused", rev, st.id, mine, their_member, theirs);
	Rpc__Alarm a = RPC__ALARM__INIT;
	a.has_action = a.has_alarm = a.has_member_id = 1;
	a.action = RPC__ALARM__ACTION__ACTIVATE;
	a.alarm = RPC__ALARM__TYPE__CORRUPT;
	a.member_id = st.id;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_ALARM;
	req.alarm = &a;
	server_propose(sv, &req);
}

/* The leader proposes its hash at its current revision; every member compares on apply. */
static void server_on_hash_timer(uv_timer_t *t)
{
	struct server *sv = t->data;
	struct fs_member_status st;
	uint64_t hash;
	if (!sv->member || sv->stopping)
		return;
	fs_member_status(sv->member, &st);
	int64_t rev = store_rev(sv->store);
	if (!st.is_leader || rev == sv->checked_rev || rev <= store_compact_rev(sv->store) ||
	    store_hash_kv(sv->store, rev, &hash) != 0)
		return;
	sv->checked_rev = rev;
	Rpc__HashCheck h = RPC__HASH_CHECK__INIT;
	h.has_revision = h.has_hash = h.has_member_id = h.has_algorithm = 1;
	h.algorithm = STORE_HASH_KV_ALGORITHM;
	h.revision = rev;
	h.hash = hash;
	h.member_id = st.id;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_HASH_CHECK;
	req.hash_check = &h;
	server_propose(sv, &req);
}

static void server_on_signal(uv_signal_t *h, int signum)
{
	server_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void server_on_sighup(uv_signal_t *h, int signum)
{
	struct server *sv = h->data;
	(void)signum;
	if (!sv->member)
		return;
	if (fs_member_reload_tls(sv->member) == -ENOTSUP)
		FS_INFO("SIGHUP: no peer TLS files to re-read");
}

static void server_on_gone(struct fs_mount *m, void *arg)
{
	(void)m;
	struct server *sv = arg;
	fs_replay_halt(sv->replay); /* before the session lease's revoke, which takes a while */
	server_stop(sv, "unmounted");
}

/* The mount is unmounted from outside: the replay lets go of its clone of it, so the connection
   ends once the mount's last user is gone (then server_on_gone) */
static void server_on_unlisted(struct fs_mount *m, void *arg)
{
	(void)m;
	struct server *sv = arg;
	fs_replay_halt(sv->replay);
}

static void server_on_applied(void *arg)
{
	struct server *sv = arg;
	if (sv->serving) {
		fs_ops_after_apply(&sv->ops);
		fs_control_after_apply(&sv->control);
	}
}

static void server_on_sync(void *arg)
{
	struct server *sv = arg;
	fs_replay_sync(sv->replay);
}

/* fs_control.replay_counts */
static void server_replay_counts(void *arg, uint64_t *backlog, uint64_t *dropped)
{
	fs_replay_counts(arg, backlog, dropped);
}

static void server_on_removed(void *arg)
{
	server_stop(arg, "removed from the cluster");
}

static int usage(FILE *err)
{
	fprintf(err, "usage: raftfs mount [--name N] [--data-dir D] [--listen-peer H:P]\n"
		     "         [--initial-cluster N=H:P,...] [--initial-cluster-state new|existing]\n"
		     "         [--initial-cluster-token T] [--heartbeat-interval MS]\n"
		     "         [--election-timeout MS] [--snapshot-count N] [--log-level L]\n"
		     "         [--snapshot-catchup-entries N]\n"
		     "         [--max-request-bytes N] [--quota-backend-bytes N]\n"
		     "         [--request-timeout MS] [--corrupt-check-interval MS]\n"
		     "         [--session-ttl S] [--auto-compaction-mode periodic|revision]\n"
		     "         [--auto-compaction-retention R]\n"
		     "         [--peer-cert-file F --peer-key-file F [--peer-trusted-ca-file F]\n"
		     "          [--peer-client-cert-auth[=false]] [--peer-cert-allowed-cn CN]]\n"
		     "         [--peer-auto-tls]\n"
		     "         [-o linearizable,no_remote_inotify] [-f] DIR\n");
	return FS_EXIT_USAGE;
}

static int parse_size(const char *flag, const char *v, uint64_t *out, FILE *err)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n == 0) {
		fprintf(err, "raftfs mount: %s: '%s' is not a positive number\n", flag, v);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

/*
 * etcd's --auto-compaction-retention: in periodic mode a duration ("90s", "30m", "2h", or a bare
 * number of hours), in revision mode a number of revisions.
 */
static int parse_retention(struct fs_control_options *co, const char *mode, const char *v,
			   FILE *err)
{
	char *end;
	errno = 0;
	double n = strtod(v, &end);
	int ok = !errno && end != v && n > 0;
	if (co->compaction == FS_COMPACTION_REVISION) {
		ok = ok && !*end && n == (double)(int64_t)n;
		co->retention_revs = (int64_t)n;
	} else {
		double unit = !*end || !strcmp(end, "h") ? 3600e3 : !strcmp(end, "m") ? 60e3
			      : !strcmp(end, "s")              ? 1e3 : !strcmp(end, "ms") ? 1 : 0;
		ok = ok && unit > 0 && n * unit >= 1;
		co->retention_ms = (int64_t)(n * unit);
	}
	if (!ok)
		fprintf(err, "raftfs mount: --auto-compaction-retention: '%s' is not a %s\n", v,
			co->compaction == FS_COMPACTION_REVISION ? "positive number of revisions"
							 : "duration (90s, 30m, 2h, or hours)");
	(void)mode;
	return ok ? 0 : -EINVAL;
}

/* What `raftfs mount` was asked for. */
struct mount_args {
	struct fs_member_config cfg;
	struct fs_ops_options oopt;
	struct fs_control_options copt;
	int no_remote_inotify; /* -o no_remote_inotify: no replay thread */
	int linearizable;      /* -o linearizable */
	uint64_t quota, max_request, timeout_ms, check_ms, session_ttl;
	const char *dir;
	int foreground;
	FILE *err; /* where a refused -o option is said (mount_opt_unknown) */
};

/* The -o options raftfs takes, parsed by libfuse's fuse_opt (which splits "a,b"). */
static const struct fuse_opt mount_opts[] = {
	{"linearizable", offsetof(struct mount_args, linearizable), 1},
	{"no_remote_inotify", offsetof(struct mount_args, no_remote_inotify), 1},
	FUSE_OPT_END,
};

/* fuse_opt's callback for what mount_opts does not name: an option is refused, said on a->err. */
static int mount_opt_unknown(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct mount_args *a = data;
	(void)outargs;
	if (key != FUSE_OPT_KEY_OPT)
		return 1; /* not an option: kept (only the program name comes here) */
	fprintf(a->err, "raftfs mount: unknown option -o %s\n", arg);
	return -1;
}

/* Applies `-o v` to a; -EINVAL (said on a->err) for an option raftfs does not take. */
static int parse_o(struct mount_args *a, const char *v)
{
	char *argv[] = {"raftfs", "-o", (char *)v, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int rc = fuse_opt_parse(&args, a, mount_opts, mount_opt_unknown);
	fuse_opt_free_args(&args);
	return rc == 0 ? 0 : -EINVAL;
}

/*
 * Parses argv into a (defaults first). Returns -1 to go on, or the FS_EXIT_* status to exit with
 * (--help, a usage error said on err).
 */
static int parse_mount_args(int argc, char **argv, struct mount_args *a, FILE *out, FILE *err)
{
	const char *retention = NULL;
	memset(a, 0, sizeof *a);
	a->err = err;
	a->check_ms = 5000;
	a->session_ttl = 10;
	fs_config_defaults(&a->cfg);
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "-f")) {
			a->foreground = 1;
			continue;
		}
		if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
			usage(out);
			return FS_EXIT_OK;
		}
		if (f[0] != '-') {
			if (a->dir) {
				fprintf(err, "raftfs mount: one mount directory only ('%s', '%s')\n",
					a->dir, f);
				return usage(err);
			}
			a->dir = f;
			continue;
		}
		/* --flag=value, and etcd's boolean flags alone (true) */
		char flag[64];
		const char *v, *eq = strchr(f, '=');
		if (eq && f[1] == '-' && (size_t)(eq - f) < sizeof flag) {
			memcpy(flag, f, (size_t)(eq - f));
			flag[eq - f] = '\0';
			f = flag;
			v = eq + 1;
		} else if (fs_config_flag_is_bool(f)) {
			v = "true";
		} else if (i + 1 >= argc) {
			fprintf(err, "raftfs mount: %s needs a value\n", f);
			return usage(err);
		} else {
			v = argv[++i];
		}
		int rc = 0;
		if (!strcmp(f, "-o")) {
			if (parse_o(a, v) != 0)
				return usage(err);
		} else if (!strcmp(f, "--max-request-bytes")) {
			rc = parse_size(f, v, &a->max_request, err);
		} else if (!strcmp(f, "--quota-backend-bytes")) {
			rc = parse_size(f, v, &a->quota, err);
		} else if (!strcmp(f, "--request-timeout")) {
			rc = parse_size(f, v, &a->timeout_ms, err);
		} else if (!strcmp(f, "--corrupt-check-interval")) {
			rc = parse_size(f, v, &a->check_ms, err);
		} else if (!strcmp(f, "--session-ttl")) {
			rc = parse_size(f, v, &a->session_ttl, err);
		} else if (!strcmp(f, "--auto-compaction-mode")) {
			if (!strcmp(v, "periodic")) {
				a->copt.compaction = FS_COMPACTION_PERIODIC;
			} else if (!strcmp(v, "revision")) {
				a->copt.compaction = FS_COMPACTION_REVISION;
			} else {
				fprintf(err, "raftfs mount: --auto-compaction-mode: '%s' is neither "
					     "periodic nor revision\n", v);
				rc = -EINVAL;
			}
		} else if (!strcmp(f, "--auto-compaction-retention")) {
			retention = v;
		} else {
			rc = fs_config_flag(&a->cfg, f, v, err);
			if (rc == 0) {
				fprintf(err, "raftfs mount: unknown flag %s\n", f);
				return usage(err);
			}
			rc = rc < 0 ? rc : 0;
		}
		if (rc)
			return FS_EXIT_USAGE;
	}
	if (!a->dir) {
		fprintf(err, "raftfs mount: no mount directory given\n");
		return usage(err);
	}
	if (fs_config_finish(&a->cfg, err) != 0)
		return FS_EXIT_USAGE;
	if (retention && !a->copt.compaction) {
		fprintf(err, "raftfs mount: --auto-compaction-retention needs --auto-compaction-mode\n");
		return usage(err);
	}
	if (a->copt.compaction &&
	    parse_retention(&a->copt, NULL, retention ? retention : "1", err) != 0)
		return FS_EXIT_USAGE;
	a->copt.session_ttl_s = (int64_t)a->session_ttl;
	a->oopt.max_value_bytes = a->max_request;
	a->oopt.linearizable = a->linearizable;
	return -1;
}

/* For an unwinding server_run: the loop runs until what was closed has finished closing. */
static void server_on_unwound(void *arg)
{
	*(int *)arg = 1;
}

static void server_run_until(struct server *sv, const int *done)
{
	while (!*done && uv_run(&sv->loop, UV_RUN_ONCE))
		;
}

/*
 * Runs the member serving its mount, from an empty sv until the end: opens the store, starts the
 * member, waits for its WAL to be applied again, mounts, starts the replay and control, tells a
 * waiting parent (ready_fd) and runs the loop. A start-up failure (said in the log) unwinds what
 * was started, in reverse order, and returns FS_EXIT_FAILURE.
 */
static int server_run(struct server *sv, const struct mount_args *a, int ready_fd)
{
	const char *dir = a->dir;
	int rc, code = FS_EXIT_FAILURE, done = 0;
	uv_loop_init(&sv->loop);
	struct store_config scfg = {.quota_bytes = a->quota};
	struct fs_state_machine sm;
	struct fs_member_options mopt = {.request_timeout_ms = a->timeout_ms,
					 .on_removed = server_on_removed,
					 .on_applied = server_on_applied,
					 .on_sync = server_on_sync,
					 .arg = sv};
	if ((rc = store_open(&scfg, &sv->store)) != 0) {
		FS_ERROR("cannot open the store: %s", store_strerror(rc));
		goto out_loop;
	}
	sv->kv = (struct fs_kv){sv->store, server_on_mismatch, sv};
	fs_kv_state_machine(&sv->kv, &sm);
	if ((rc = fs_member_start(&sv->member, &sv->loop, &a->cfg, &mopt, &sm)) != 0)
		goto out_store; /* it said why */
	/*
	 * Replay what the WAL holds before anyone can look; a member joining a running cluster
	 * also waits for the cluster's data. Given up after 60 s without progress.
	 */
	uint64_t deadline = uv_now(&sv->loop) + 60000, applied = 0;
	struct fs_member_status st;
	while (!fs_member_replayed(sv->member) && uv_now(&sv->loop) < deadline) {
		uv_run(&sv->loop, UV_RUN_ONCE);
		fs_member_status(sv->member, &st);
		if (st.applied > applied) {
			applied = st.applied;
			deadline = uv_now(&sv->loop) + 60000;
		}
	}
	if (!fs_member_replayed(sv->member)) {
		fs_member_status(sv->member, &st);
		if (st.joining)
			FS_ERROR("joining: nothing more of the cluster's log arrived within 60 s "
				 "(applied index %" PRIu64 "); is this member added and are its peers "
				 "reachable?", applied);
		else
			FS_ERROR("the WAL in %s was not replayed within 60 s", a->cfg.data_dir);
		goto out_member;
	}
	/* the mount's path for the replay thread and the face, made absolute without asking the
	   mount */
	char absdir[8200], cwd[4096];
	/* canonical where it can be, as /proc names the mount's files (it is not mounted yet) */
	if (!realpath(dir, absdir)) {
		if (dir[0] == '/' || !getcwd(cwd, sizeof cwd))
			snprintf(absdir, sizeof absdir, "%s", dir);
		else
			snprintf(absdir, sizeof absdir, "%.4095s/%.4095s", cwd, dir);
	}
	struct fs_ops_options oopt = a->oopt;
	oopt.mountpoint = absdir;
	if ((rc = fs_ops_init(&sv->ops, sv->member, sv->store, &oopt, a->quota)) != 0) {
		FS_ERROR("cannot serve %s: %s", dir, fs_strerror(rc));
		goto out_member;
	}
	char options[256];
	snprintf(options, sizeof options, "fsname=raftfs,subtype=raftfs,default_permissions%s",
		 geteuid() == 0 ? ",allow_other" : "");
	if ((rc = fs_mount_start(&sv->mount, &sv->loop, dir, options, &fs_ops_table,
				 sizeof fs_ops_table, &sv->ops, server_on_gone, sv)) != 0)
		goto out_ops; /* it said why */
	sv->mount.on_unlisted = server_on_unlisted;
	fs_mount_guard(&sv->mount, "/proc/self/exe"); /* the replay thread waits on the mount */
	if ((rc = fs_ops_watch_start(&sv->ops, sv->mount.se)) != 0) {
		FS_ERROR("cannot watch the store for changes: %s", fs_strerror(rc));
		goto out_mount;
	}
	if (a->no_remote_inotify)
		FS_INFO("mount %s: changes made on other members raise no inotify events here "
			"(-o no_remote_inotify)", dir);
	else if ((rc = fs_replay_start(&sv->replay, &sv->ops, absdir)) != 0) {
		FS_ERROR("cannot start replaying remote changes for inotify in %s: %s", absdir,
			 fs_strerror(rc));
		goto out_mount;
	}
	fs_control_start(&sv->control, &sv->loop, sv->member, sv->store, &a->cfg, &a->copt);
	if (sv->replay) {
		sv->control.replay_counts = server_replay_counts;
		sv->control.replay_arg = sv->replay;
	}
	fs_control_namespace(&sv->control, &sv->ops.ns);
	sv->serving = 1;
	uv_timer_init(&sv->loop, &sv->hash_timer);
	sv->hash_timer.data = sv;
	if (a->check_ms)
		uv_timer_start(&sv->hash_timer, server_on_hash_timer, a->check_ms, a->check_ms);
	uv_signal_init(&sv->loop, &sv->sigterm);
	uv_signal_init(&sv->loop, &sv->sigint);
	sv->sigterm.data = sv->sigint.data = sv;
	uv_signal_start(&sv->sigterm, server_on_signal, SIGTERM);
	uv_signal_start(&sv->sigint, server_on_signal, SIGINT);
	uv_signal_init(&sv->loop, &sv->sighup);
	sv->sighup.data = sv;
	uv_signal_start(&sv->sighup, server_on_sighup, SIGHUP);
	FS_INFO("member %s serving %s (data dir %s)", a->cfg.name, dir, a->cfg.data_dir);
	char log_path[4200];
	snprintf(log_path, sizeof log_path, "%s/raftfs.log", a->cfg.data_dir);
	fs_daemon_ready(ready_fd, a->foreground ? NULL : log_path);
	/* runs until the stop chain (server_stop) has closed the mount and stopped the member */
	uv_run(&sv->loop, UV_RUN_DEFAULT);
	fs_replay_close(sv->replay);
	code = sv->exit_code;
	goto out_ops;

out_mount:
	fs_notify_stop(&sv->ops.notifier); /* before the session goes, as server_stop_mount */
	fs_mount_close(&sv->mount, server_on_unwound, &done);
	server_run_until(sv, &done);
	done = 0;
out_ops:
	fs_ops_close(&sv->ops);
out_member:
	if (sv->member) { /* NULL after a clean stop: it went with the mount */
		fs_member_stop(sv->member, server_on_unwound, &done);
		server_run_until(sv, &done);
		sv->member = NULL;
	}
out_store:
	store_close(sv->store);
out_loop:
	uv_run(&sv->loop, UV_RUN_DEFAULT); /* what is still closing */
	if (uv_loop_close(&sv->loop) != 0)
		FS_WARN("mount %s: the loop still had open handles at exit", dir);
	return code;
}

/*
 * A file's content passes through several buffers of its size on the way from write() to the
 * store (the handle, the request, raft's log, the WAL's record, the frames to the peers, the
 * decoded request). glibc serves an allocation above its mmap threshold with fresh pages and gives
 * them back at free, so every one of those buffers was faulted in and zeroed by the kernel again
 * for every large file: that, not the copying, was most of the members' CPU time for 1 MiB files
 * (write-path-bench). Buffers up to the largest request (max_request plus room for its envelope)
 * are therefore taken from the heap, and up to 64 MiB freed at its top is kept for the next ones.
 */
static void keep_freed_memory(uint64_t max_request)
{
	uint64_t threshold = max_request + 64 * 1024;
	mallopt(M_MMAP_THRESHOLD, threshold > INT32_MAX ? INT32_MAX : (int)threshold);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

int fs_server_mount(int argc, char **argv, FILE *out, FILE *err)
{
	struct mount_args a;
	int rc = parse_mount_args(argc, argv, &a, out, err);
	if (rc >= 0)
		return rc;
	enum fs_log_level level = FS_LOG_INFO;
	fs_log_parse_level(a.cfg.log_level, &level);
	fs_log_setup(level, a.cfg.name);
	int ready_fd;
	if ((rc = fs_daemon_start(a.foreground, &ready_fd)) != 0) {
		fprintf(err, "raftfs mount: cannot start the daemon: %s\n", strerror(-rc));
		return FS_EXIT_FAILURE;
	}
	keep_freed_memory(a.max_request ? a.max_request : FS_DEFAULT_MAX_VALUE);
	struct server *sv = calloc(1, sizeof *sv); /* large (the inode table, the handles) */
	if (!sv) {
		FS_ERROR("mount %s: out of memory", a.dir);
		return FS_EXIT_FAILURE;
	}
	rc = server_run(sv, &a, ready_fd);
	free(sv);
	FS_INFO("exiting");
	return rc;
}

/* Whether mountinfo lists dir as a raftfs mount. */
static int is_raftfs_mount(const char *dir)
{
	char real[PATH_MAX];
	return realpath(dir, real) && fs_mount_find(real, "fuse.raftfs") >= 0;
}

int fs_server_umount(int argc, char **argv, FILE *out, FILE *err)
{
	if (argc != 2) {
		fprintf(err, "usage: raftfs umount DIR\n");
		return FS_EXIT_USAGE;
	}
	if (!is_raftfs_mount(argv[1])) {
		fprintf(err, "raftfs umount: %s is not a raftfs mount\n", argv[1]);
		return FS_EXIT_FAILURE;
	}
	if (umount2(argv[1], 0) == 0)
		return FS_EXIT_OK;
	if (errno != EPERM) {
		fprintf(err, "raftfs umount: %s: %s\n", argv[1], strerror(errno));
		return FS_EXIT_FAILURE;
	}
	/* not root: the setuid helper may */
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", argv[1], (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(err, "raftfs umount: fusermount3 -u %s failed\n", argv[1]);
		return FS_EXIT_FAILURE;
	}
	return FS_EXIT_OK;
}

/* Reads all of path into a malloc'd buffer; -errno. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 1 << 20, n = 0;
	uint8_t *buf = malloc(cap);
	for (size_t got = 1; buf && got;) {
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	}
	int rc = !buf ? -ENOMEM : ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

/*
 * `raftfs restore FILE --data-dir DIR [member flags]`: a data dir for the first start of a member
 * of a new cluster whose files are those of a `raftfs snapshot save` image (etcdctl snapshot
 * restore: run it for every member with the same flags but --name and --data-dir).
 */
int fs_server_restore(int argc, char **argv, FILE *out, FILE *err)
{
	struct fs_member_config cfg;
	const char *file = NULL;
	int data_dir = 0;
	fs_config_defaults(&cfg);
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			if (file) {
				fprintf(err, "raftfs restore: one snapshot file only\n");
				return FS_EXIT_USAGE;
			}
			file = argv[i];
			continue;
		}
		int rc = i + 1 < argc ? fs_config_flag(&cfg, argv[i], argv[i + 1], err) : 0;
		if (rc == 0) {
			fprintf(err, "raftfs restore: unknown flag %s (member flags only)\n", argv[i]);
			return FS_EXIT_USAGE;
		}
		if (rc < 0)
			return FS_EXIT_USAGE;
		data_dir |= !strcmp(argv[i], "--data-dir");
		i++;
	}
	if (!file || !data_dir) {
		fprintf(err, "usage: raftfs restore FILE --data-dir DIR [--name N] "
			     "[--initial-cluster N=H:P,...] [--initial-cluster-token T] [--listen-peer H:P]\n");
		return FS_EXIT_USAGE;
	}
	if (fs_config_finish(&cfg, err) != 0)
		return FS_EXIT_USAGE;
	uint8_t *image = NULL;
	size_t len = 0;
	int rc = read_file(file, &image, &len);
	if (rc) {
		fprintf(err, "raftfs restore: %s: %s\n", file, strerror(-rc));
		return FS_EXIT_FAILURE;
	}
	/* the whole image decodes before anything is written */
	struct store *s = NULL;
	struct store_config scfg = {0};
	rc = store_open(&scfg, &s);
	if (rc == 0)
		rc = store_snapshot_restore(s, image, len);
	int64_t rev = rc == 0 ? store_rev(s) : 0;
	store_close(s);
	if (rc) {
		fprintf(err, "raftfs restore: %s is not a raftfs snapshot: %s\n", file,
			store_strerror(rc));
		free(image);
		return FS_EXIT_FAILURE;
	}
	fs_log_setup(FS_LOG_WARN, cfg.name); /* what went wrong; the summary goes to out */
	rc = fs_member_restore(&cfg, image, len);
	free(image);
	if (rc)
		return FS_EXIT_FAILURE; /* it said why */
	fprintf(out, "restored %s (revision %" PRId64 ") into %s as member %s of a new cluster\n",
		file, rev, cfg.data_dir, cfg.name);
	return FS_EXIT_OK;
}
