/*
 * cli_cluster.c: the subcommands that operate a running cluster through one of its mounts —
 * status, member, lease, compact, snapshot save, alarm, watch, get, put. Each writes one command
 * to MOUNT/.raftfs/ctl and prints the answer (fs/control/control.h has the protocol): a table by
 * default, JSON with `-w json`. Bad input is refused here with exit status 2 before anything is
 * sent; an error the cluster answers is one line on stderr and exit status 1.
 */
#include "fs.h"

#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* The command line of one subcommand after the global -w flag was taken out. */
struct args {
	const char *sub;    /* the subcommand word */
	int json;           /* -w json */
	const char *av[16]; /* the rest, flags included */
	int ac;
};

static int usage_error(FILE *err, const char *sub, const char *usage)
{
	fprintf(err, "usage: raftfs %s %s\n", sub, usage);
	return FS_EXIT_USAGE;
}

/* Splits argv, taking out -w json|table (or --write-out=...); -1 after a message on a bad -w. */
static int args_parse(int argc, char **argv, struct args *a, FILE *err)
{
	memset(a, 0, sizeof *a);
	a->sub = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *w = NULL;
		if ((!strcmp(argv[i], "-w") || !strcmp(argv[i], "--write-out")) && i + 1 < argc)
			w = argv[++i];
		else if (!strncmp(argv[i], "--write-out=", 12))
			w = argv[i] + 12;
		if (w) {
			if (strcmp(w, "json") && strcmp(w, "table")) {
				fprintf(err, "raftfs %s: -w takes json or table, not '%s'\n", a->sub, w);
				return -1;
			}
			a->json = !strcmp(w, "json");
			continue;
		}
		if (a->ac == (int)(sizeof a->av / sizeof a->av[0])) {
			fprintf(err, "raftfs %s: too many arguments\n", a->sub);
			return -1;
		}
		a->av[a->ac++] = argv[i];
	}
	return 0;
}

static int parse_num(const char *s, int64_t min, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

/* ---- talking to .raftfs/ctl ------------------------------------------------------------------- */

struct ctl {
	int fd;
	uint64_t off;   /* the next read offset */
	char *line;     /* a partial line of a stream */
	size_t len;
};

/* Opens MOUNT's command file; exit status on failure (after a message). */
static int ctl_open(struct ctl *c, const char *sub, const char *mount, FILE *err)
{
	char path[PATH_MAX];
	memset(c, 0, sizeof *c);
	snprintf(path, sizeof path, "%s/.raftfs/ctl", mount);
	c->fd = open(path, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		fprintf(err, "raftfs %s: %s is not a raftfs mount (%s: %s)\n", sub, mount, path,
			strerror(errno));
		return FS_EXIT_FAILURE;
	}
	return FS_EXIT_OK;
}

static void ctl_close(struct ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	c->fd = -1;
}

/* Sends words (the format first); exit status on failure. */
static int ctl_send(struct ctl *c, const char *sub, int json, const char *const *words, int n,
		    FILE *err)
{
	size_t len = 0;
	char buf[16384];
	const char *fmt = json ? "json" : "table";
	for (int i = -1; i < n; i++) {
		const char *w = i < 0 ? fmt : words[i];
		size_t wl = strlen(w) + 1;
		if (len + wl > sizeof buf) {
			fprintf(err, "raftfs %s: the command is too long\n", sub);
			return FS_EXIT_USAGE;
		}
		memcpy(buf + len, w, wl);
		len += wl;
	}
	if (pwrite(c->fd, buf, len, 0) != (ssize_t)len) {
		fprintf(err, "raftfs %s: the mount did not take the command: %s\n", sub,
			strerror(errno));
		return FS_EXIT_FAILURE;
	}
	c->off = 0;
	return FS_EXIT_OK;
}

/* Reads the next chunk of the answer into buf; its length, 0 at the end, -1 after a message. */
static ssize_t ctl_read(struct ctl *c, const char *sub, char *buf, size_t cap, FILE *err)
{
	ssize_t n;
	do
		n = pread(c->fd, buf, cap, (off_t)c->off);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		fprintf(err, "raftfs %s: reading the answer: %s\n", sub, strerror(errno));
		return -1;
	}
	c->off += (uint64_t)n;
	return n;
}

/*
 * Runs a command and copies its body to out (binary-safe). A first line "error: ..." is printed on
 * stderr with exit status 1. A stream (watch) is read until it ends: an "error: " line inside it
 * also ends it with status 1.
 */
static int ctl_run(const char *sub, const char *mount, int json, const char *const *words, int n,
		   FILE *out, FILE *err)
{
	struct ctl c;
	int rc = ctl_open(&c, sub, mount, err);
	if (rc == FS_EXIT_OK)
		rc = ctl_send(&c, sub, json, words, n, err);
	char *buf = rc == FS_EXIT_OK ? malloc(CHUNK) : NULL;
	if (rc == FS_EXIT_OK && !buf)
		rc = FS_EXIT_FAILURE;
	int first = 1; /* the status line is still to come */
	while (rc == FS_EXIT_OK) {
		ssize_t got = ctl_read(&c, sub, buf, CHUNK, err);
		if (got <= 0) {
			rc = got < 0 || first ? FS_EXIT_FAILURE : FS_EXIT_OK;
			if (first && got == 0)
				fprintf(err, "raftfs %s: the mount gave no answer\n", sub);
			break;
		}
		/* lines are collected until the status line is whole, and in streams */
		char *nl_buf = realloc(c.line, c.len + (size_t)got + 1);
		if (!nl_buf) {
			rc = FS_EXIT_FAILURE;
			break;
		}
		c.line = nl_buf;
		memcpy(c.line + c.len, buf, (size_t)got);
		c.len += (size_t)got;
		c.line[c.len] = '\0';
		size_t used = 0;
		if (first) {
			char *nl = memchr(c.line, '\n', c.len);
			if (!nl)
				continue;
			if (!strncmp(c.line, "error: ", 7)) {
				fprintf(err, "raftfs %s: %.*s\n", sub, (int)(nl - c.line - 7), c.line + 7);
				rc = FS_EXIT_FAILURE;
				break;
			}
			first = 0;
			used = (size_t)(nl - c.line) + 1;
		}
		if (strcmp(sub, "watch") != 0) {
			fwrite(c.line + used, 1, c.len - used, out);
			c.len = 0;
			continue;
		}
		/* a watch: whole lines, an error line ends it */
		for (;;) {
			char *nl = memchr(c.line + used, '\n', c.len - used);
			if (!nl)
				break;
			size_t ll = (size_t)(nl - (c.line + used)) + 1;
			if (!strncmp(c.line + used, "error: ", 7)) {
				fprintf(err, "raftfs watch: %.*s", (int)ll - 7, c.line + used + 7);
				rc = FS_EXIT_FAILURE;
				break;
			}
			fwrite(c.line + used, 1, ll, out);
			used += ll;
		}
		fflush(out);
		memmove(c.line, c.line + used, c.len - used);
		c.len -= used;
	}
	free(buf);
	ctl_close(&c);
	return rc;
}

/* ---- subcommands ------------------------------------------------------------------------------ */

int fs_cli_status(int argc, char **argv, FILE *out, FILE *err)
{
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac != 1)
		return usage_error(err, "status", "MOUNT [-w json]");
	const char *w[] = {"status"};
	return ctl_run("status", a.av[0], a.json, w, 1, out, err);
}

int fs_cli_member(int argc, char **argv, FILE *out, FILE *err)
{
	static const char *const use = "list MOUNT | add MOUNT NAME=HOST:PORT [--learner] | "
				       "remove MOUNT NAME|ID | promote MOUNT NAME|ID | "
				       "move-leader MOUNT NAME|ID [-w json]";
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac < 2)
		return usage_error(err, "member", use);
	const char *sub = a.av[0], *mount = a.av[1];
	const char *w[4] = {"member", sub};
	int n = 2;
	if (!strcmp(sub, "list")) {
		if (a.ac != 2)
			return usage_error(err, "member", use);
	} else if (!strcmp(sub, "add")) {
		int learner = a.ac == 4 && !strcmp(a.av[3], "--learner");
		if (a.ac != 3 + learner || !strchr(a.av[2], '='))
			return usage_error(err, "member", use);
		w[n++] = a.av[2];
		if (learner)
			w[n++] = "learner";
	} else if (!strcmp(sub, "remove") || !strcmp(sub, "promote") ||
		   !strcmp(sub, "move-leader")) {
		if (a.ac != 3)
			return usage_error(err, "member", use);
		w[n++] = a.av[2];
	} else {
		fprintf(err, "raftfs member: unknown subcommand '%s'\n", sub);
		return usage_error(err, "member", use);
	}
	return ctl_run("member", mount, a.json, w, n, out, err);
}

int fs_cli_lease(int argc, char **argv, FILE *out, FILE *err)
{
	static const char *const use = "grant MOUNT TTL | revoke MOUNT ID | keepalive MOUNT ID "
				       "[--once] | ttl MOUNT ID | list MOUNT [-w json]";
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac < 2)
		return usage_error(err, "lease", use);
	const char *sub = a.av[0], *mount = a.av[1];
	int64_t v = 0;
	if (!strcmp(sub, "list")) {
		if (a.ac != 2)
			return usage_error(err, "lease", use);
		const char *w[] = {"lease", "list"};
		return ctl_run("lease", mount, a.json, w, 2, out, err);
	}
	int once = a.ac == 4 && !strcmp(a.av[3], "--once") && !strcmp(sub, "keepalive");
	if (strcmp(sub, "grant") && strcmp(sub, "revoke") && strcmp(sub, "keepalive") &&
	    strcmp(sub, "ttl")) {
		fprintf(err, "raftfs lease: unknown subcommand '%s'\n", sub);
		return usage_error(err, "lease", use);
	}
	if (a.ac != 3 + once)
		return usage_error(err, "lease", use);
	if (parse_num(a.av[2], 1, &v) != 0) {
		fprintf(err, "raftfs lease %s: '%s' is not a %s\n", sub, a.av[2],
			strcmp(sub, "grant") ? "lease id (a positive number)"
					     : "TTL in seconds (a positive number)");
		return FS_EXIT_USAGE;
	}
	const char *w[] = {"lease", sub, a.av[2]};
	if (strcmp(sub, "keepalive") || once)
		return ctl_run("lease", mount, a.json, w, 3, out, err);
	/*
	 * Keep it alive for as long as this process lives, a third of its TTL apart (a lease's TTL
	 * never changes: asked once).
	 */
	const char *ttl_w[] = {"lease", "ttl", a.av[2]};
	char *ttl_text = NULL;
	size_t ttl_len = 0;
	FILE *mem = open_memstream(&ttl_text, &ttl_len);
	int rc = mem ? ctl_run("lease", mount, 1, ttl_w, 3, mem, err) : FS_EXIT_FAILURE;
	if (mem)
		fclose(mem);
	const char *t = rc == FS_EXIT_OK && ttl_text ? strstr(ttl_text, "\"ttl\":") : NULL;
	int64_t ttl = t ? strtoll(t + 6, NULL, 10) : 0;
	free(ttl_text);
	useconds_t wait_us = (useconds_t)(ttl > 3 ? ttl * 1000000 / 3 : 1000000);
	while (rc == FS_EXIT_OK) {
		rc = ctl_run("lease", mount, a.json, w, 3, out, err);
		fflush(out);
		if (rc == FS_EXIT_OK)
			usleep(wait_us);
	}
	return rc;
}

int fs_cli_compact(int argc, char **argv, FILE *out, FILE *err)
{
	struct args a;
	int64_t rev;
	if (args_parse(argc, argv, &a, err) || a.ac != 2)
		return usage_error(err, "compact", "MOUNT REV [-w json]");
	if (parse_num(a.av[1], 1, &rev) != 0) {
		fprintf(err, "raftfs compact: '%s' is not a revision (a positive number)\n", a.av[1]);
		return FS_EXIT_USAGE;
	}
	const char *w[] = {"compact", a.av[1]};
	return ctl_run("compact", a.av[0], a.json, w, 2, out, err);
}

int fs_cli_alarm(int argc, char **argv, FILE *out, FILE *err)
{
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac != 2 ||
	    (strcmp(a.av[0], "list") && strcmp(a.av[0], "disarm")))
		return usage_error(err, "alarm", "list|disarm MOUNT [-w json]");
	const char *w[] = {"alarm", a.av[0]};
	return ctl_run("alarm", a.av[1], a.json, w, 2, out, err);
}

int fs_cli_snapshot(int argc, char **argv, FILE *out, FILE *err)
{
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac != 3 || strcmp(a.av[0], "save"))
		return usage_error(err, "snapshot", "save MOUNT FILE");
	const char *file = a.av[2];
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.part", file);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		fprintf(err, "raftfs snapshot save: %s: %s\n", tmp, strerror(errno));
		return FS_EXIT_FAILURE;
	}
	const char *w[] = {"snapshot"};
	int rc = ctl_run("snapshot", a.av[1], 0, w, 1, f, err);
	long size = ftell(f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fprintf(err, "raftfs snapshot save: %s: %s\n", tmp, strerror(errno));
		rc = FS_EXIT_FAILURE;
	}
	fclose(f);
	if (rc == FS_EXIT_OK && rename(tmp, file) != 0) {
		fprintf(err, "raftfs snapshot save: %s: %s\n", file, strerror(errno));
		rc = FS_EXIT_FAILURE;
	}
	if (rc != FS_EXIT_OK)
		unlink(tmp);
	else
		fprintf(out, "snapshot saved to %s (%ld bytes)\n", file, size);
	return rc;
}

/* PATH inside the mount: "/a/b", or MOUNT/a/b as the shell names it. */
static const char *mount_path(const char *mount, const char *path, char *buf, size_t cap)
{
	char rm[PATH_MAX], rp[PATH_MAX];
	size_t ml;
	if (realpath(mount, rm) && (ml = strlen(rm)) && !strncmp(path, rm, ml) &&
	    (path[ml] == '/' || path[ml] == '\0')) {
		snprintf(buf, cap, "%s", path[ml] ? path + ml : "/");
		return buf;
	}
	/* a relative or symlinked spelling of a path under the mount */
	const char *slash = strrchr(path, '/');
	if (slash && slash != path) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
		if (realpath(dir, rp) && (ml = strlen(rm)) && !strncmp(rp, rm, ml) &&
		    (rp[ml] == '/' || rp[ml] == '\0')) {
			snprintf(buf, cap, "%s%s", rp[ml] ? rp + ml : "", slash);
			return buf;
		}
	}
	return path;
}

int fs_cli_watch(int argc, char **argv, FILE *out, FILE *err)
{
	static const char *const use = "MOUNT PATH [--rev N] [--prefix] [-w json]";
	struct args a;
	if (args_parse(argc, argv, &a, err))
		return usage_error(err, "watch", use);
	const char *mount = NULL, *path = NULL, *rev = "0", *prefix = "0";
	for (int i = 0; i < a.ac; i++) {
		if (!strcmp(a.av[i], "--prefix"))
			prefix = "1";
		else if (!strcmp(a.av[i], "--rev") && i + 1 < a.ac)
			rev = a.av[++i];
		else if (a.av[i][0] == '-' && a.av[i][1])
			return usage_error(err, "watch", use);
		else if (!mount)
			mount = a.av[i];
		else if (!path)
			path = a.av[i];
		else
			return usage_error(err, "watch", use);
	}
	int64_t r;
	if (!mount || !path)
		return usage_error(err, "watch", use);
	if (parse_num(rev, 0, &r) != 0) {
		fprintf(err, "raftfs watch: --rev '%s' is not a revision\n", rev);
		return FS_EXIT_USAGE;
	}
	char buf[PATH_MAX];
	path = mount_path(mount, path, buf, sizeof buf);
	if (path[0] != '/') {
		fprintf(err, "raftfs watch: '%s' is not a path in %s\n", path, mount);
		return FS_EXIT_USAGE;
	}
	const char *w[] = {"watch", path, rev, prefix};
	return ctl_run("watch", mount, a.json, w, 4, out, err);
}

int fs_cli_get(int argc, char **argv, FILE *out, FILE *err)
{
	static const char *const use = "MOUNT PATH --rev N";
	struct args a;
	if (args_parse(argc, argv, &a, err) || a.ac != 4 || strcmp(a.av[2], "--rev"))
		return usage_error(err, "get", use);
	int64_t r;
	if (parse_num(a.av[3], 1, &r) != 0) {
		fprintf(err, "raftfs get: --rev '%s' is not a revision\n", a.av[3]);
		return FS_EXIT_USAGE;
	}
	char buf[PATH_MAX];
	const char *path = mount_path(a.av[0], a.av[1], buf, sizeof buf);
	if (path[0] != '/') {
		fprintf(err, "raftfs get: '%s' is not a path in %s\n", path, a.av[0]);
		return FS_EXIT_USAGE;
	}
	const char *w[] = {"get", path, a.av[3]};
	return ctl_run("get", a.av[0], 0, w, 3, out, err);
}

int fs_cli_put(int argc, char **argv, FILE *out, FILE *err)
{
	static const char *const use = "FILE [--lease ID]   (the content comes from stdin)";
	struct args a;
	int64_t lease = 0;
	if (args_parse(argc, argv, &a, err) || (a.ac != 1 && a.ac != 3) ||
	    (a.ac == 3 && (strcmp(a.av[1], "--lease") || parse_num(a.av[2], 1, &lease) != 0)))
		return usage_error(err, "put", use);
	/*
	 * Written beside FILE, bound to the lease, then renamed over it: FILE appears on every
	 * member at once, with its content and its lease.
	 */
	const char *file = a.av[0];
	char tmp[PATH_MAX];
	const char *slash = strrchr(file, '/');
	snprintf(tmp, sizeof tmp, "%.*s.%s.raftfs-put.%d", slash ? (int)(slash - file + 1) : 0,
		 file, slash ? slash + 1 : file, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(err, "raftfs put: %s: %s\n", tmp, strerror(errno));
		return FS_EXIT_FAILURE;
	}
	char buf[CHUNK];
	ssize_t n;
	int rc = FS_EXIT_OK;
	while (rc == FS_EXIT_OK && (n = read(0, buf, sizeof buf)) != 0)
		if (n < 0 || write(fd, buf, (size_t)n) != n)
			rc = FS_EXIT_FAILURE;
	if (close(fd) != 0)
		rc = FS_EXIT_FAILURE;
	char id[32];
	snprintf(id, sizeof id, "%" PRId64, lease);
	if (rc == FS_EXIT_OK && lease && setxattr(tmp, "user.raftfs.lease", id, strlen(id), 0) != 0)
		rc = FS_EXIT_FAILURE;
	if (rc == FS_EXIT_OK && rename(tmp, file) != 0)
		rc = FS_EXIT_FAILURE;
	if (rc != FS_EXIT_OK) {
		fprintf(err, "raftfs put: %s: %s\n", file,
			errno == EINVAL && lease ? "no such lease" : strerror(errno));
		unlink(tmp);
	}
	return rc;
}
