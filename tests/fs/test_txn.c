/*
 * test_txn.c: the transaction of every change of the file system (fs/fuse/txn.c), built against
 * a real in-memory store, encoded and applied through the member's state machine as a proposal
 * would be, with no mount: the keys, values, metadata and revisions each one leaves, and the
 * compares that make it fail when the store changed between building and applying it (another
 * member's change committed first).
 */
#include "check.h"
#include "fuse/internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define T0 INT64_C(1790000000000000000) /* a proposer's clock, ns */

/* A store with the state machine applying to it, and the view a builder reads it through. */
struct env {
	struct store *s;
	struct fs_kv kv;
	struct fs_state_machine sm;
	struct fs_txn_view v;
	uint64_t index;
};

static void env_open(struct env *e)
{
	memset(e, 0, sizeof *e);
	CHECK_EQ(store_open(NULL, &e->s), 0);
	e->kv = (struct fs_kv){e->s, NULL, NULL};
	fs_kv_state_machine(&e->kv, &e->sm);
	e->v = (struct fs_txn_view){e->s, NULL, NULL};
}

/* Applies an encoded request as the next entry and frees it; returns its response. */
static Rpc__Response apply_bytes(struct env *e, uint8_t *buf, size_t len)
{
	void *result = NULL;
	size_t rlen = 0;
	int status = e->sm.apply(e->sm.ud, ++e->index, buf, len, &result, &rlen);
	free(buf);
	Rpc__Response resp;
	int dec = fs_kv_decode_response(result, rlen, &resp);
	free(result);
	CHECK_EQ(status, 0);
	CHECK_EQ(dec, 0);
	CHECK_EQ(resp.revision, store_rev(e->s));
	return resp;
}

/* Applies req as the next entry; returns its response (CHECKs that it applied). */
static Rpc__Response apply_req(struct env *e, const Rpc__Request *req)
{
	size_t len;
	uint8_t *buf = fs_kv_encode(req, &len);
	CHECK(buf != NULL);
	return apply_bytes(e, buf, len);
}

/* Grants lease id for an hour. */
static void grant(struct env *e, int64_t id)
{
	Rpc__LeaseGrant g = RPC__LEASE_GRANT__INIT;
	g.has_id = g.has_ttl = 1;
	g.id = id;
	g.ttl = 3600;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_LEASE_GRANT;
	req.lease_grant = &g;
	req.has_time_ns = 1;
	req.time_ns = T0;
	apply_req(e, &req);
}

/* Revokes lease id. */
static void revoke_lease(struct env *e, int64_t id)
{
	Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
	r.has_id = 1;
	r.id = id;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
	req.lease_revoke = &r;
	apply_req(e, &req);
}

/* Encodes tb as a proposal would, frees it, applies it; returns whether its compares held. */
static int apply(struct env *e, struct fs_txn *tb)
{
	uint8_t *buf;
	size_t len;
	int rc = fs__txn_encode(tb, T0, &buf, &len);
	fs__txn_free(tb);
	CHECK_EQ(rc, 0);
	return apply_bytes(e, buf, len).succeeded;
}

static int exists_n(struct env *e, const void *key, size_t len)
{
	struct store_kv kv;
	return store_get(e->s, key, len, 0, &kv) == 0;
}

static int exists(struct env *e, const char *key)
{
	return exists_n(e, key, strlen(key));
}

/* key's kv now; the case fails when there is none. */
#define KV(e, key, kvp) CHECK_EQ(store_get((e)->s, (key), strlen(key), 0, (kvp)), 0)

/* key's value now is str (the case fails otherwise). */
#define CHECK_VALUE(e, key, str)                                                                   \
	do {                                                                                       \
		struct store_kv vkv_;                                                              \
		KV(e, key, &vkv_);                                                                 \
		CHECK_EQ(vkv_.value_len, strlen(str));                                             \
		if (vkv_.value_len)                                                                \
			CHECK_MEM_EQ(vkv_.value, (str), strlen(str));                              \
	} while (0)

static struct store_meta meta(uint32_t type, uint32_t mode, uint32_t uid, uint32_t gid,
			      int64_t t)
{
	return (struct store_meta){.type = type, .mode = mode, .uid = uid, .gid = gid,
				   .atime_ns = t, .mtime_ns = t, .ctime_ns = t};
}

static struct fs_txn *txn(void)
{
	struct fs_txn *tb = fs__txn_new();
	CHECK(tb != NULL);
	return tb;
}

/* Builds (and CHECKs) the create of path, not applied yet. */
static struct fs_txn *build_create(struct env *e, const char *path, uint32_t type,
				   const char *value, uint32_t uid, int64_t now)
{
	struct fs_txn *tb = txn();
	struct store_meta m = meta(type, type == S_IFDIR ? 0755 : 0644, uid, 100, now);
	CHECK_EQ(fs__txn_create(tb, &e->v, path, &m, value, value ? strlen(value) : 0, now), 0);
	return tb;
}

static void make(struct env *e, const char *path, uint32_t type, const char *value, int64_t now)
{
	CHECK(apply(e, build_create(e, path, type, value, 1000, now)));
}

static struct fs_txn *build_write(struct env *e, const char *path, const char *content,
				  int64_t now)
{
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e->v, path, content, strlen(content), NULL, 0, now), 0);
	return tb;
}

static struct fs_txn *build_remove(struct env *e, const char *path, int dir)
{
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_remove(tb, &e->v, path, dir, T0), 0);
	return tb;
}

static struct fs_txn *build_rename(struct env *e, const char *from, const char *to, int64_t now)
{
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_rename(tb, &e->v, from, to, 0, now), 0);
	return tb;
}

static struct fs_txn *build_xattr(struct env *e, const char *path, const char *name,
				  const char *value, int flags)
{
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_xattr(tb, &e->v, path, name, value, value ? strlen(value) : 0, flags), 0);
	return tb;
}

/* Puts, straight into the store, a file under dir whose path is within 100 bytes of the limit. */
static void put_deep(struct env *e, const char *dir)
{
	char deep[FS_PATH_MAX_BYTES + 1];
	snprintf(deep, sizeof deep, "%s", dir);
	while (strlen(deep) + 101 < FS_PATH_MAX_BYTES)
		strcat(deep, "/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	CHECK_EQ(store_put(e->s, &(struct store_put){.key = deep, .key_len = strlen(deep),
						     .meta = meta(S_IFREG, 0644, 0, 0, T0)}, NULL), 0);
}

/* "/xxx...": a name of 200 bytes at the root, into buf[300]. */
static void long_name(char *buf)
{
	memset(buf, 'x', 200);
	buf[0] = '/';
	buf[200] = '\0';
}

/* The errno a builder answers with (its txn is freed unused). */
static int build_error(int rc, struct fs_txn *tb)
{
	fs__txn_free(tb);
	return rc;
}

/* path's attribute name: its value now is str. */
static void check_xattr(struct env *e, const char *path, const char *name, const char *str)
{
	char k[FS_XKEY_MAX];
	size_t kl = fs__txn_xkey(path, name, k);
	struct store_kv kv;
	CHECK_EQ(store_get(e->s, k, kl, 0, &kv), 0);
	CHECK_EQ(kv.value_len, strlen(str));
	if (kv.value_len)
		CHECK_MEM_EQ(kv.value, str, strlen(str));
}

static int has_xattr(struct env *e, const char *path, const char *name)
{
	char k[FS_XKEY_MAX];
	return exists_n(e, k, fs__txn_xkey(path, name, k));
}

/* ---- create ---------------------------------------------------------------------------------- */

CHECK_TEST(create_makes_the_name_and_touches_its_parent)
{
	struct env e;
	env_open(&e);
	struct fs_txn *tb = txn();
	struct store_meta dm = meta(S_IFDIR, 0750, 1000, 1000, T0 + 1);
	CHECK_EQ(fs__txn_create(tb, &e.v, "/projects", &dm, NULL, 0, T0 + 1), 0);
	CHECK_EQ(tb->n_cmp, 1); /* the name's version; the root is nobody's key */
	CHECK_EQ(tb->n_op, 1);
	CHECK(apply(&e, tb));
	struct store_kv d, f;
	KV(&e, "/projects", &d);
	CHECK_EQ(d.meta.type, S_IFDIR);
	CHECK_EQ(d.meta.mode, 0750);
	CHECK_EQ(d.value_len, 0);
	CHECK_EQ(d.create_revision, 2);

	tb = txn();
	struct store_meta fm = meta(S_IFREG, 0640, 1001, 100, T0 + 2);
	CHECK_EQ(fs__txn_create(tb, &e.v, "/projects/plan.md", &fm, NULL, 0, T0 + 2), 0);
	CHECK_EQ(tb->n_cmp, 2); /* the name is new, the parent is the one seen */
	CHECK_EQ(tb->n_op, 2);  /* the name, the parent's touch */
	CHECK(apply(&e, tb));
	CHECK_EQ(store_rev(e.s), 3);
	KV(&e, "/projects/plan.md", &f);
	CHECK_EQ(f.meta.type, S_IFREG);
	CHECK_EQ(f.meta.mode, 0640);
	CHECK_EQ(f.meta.uid, 1001);
	CHECK_EQ(f.meta.gid, 100);
	CHECK_EQ(f.meta.atime_ns, T0 + 2);
	CHECK_EQ(f.meta.mtime_ns, T0 + 2);
	CHECK_EQ(f.meta.ctime_ns, T0 + 2);
	CHECK_EQ(f.value_len, 0);
	CHECK_EQ(f.version, 1);
	CHECK_EQ(f.create_revision, 3);
	/* the parent moved in the same revision, its times now, the rest as it was */
	KV(&e, "/projects", &d);
	CHECK_EQ(d.mod_revision, 3);
	CHECK_EQ(d.create_revision, 2);
	CHECK_EQ(d.meta.mtime_ns, T0 + 2);
	CHECK_EQ(d.meta.ctime_ns, T0 + 2);
	CHECK_EQ(d.meta.atime_ns, T0 + 1);
	CHECK_EQ(d.meta.mode, 0750);
	CHECK_EQ(d.meta.uid, 1000);

	/* a symlink's target is its value */
	tb = txn();
	struct store_meta lm = meta(S_IFLNK, 0777, 1001, 100, T0 + 3);
	CHECK_EQ(fs__txn_create(tb, &e.v, "/projects/current", &lm, "plan.md", 7, T0 + 3), 0);
	CHECK(apply(&e, tb));
	CHECK_VALUE(&e, "/projects/current", "plan.md");
	KV(&e, "/projects/current", &f);
	CHECK_EQ(f.meta.type, S_IFLNK);
	KV(&e, "/projects", &d);
	CHECK_EQ(d.mod_revision, 4);
	store_close(e.s);
}

CHECK_TEST(create_of_an_existing_name_fails)
{
	struct env e;
	env_open(&e);
	make(&e, "/srv", S_IFDIR, NULL, T0);
	/* two members build the same create from the same state: one wins */
	struct fs_txn *mine = build_create(&e, "/srv/lock", S_IFREG, "n1", 1, T0 + 1);
	struct fs_txn *theirs = build_create(&e, "/srv/lock", S_IFREG, "member-two", 2, T0 + 2);
	CHECK(apply(&e, mine));
	int64_t rev = store_rev(e.s);
	CHECK(!apply(&e, theirs));
	CHECK_VALUE(&e, "/srv/lock", "n1");
	struct store_kv kv;
	KV(&e, "/srv/lock", &kv);
	CHECK_EQ(kv.meta.uid, 1);
	CHECK_EQ(kv.mod_revision, rev);
	KV(&e, "/srv", &kv);
	CHECK_EQ(kv.mod_revision, rev); /* the loser touched nothing */
	/* nor does a mkdir over a file, or a create over a directory */
	CHECK(!apply(&e, build_create(&e, "/srv/lock", S_IFDIR, NULL, 3, T0 + 3)));
	CHECK(!apply(&e, build_create(&e, "/srv", S_IFREG, "x", 3, T0 + 3)));
	KV(&e, "/srv/lock", &kv);
	CHECK_EQ(kv.meta.type, S_IFREG);
	CHECK_EQ(kv.mod_revision, rev);
	store_close(e.s);
}

CHECK_TEST(create_in_a_directory_removed_meanwhile_fails)
{
	struct env e;
	env_open(&e);
	make(&e, "/scratch", S_IFDIR, NULL, T0);
	struct fs_txn *tb = build_create(&e, "/scratch/out.log", S_IFREG, NULL, 1000, T0 + 1);
	CHECK(apply(&e, build_remove(&e, "/scratch", 1)));
	CHECK(!apply(&e, tb));
	CHECK(!exists(&e, "/scratch")); /* its touch did not bring the directory back */
	CHECK(!exists(&e, "/scratch/out.log"));
	/* and one removed and made again is not the directory seen */
	make(&e, "/scratch", S_IFDIR, NULL, T0 + 2);
	tb = build_create(&e, "/scratch/a", S_IFREG, NULL, 1000, T0 + 3);
	CHECK(apply(&e, build_remove(&e, "/scratch", 1)));
	make(&e, "/scratch", S_IFDIR, NULL, T0 + 4);
	CHECK(!apply(&e, tb));
	CHECK(!exists(&e, "/scratch/a"));
	/* nothing is made where there is no directory */
	make(&e, "/file", S_IFREG, "data", T0);
	tb = txn();
	struct store_meta m = meta(S_IFREG, 0644, 0, 0, T0);
	CHECK_EQ(build_error(fs__txn_create(tb, &e.v, "/nowhere/x", &m, NULL, 0, T0), tb), -ENOENT);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_create(tb, &e.v, "/file/x", &m, NULL, 0, T0), tb), -ENOTDIR);
	store_close(e.s);
}

/* ---- write (commit) -------------------------------------------------------------------------- */

CHECK_TEST(commit_puts_content_with_the_file_metadata)
{
	struct env e;
	env_open(&e);
	make(&e, "/src", S_IFDIR, NULL, T0);
	make(&e, "/src/main.c", S_IFREG, NULL, T0 + 1);
	struct store_kv before, kv;
	KV(&e, "/src", &before);
	const char *code = "int main(void)\n{\n\treturn 0;\n}\n";
	struct fs_txn *tb = build_write(&e, "/src/main.c", code, T0 + 5);
	CHECK_EQ(tb->n_cmp, 1); /* the directory still exists */
	CHECK_EQ(tb->n_op, 1);
	CHECK(tb->put[0].has_ignore_lease && tb->put[0].ignore_lease);
	CHECK(apply(&e, tb));
	CHECK_VALUE(&e, "/src/main.c", code);
	KV(&e, "/src/main.c", &kv);
	CHECK_EQ(kv.meta.type, S_IFREG);
	CHECK_EQ(kv.meta.mode, 0644);
	CHECK_EQ(kv.meta.uid, 1000);
	CHECK_EQ(kv.meta.atime_ns, T0 + 1);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 5);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 5);
	CHECK_EQ(kv.version, 2);
	KV(&e, "/src", &kv);
	CHECK_EQ(kv.mod_revision, before.mod_revision); /* a write leaves its directory alone */

	/* a shorter value replaces it whole */
	CHECK(apply(&e, build_write(&e, "/src/main.c", "//\n", T0 + 6)));
	CHECK_VALUE(&e, "/src/main.c", "//\n");

	/* a name nobody has (deleted meanwhile): a bare regular file */
	tb = build_write(&e, "/src/util.h", "#pragma once\n", T0 + 7);
	CHECK(!tb->put[0].ignore_lease);
	CHECK(apply(&e, tb));
	KV(&e, "/src/util.h", &kv);
	CHECK_EQ(kv.meta.type, S_IFREG);
	CHECK_EQ(kv.meta.mode, 0644);
	CHECK_EQ(kv.meta.uid, 0);
	CHECK_EQ(kv.meta.atime_ns, T0 + 7);
	store_close(e.s);
}

CHECK_TEST(commit_by_another_than_root_clears_setuid_and_setgid)
{
	struct env e;
	env_open(&e);
	struct store_meta m = meta(S_IFREG, 06755, 1000, 100, T0);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_create(tb, &e.v, "/suid", &m, "#!/bin/sh\n", 10, T0), 0);
	CHECK(apply(&e, tb));
	m.mode = 02644; /* setgid without group execute: a mandatory-locking mark, kept */
	tb = txn();
	CHECK_EQ(fs__txn_create(tb, &e.v, "/sgid", &m, "x", 1, T0), 0);
	CHECK(apply(&e, tb));
	tb = txn(); /* root's write keeps the bits */
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/suid", "#!/bin/sh\nid\n", 13, NULL, 0, T0 + 1), 0);
	CHECK(apply(&e, tb));
	struct store_kv kv;
	KV(&e, "/suid", &kv);
	CHECK_EQ(kv.meta.mode, 06755);
	tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/suid", "#!/bin/sh\nrm -rf\n", 17, NULL, 1, T0 + 2), 0);
	CHECK(apply(&e, tb));
	KV(&e, "/suid", &kv);
	CHECK_EQ(kv.meta.mode, 0755);
	tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/sgid", "yy", 2, NULL, 1, T0 + 2), 0);
	CHECK(apply(&e, tb));
	KV(&e, "/sgid", &kv);
	CHECK_EQ(kv.meta.mode, 02644);
	store_close(e.s);
}

CHECK_TEST(commit_keeps_the_lease)
{
	struct env e;
	env_open(&e);
	make(&e, "/svc", S_IFREG, "10.0.0.1:80", T0);
	grant(&e, 77);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_lease(tb, &e.v, "/svc", 77), 0);
	CHECK(apply(&e, tb));
	CHECK(apply(&e, build_write(&e, "/svc", "10.0.0.2:8080", T0 + 1)));
	struct store_kv kv;
	KV(&e, "/svc", &kv);
	CHECK_EQ(kv.lease, 77);
	CHECK_VALUE(&e, "/svc", "10.0.0.2:8080");
	store_close(e.s);
}

CHECK_TEST(commit_of_a_file_created_here_creates_it)
{
	struct env e;
	env_open(&e);
	make(&e, "/home", S_IFDIR, NULL, T0);
	struct store_meta cm = meta(S_IFREG, 0600, 1234, 1234, T0 + 1);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/home/notes", "first draft", 11, &cm, 0, T0 + 9), 0);
	CHECK_EQ(tb->n_cmp, 2);
	CHECK_EQ(tb->n_op, 2);
	CHECK(apply(&e, tb));
	int64_t rev = store_rev(e.s);
	struct store_kv kv;
	KV(&e, "/home/notes", &kv);
	CHECK_EQ(kv.create_revision, rev);
	CHECK_EQ(kv.meta.mode, 0600);
	CHECK_EQ(kv.meta.uid, 1234);
	CHECK_EQ(kv.meta.atime_ns, T0 + 1);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 9);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 9);
	CHECK_VALUE(&e, "/home/notes", "first draft");
	KV(&e, "/home", &kv);
	CHECK_EQ(kv.mod_revision, rev); /* name and content in one revision with the touch */
	CHECK_EQ(kv.meta.mtime_ns, T0 + 9);
	/* never over a directory */
	make(&e, "/home/dir", S_IFDIR, NULL, T0);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_commit(tb, &e.v, "/home/dir", "x", 1, &cm, 0, T0), tb), -EISDIR);
	store_close(e.s);
}

CHECK_TEST(commit_whose_compare_fails_leaves_the_old_value)
{
	struct env e;
	env_open(&e);
	make(&e, "/w", S_IFDIR, NULL, T0);
	struct store_meta cm = meta(S_IFREG, 0644, 1, 1, T0);
	/* created here while nobody had the name; another member creates it first */
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/w/a", "mine", 4, &cm, 0, T0 + 1), 0);
	make(&e, "/w/a", S_IFREG, "theirs, longer", T0 + 2);
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/w/a", "theirs, longer");
	/* created here over a file seen; it is written meanwhile */
	tb = txn();
	CHECK_EQ(fs__txn_commit(tb, &e.v, "/w/a", "replacement", 11, &cm, 0, T0 + 3), 0);
	CHECK(apply(&e, build_write(&e, "/w/a", "written meanwhile", T0 + 4)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/w/a", "written meanwhile");
	/* a write into a directory removed meanwhile: nothing comes back */
	tb = build_write(&e, "/w/a", "late", T0 + 5);
	CHECK(apply(&e, build_remove(&e, "/w/a", 0)));
	CHECK(apply(&e, build_remove(&e, "/w", 1)));
	CHECK(!apply(&e, tb));
	CHECK(!exists(&e, "/w/a"));
	CHECK(!exists(&e, "/w"));
	store_close(e.s);
}

/* ---- remove ---------------------------------------------------------------------------------- */

CHECK_TEST(unlink_removes_the_file_and_its_attributes)
{
	struct env e;
	env_open(&e);
	make(&e, "/r", S_IFDIR, NULL, T0);
	make(&e, "/r/f", S_IFREG, "content of f", T0);
	make(&e, "/r/f2", S_IFREG, "f2", T0);
	CHECK(apply(&e, build_xattr(&e, "/r/f", "user.a", "alpha", 0)));
	CHECK(apply(&e, build_xattr(&e, "/r/f", "user.bb", "beta value", 0)));
	CHECK(apply(&e, build_xattr(&e, "/r/f2", "user.a", "f2's", 0)));
	struct fs_txn *tb = build_remove(&e, "/r/f", 0);
	CHECK_EQ(tb->n_cmp, 2); /* the same file, the directory seen */
	CHECK_EQ(tb->n_op, 3);  /* the name, its attributes, the touch */
	CHECK(apply(&e, tb));
	int64_t rev = store_rev(e.s);
	CHECK(!exists(&e, "/r/f"));
	CHECK(!has_xattr(&e, "/r/f", "user.a"));
	CHECK(!has_xattr(&e, "/r/f", "user.bb"));
	CHECK_VALUE(&e, "/r/f2", "f2"); /* a name that begins alike stays, with its attributes */
	check_xattr(&e, "/r/f2", "user.a", "f2's");
	struct store_kv kv;
	KV(&e, "/r", &kv);
	CHECK_EQ(kv.mod_revision, rev);

	/* a file written meanwhile is still the file: it goes */
	tb = build_remove(&e, "/r/f2", 0);
	CHECK(apply(&e, build_write(&e, "/r/f2", "rewritten", T0 + 1)));
	CHECK(apply(&e, tb));
	CHECK(!exists(&e, "/r/f2"));
	/* one replaced meanwhile (removed, made again) is not */
	make(&e, "/r/g", S_IFREG, "g1", T0);
	tb = build_remove(&e, "/r/g", 0);
	CHECK(apply(&e, build_remove(&e, "/r/g", 0)));
	make(&e, "/r/g", S_IFREG, "g, the second", T0 + 2);
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/r/g", "g, the second");

	tb = txn();
	CHECK_EQ(build_error(fs__txn_remove(tb, &e.v, "/r", 0, T0), tb), -EISDIR);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_remove(tb, &e.v, "/r/g", 1, T0), tb), -ENOTDIR);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_remove(tb, &e.v, "/r/none", 0, T0), tb), -ENOENT);
	store_close(e.s);
}

CHECK_TEST(rmdir_fails_when_a_child_was_created_meanwhile)
{
	struct env e;
	env_open(&e);
	make(&e, "/e", S_IFDIR, NULL, T0);
	make(&e, "/e/sub", S_IFDIR, NULL, T0);
	struct fs_txn *tb = build_remove(&e, "/e/sub", 1);
	make(&e, "/e/sub/late.txt", S_IFREG, "late", T0 + 1);
	CHECK(!apply(&e, tb));
	CHECK(exists(&e, "/e/sub"));
	CHECK_VALUE(&e, "/e/sub/late.txt", "late");
	tb = txn();
	CHECK_EQ(build_error(fs__txn_remove(tb, &e.v, "/e/sub", 1, T0), tb), -ENOTEMPTY);
	/* emptied again, it goes, its attributes with it */
	CHECK(apply(&e, build_remove(&e, "/e/sub/late.txt", 0)));
	CHECK(apply(&e, build_xattr(&e, "/e/sub", "user.note", "keep out", 0)));
	CHECK(apply(&e, build_remove(&e, "/e/sub", 1)));
	CHECK(!exists(&e, "/e/sub"));
	CHECK(!has_xattr(&e, "/e/sub", "user.note"));
	struct store_kv kv;
	KV(&e, "/e", &kv);
	CHECK_EQ(kv.mod_revision, store_rev(e.s));
	store_close(e.s);
}

/* ---- rename ---------------------------------------------------------------------------------- */

CHECK_TEST(rename_moves_a_file_with_its_attributes)
{
	struct env e;
	env_open(&e);
	make(&e, "/in", S_IFDIR, NULL, T0);
	make(&e, "/out", S_IFDIR, NULL, T0);
	make(&e, "/in/a.txt", S_IFREG, "alpha", T0 + 1);
	CHECK(apply(&e, build_xattr(&e, "/in/a.txt", "user.tag", "blue", 0)));
	struct store_kv old, kv;
	KV(&e, "/in/a.txt", &old);
	struct fs_txn *tb = build_rename(&e, "/in/a.txt", "/out/b.txt", T0 + 5);
	CHECK_EQ(tb->n_cmp, 4); /* source, target, both parents */
	CHECK(apply(&e, tb));
	int64_t rev = store_rev(e.s);
	CHECK(!exists(&e, "/in/a.txt"));
	CHECK_VALUE(&e, "/out/b.txt", "alpha");
	KV(&e, "/out/b.txt", &kv);
	CHECK_EQ(kv.mod_revision, rev);
	CHECK_EQ(kv.meta.uid, old.meta.uid);
	CHECK_EQ(kv.meta.mode, old.meta.mode);
	CHECK_EQ(kv.meta.mtime_ns, old.meta.mtime_ns);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 5);
	check_xattr(&e, "/out/b.txt", "user.tag", "blue");
	CHECK(!has_xattr(&e, "/in/a.txt", "user.tag"));
	KV(&e, "/in", &kv);
	CHECK_EQ(kv.mod_revision, rev);
	KV(&e, "/out", &kv);
	CHECK_EQ(kv.mod_revision, rev);

	/* over a file: the target's attributes go, the source's take their place */
	make(&e, "/out/c.txt", S_IFREG, "gamma, the old one", T0);
	CHECK(apply(&e, build_xattr(&e, "/out/c.txt", "user.old", "stale", 0)));
	tb = build_rename(&e, "/out/b.txt", "/out/c.txt", T0 + 6);
	CHECK_EQ(tb->n_cmp, 3); /* one parent */
	CHECK(apply(&e, tb));
	CHECK(!exists(&e, "/out/b.txt"));
	CHECK_VALUE(&e, "/out/c.txt", "alpha");
	check_xattr(&e, "/out/c.txt", "user.tag", "blue");
	CHECK(!has_xattr(&e, "/out/c.txt", "user.old"));
	store_close(e.s);
}

CHECK_TEST(rename_and_exchange_refuse_what_renameat2_refuses)
{
	struct env e;
	env_open(&e);
	make(&e, "/d", S_IFDIR, NULL, T0);
	make(&e, "/d/sub", S_IFDIR, NULL, T0);
	make(&e, "/d/sub/in", S_IFDIR, NULL, T0);
	make(&e, "/full", S_IFDIR, NULL, T0);
	make(&e, "/full/x", S_IFREG, "x", T0);
	make(&e, "/f", S_IFREG, "f", T0);
	make(&e, "/g", S_IFREG, "g", T0);
	static const struct {
		const char *from, *to;
		unsigned flags;
		int rc;
	} cases[] = {
		{"/none", "/x", 0, -ENOENT},         {"/d", "/d/sub/in", 0, -EINVAL},
		{"/f", "/g", RENAME_NOREPLACE, -EEXIST}, {"/d", "/f", 0, -ENOTDIR},
		{"/f", "/d", 0, -EISDIR},            {"/d/sub", "/full", 0, -ENOTEMPTY},
		{"/f", "/h", RENAME_WHITEOUT, -EINVAL},
		/* exchange: both names must exist, neither under the other, no other flag */
		{"/f", "/none", RENAME_EXCHANGE, -ENOENT},
		{"/none", "/f", RENAME_EXCHANGE, -ENOENT},
		{"/d", "/d/sub/in", RENAME_EXCHANGE, -EINVAL},
		{"/d/sub/in", "/d", RENAME_EXCHANGE, -EINVAL},
		{"/f", "/g", RENAME_EXCHANGE | RENAME_NOREPLACE, -EINVAL},
		{"/f", "/g", RENAME_EXCHANGE | RENAME_WHITEOUT, -EINVAL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fs_txn *tb = txn();
		int rc = fs__txn_rename(tb, &e.v, cases[i].from, cases[i].to, cases[i].flags, T0);
		fs__txn_free(tb);
		if (rc != cases[i].rc)
			CHECK_FAIL("rename %s %s (flags %u): %d, not %d", cases[i].from, cases[i].to,
				   cases[i].flags, rc, cases[i].rc);
	}
	store_close(e.s);
}

CHECK_TEST(rename_of_a_directory_moves_everything_in_one_revision)
{
	struct env e;
	env_open(&e);
	static const char *const dirs[] = {"/proj", "/proj/src", "/proj/src/deep", "/archive"};
	for (size_t i = 0; i < 4; i++)
		make(&e, dirs[i], S_IFDIR, NULL, T0);
	make(&e, "/proj/README", S_IFREG, "read me first", T0);
	make(&e, "/proj/src/lib.c", S_IFREG, "int lib;", T0);
	make(&e, "/proj/src/deep/x.h", S_IFREG, "#define X 1\n", T0);
	/* siblings whose names begin alike stay */
	make(&e, "/project2", S_IFREG, "other", T0);
	make(&e, "/proj-old", S_IFDIR, NULL, T0);
	make(&e, "/proj-old/file", S_IFREG, "old", T0);
	CHECK(apply(&e, build_xattr(&e, "/proj", "user.owner", "alice", 0)));
	CHECK(apply(&e, build_xattr(&e, "/proj/src", "user.k", "v", 0)));
	CHECK(apply(&e, build_xattr(&e, "/proj/src/lib.c", "user.lang", "c11", 0)));
	CHECK(apply(&e, build_xattr(&e, "/project2", "user.owner", "bob", 0)));
	CHECK(apply(&e, build_xattr(&e, "/proj-old/file", "user.z", "zz", 0)));
	int64_t before = store_rev(e.s);
	struct store_kv lib;
	KV(&e, "/proj/src/lib.c", &lib);
	struct store_meta lib_meta = lib.meta;

	CHECK(apply(&e, build_rename(&e, "/proj", "/archive/p2", T0 + 9)));
	int64_t rev = store_rev(e.s);
	CHECK_EQ(rev, before + 1);
	static const char *const gone[] = {"/proj", "/proj/README", "/proj/src", "/proj/src/lib.c",
					   "/proj/src/deep", "/proj/src/deep/x.h"};
	static const char *const moved[] = {"/archive/p2", "/archive/p2/README", "/archive/p2/src",
					    "/archive/p2/src/lib.c", "/archive/p2/src/deep",
					    "/archive/p2/src/deep/x.h"};
	for (size_t i = 0; i < 6; i++) {
		struct store_kv kv;
		if (exists(&e, gone[i]))
			CHECK_FAIL("%s is still there", gone[i]);
		KV(&e, moved[i], &kv);
		if (kv.mod_revision != rev)
			CHECK_FAIL("%s at %lld, not %lld", moved[i], (long long)kv.mod_revision,
				   (long long)rev);
	}
	CHECK_VALUE(&e, "/archive/p2/README", "read me first");
	CHECK_VALUE(&e, "/archive/p2/src/lib.c", "int lib;");
	CHECK_VALUE(&e, "/archive/p2/src/deep/x.h", "#define X 1\n");
	KV(&e, "/archive/p2/src/lib.c", &lib);
	CHECK_EQ(lib.meta.type, S_IFREG);
	CHECK_EQ(lib.meta.mtime_ns, lib_meta.mtime_ns);
	CHECK_EQ(lib.meta.ctime_ns, lib_meta.ctime_ns); /* what is under it is not changed */
	struct store_kv kv;
	KV(&e, "/archive/p2", &kv);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 9); /* the renamed directory itself is */
	KV(&e, "/archive/p2/src/deep", &kv);
	CHECK_EQ(kv.meta.type, S_IFDIR);
	/* the attributes moved in the same revision */
	check_xattr(&e, "/archive/p2", "user.owner", "alice");
	check_xattr(&e, "/archive/p2/src", "user.k", "v");
	check_xattr(&e, "/archive/p2/src/lib.c", "user.lang", "c11");
	CHECK(!has_xattr(&e, "/proj", "user.owner"));
	CHECK(!has_xattr(&e, "/proj/src", "user.k"));
	CHECK(!has_xattr(&e, "/proj/src/lib.c", "user.lang"));
	char k[FS_XKEY_MAX];
	size_t kl = fs__txn_xkey("/archive/p2/src/lib.c", "user.lang", k);
	CHECK_EQ(store_get(e.s, k, kl, 0, &kv), 0);
	CHECK_EQ(kv.mod_revision, rev);
	/* the siblings are untouched */
	CHECK_VALUE(&e, "/project2", "other");
	check_xattr(&e, "/project2", "user.owner", "bob");
	CHECK_VALUE(&e, "/proj-old/file", "old");
	check_xattr(&e, "/proj-old/file", "user.z", "zz");
	KV(&e, "/proj-old/file", &kv);
	CHECK_LT(kv.mod_revision, rev);
	/* both parents were touched */
	KV(&e, "/archive", &kv);
	CHECK_EQ(kv.mod_revision, rev);
	store_close(e.s);
}

CHECK_TEST(rename_fails_when_a_moved_key_changed_since_seen)
{
	struct env e;
	env_open(&e);
	make(&e, "/m", S_IFDIR, NULL, T0);
	make(&e, "/m/f", S_IFREG, "v1", T0);
	/* a write under the directory changes no key but the file's */
	struct fs_txn *tb = build_rename(&e, "/m", "/n", T0 + 1);
	CHECK(apply(&e, build_write(&e, "/m/f", "v2, changed", T0 + 2)));
	int64_t rev = store_rev(e.s);
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/m/f", "v2, changed");
	CHECK(!exists(&e, "/n"));
	CHECK(!exists(&e, "/n/f"));
	struct store_kv kv;
	KV(&e, "/m", &kv);
	CHECK_LE(kv.mod_revision, rev);
	/* the source file written meanwhile */
	tb = build_rename(&e, "/m/f", "/m/g", T0 + 3);
	CHECK(apply(&e, build_write(&e, "/m/f", "v3", T0 + 4)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/m/f", "v3");
	CHECK(!exists(&e, "/m/g"));
	/* the target made meanwhile */
	tb = build_rename(&e, "/m/f", "/m/g", T0 + 5);
	make(&e, "/m/g", S_IFREG, "g, made meanwhile", T0 + 6);
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/m/f", "v3");
	CHECK_VALUE(&e, "/m/g", "g, made meanwhile");
	/* the target's directory removed meanwhile */
	make(&e, "/t", S_IFDIR, NULL, T0);
	tb = build_rename(&e, "/m/f", "/t/f", T0 + 7);
	CHECK(apply(&e, build_remove(&e, "/t", 1)));
	CHECK(!apply(&e, tb));
	CHECK(!exists(&e, "/t"));
	CHECK_VALUE(&e, "/m/f", "v3");
	store_close(e.s);
}

/* ---- setattr --------------------------------------------------------------------------------- */

static int setattr(struct env *e, const char *path, const struct stat *a, int to_set,
		   const struct fs_txn_content *buffered, int64_t now)
{
	struct fs_txn *tb = txn();
	int rc = fs__txn_setattr(tb, &e->v, path, a, to_set, buffered, 1024, now);
	if (rc)
		return build_error(rc, tb);
	return apply(e, tb) ? 0 : -EAGAIN;
}

CHECK_TEST(setattr_changes_metadata_and_size)
{
	struct env e;
	env_open(&e);
	make(&e, "/s", S_IFREG, "hello world", T0);
	struct stat a = {.st_mode = S_IFREG | 04711, .st_uid = 42, .st_gid = 43};
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID,
			 NULL, T0 + 1), 0);
	struct store_kv kv;
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.meta.type, S_IFREG);
	CHECK_EQ(kv.meta.mode, 04711);
	CHECK_EQ(kv.meta.uid, 42);
	CHECK_EQ(kv.meta.gid, 43);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 1);
	CHECK_EQ(kv.meta.mtime_ns, T0);
	CHECK_VALUE(&e, "/s", "hello world");

	a = (struct stat){.st_size = 5};
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_SIZE, NULL, T0 + 2), 0);
	CHECK_VALUE(&e, "/s", "hello");
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 2);
	a.st_size = 8;
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_SIZE, NULL, T0 + 3), 0);
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.value_len, 8);
	CHECK_MEM_EQ(kv.value, "hello\0\0\0", 8);

	a.st_atim = (struct timespec){.tv_sec = 1000, .tv_nsec = 1};
	a.st_mtim = (struct timespec){.tv_sec = 2000, .tv_nsec = 2};
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME, NULL, T0 + 4), 0);
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.meta.atime_ns, INT64_C(1000000000001));
	CHECK_EQ(kv.meta.mtime_ns, INT64_C(2000000000002));
	CHECK_EQ(kv.meta.ctime_ns, T0 + 4);
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW, NULL,
			 T0 + 5), 0);
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.meta.atime_ns, T0 + 5);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 5);

	/* through an open file: its buffered content goes along */
	struct fs_txn_content buf = {"buffered, not yet committed", 27};
	a.st_mode = 0600;
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_MODE, &buf, T0 + 6), 0);
	CHECK_VALUE(&e, "/s", "buffered, not yet committed");
	KV(&e, "/s", &kv);
	CHECK_EQ(kv.meta.mode, 0600);

	a.st_size = 1025;
	CHECK_EQ(setattr(&e, "/s", &a, FUSE_SET_ATTR_SIZE, NULL, T0), -EFBIG);
	make(&e, "/dir", S_IFDIR, NULL, T0);
	a.st_size = 0;
	CHECK_EQ(setattr(&e, "/dir", &a, FUSE_SET_ATTR_SIZE, NULL, T0), -EISDIR);
	CHECK_EQ(setattr(&e, "/none", &a, FUSE_SET_ATTR_MODE, NULL, T0), -ENOENT);
	store_close(e.s);
}

CHECK_TEST(setattr_fails_when_the_file_changed_since_seen)
{
	struct env e;
	env_open(&e);
	make(&e, "/s", S_IFREG, "original", T0);
	struct stat a = {.st_size = 3};
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_setattr(tb, &e.v, "/s", &a, FUSE_SET_ATTR_SIZE, NULL, 1024, T0 + 1), 0);
	CHECK(apply(&e, build_write(&e, "/s", "written meanwhile", T0 + 2)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/s", "written meanwhile");
	store_close(e.s);
}

/* A file created on this member and not committed yet (ops.c's pending creates). */
static int pending_one(void *arg, const char *path, struct store_kv *kv)
{
	static const struct store_meta m = {.type = S_IFREG, .mode = 0640, .uid = 7, .gid = 7,
					    .atime_ns = T0, .mtime_ns = T0, .ctime_ns = T0};
	if (strcmp(path, arg) != 0)
		return -ENOENT;
	*kv = (struct store_kv){.key = (const unsigned char *)path, .key_len = strlen(path),
				.meta = m};
	return 0;
}

CHECK_TEST(setattr_of_a_file_created_here_creates_it)
{
	struct env e;
	env_open(&e);
	make(&e, "/p", S_IFDIR, NULL, T0);
	e.v.pending = pending_one;
	e.v.arg = (void *)"/p/new";
	struct stat a = {.st_mode = 0604};
	struct fs_txn_content buf = {"pending content", 15};
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_setattr(tb, &e.v, "/p/new", &a, FUSE_SET_ATTR_MODE, &buf, 1024, T0 + 1), 0);
	CHECK_EQ(tb->n_op, 2); /* the file and its directory's touch */
	CHECK(apply(&e, tb));
	CHECK_VALUE(&e, "/p/new", "pending content");
	struct store_kv kv;
	KV(&e, "/p/new", &kv);
	CHECK_EQ(kv.meta.mode, 0604);
	CHECK_EQ(kv.meta.uid, 7);
	KV(&e, "/p", &kv);
	CHECK_EQ(kv.mod_revision, store_rev(e.s));
	store_close(e.s);
}

/* ---- extended attributes and leases ---------------------------------------------------------- */

CHECK_TEST(xattr_keys_are_outside_the_path_space)
{
	struct env e;
	env_open(&e);
	make(&e, "/x", S_IFREG, "file", T0);
	CHECK(apply(&e, build_xattr(&e, "/x", "user.color", "green", 0)));
	char k[FS_XKEY_MAX];
	size_t kl = fs__txn_xkey("/x", "user.color", k);
	CHECK_EQ(kl, 2 + 2 + 1 + 10);
	CHECK_MEM_EQ(k, "\x01x/x\0user.color", kl);
	check_xattr(&e, "/x", "user.color", "green");
	/* a listing of every path shows the file alone */
	unsigned char end[2];
	size_t el = store_prefix_end("/", 1, end);
	struct store_range_req rq = {.key = "/", .key_len = 1, .end = end, .end_len = el};
	struct store_range_result res;
	CHECK_EQ(store_range(e.s, &rq, &res), 0);
	size_t n = res.n;
	store_range_result_free(&res);
	CHECK_EQ(n, 1);
	CHECK_VALUE(&e, "/x", "file");
	store_close(e.s);
}

CHECK_TEST(xattr_create_replace_and_remove_guards)
{
	struct env e;
	env_open(&e);
	make(&e, "/x", S_IFREG, "file", T0);
	CHECK(!apply(&e, build_xattr(&e, "/x", "user.a", "new", XATTR_REPLACE))); /* none yet */
	CHECK(!has_xattr(&e, "/x", "user.a"));
	CHECK(apply(&e, build_xattr(&e, "/x", "user.a", "first", XATTR_CREATE)));
	CHECK(!apply(&e, build_xattr(&e, "/x", "user.a", "second", XATTR_CREATE)));
	check_xattr(&e, "/x", "user.a", "first");
	CHECK(apply(&e, build_xattr(&e, "/x", "user.a", "a much longer replacement",
				    XATTR_REPLACE)));
	check_xattr(&e, "/x", "user.a", "a much longer replacement");
	CHECK(apply(&e, build_xattr(&e, "/x", "user.a", "", 0))); /* empty values are values */
	check_xattr(&e, "/x", "user.a", "");
	CHECK(apply(&e, build_xattr(&e, "/x", "user.a", NULL, 0)));
	CHECK(!has_xattr(&e, "/x", "user.a"));
	CHECK(!apply(&e, build_xattr(&e, "/x", "user.a", NULL, 0))); /* ENODATA */
	/* the file removed meanwhile: no attribute is left behind without it */
	struct fs_txn *tb = build_xattr(&e, "/x", "user.b", "orphan", 0);
	CHECK(apply(&e, build_remove(&e, "/x", 0)));
	CHECK(!apply(&e, tb));
	CHECK(!has_xattr(&e, "/x", "user.b"));
	/* the root has attributes of its own, with no key to compare */
	tb = build_xattr(&e, "/", "user.r", "root's", 0);
	CHECK_EQ(tb->n_cmp, 0);
	CHECK(apply(&e, tb));
	check_xattr(&e, "/", "user.r", "root's");
	store_close(e.s);
}

CHECK_TEST(lease_attach_binds_the_file_and_its_attributes)
{
	struct env e;
	env_open(&e);
	make(&e, "/svc", S_IFREG, "10.0.0.7:443", T0);
	make(&e, "/dir", S_IFDIR, NULL, T0);
	CHECK(apply(&e, build_xattr(&e, "/svc", "user.port", "443", 0)));
	CHECK(apply(&e, build_xattr(&e, "/svc", "user.proto", "https", 0)));
	grant(&e, 9);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_lease(tb, &e.v, "/svc", 9), 0);
	CHECK_EQ(tb->n_op, 3);
	CHECK(apply(&e, tb));
	struct store_kv kv;
	KV(&e, "/svc", &kv);
	CHECK_EQ(kv.lease, 9);
	CHECK_VALUE(&e, "/svc", "10.0.0.7:443"); /* values kept */
	char k[FS_XKEY_MAX];
	size_t kl = fs__txn_xkey("/svc", "user.proto", k);
	CHECK_EQ(store_get(e.s, k, kl, 0, &kv), 0);
	CHECK_EQ(kv.lease, 9);
	check_xattr(&e, "/svc", "user.proto", "https");
	/* an attribute set later goes on the file's lease too */
	CHECK(apply(&e, build_xattr(&e, "/svc", "user.late", "later", 0)));
	kl = fs__txn_xkey("/svc", "user.late", k);
	CHECK_EQ(store_get(e.s, k, kl, 0, &kv), 0);
	CHECK_EQ(kv.lease, 9);
	/* the revoke takes them all in one revision */
	revoke_lease(&e, 9);
	CHECK(!exists(&e, "/svc"));
	CHECK(!has_xattr(&e, "/svc", "user.port"));
	CHECK(!has_xattr(&e, "/svc", "user.proto"));
	CHECK(!has_xattr(&e, "/svc", "user.late"));
	CHECK(exists(&e, "/dir"));

	tb = txn();
	CHECK_EQ(build_error(fs__txn_lease(tb, &e.v, "/dir", 9), tb), -EPERM);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_lease(tb, &e.v, "/", 9), tb), -EPERM);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_lease(tb, &e.v, "/svc", 9), tb), -ENOENT);
	store_close(e.s);
}

/* ---- exchange (renameat2 RENAME_EXCHANGE) ----------------------------------------------------- */

static struct fs_txn *build_exchange(struct env *e, const char *a, const char *b, int64_t now)
{
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_rename(tb, &e->v, a, b, RENAME_EXCHANGE, now), 0);
	return tb;
}

/* key is a new generation made at rev (version 1). */
static void check_made_at(struct env *e, const char *key, int64_t rev)
{
	struct store_kv kv;
	KV(e, key, &kv);
	if (kv.mod_revision != rev || kv.create_revision != rev || kv.version != 1)
		CHECK_FAIL("%s: mod %lld, create %lld, version %lld; not made at %lld", key,
			   (long long)kv.mod_revision, (long long)kv.create_revision,
			   (long long)kv.version, (long long)rev);
}

CHECK_TEST(exchange_of_two_files_swaps_content_metadata_attributes_and_lease)
{
	struct env e;
	env_open(&e);
	make(&e, "/d", S_IFDIR, NULL, T0);
	struct fs_txn *tb = txn();
	struct store_meta ma = meta(S_IFREG, 0600, 1001, 101, T0 + 1);
	CHECK_EQ(fs__txn_create(tb, &e.v, "/a", &ma, "short", 5, T0 + 1), 0);
	CHECK(apply(&e, tb));
	tb = txn();
	struct store_meta mb = meta(S_IFREG, 0755, 1002, 102, T0 + 2);
	const char *long_b = "a much longer content, of another length";
	CHECK_EQ(fs__txn_create(tb, &e.v, "/d/b", &mb, long_b, strlen(long_b), T0 + 2), 0);
	CHECK(apply(&e, tb));
	CHECK(apply(&e, build_xattr(&e, "/a", "user.tag", "from a", 0)));
	CHECK(apply(&e, build_xattr(&e, "/d/b", "user.tag", "from b", 0)));
	CHECK(apply(&e, build_xattr(&e, "/d/b", "user.only_b", "b alone", 0)));
	grant(&e, 7);
	tb = txn();
	CHECK_EQ(fs__txn_lease(tb, &e.v, "/a", 7), 0);
	CHECK(apply(&e, tb));
	int64_t before = store_rev(e.s);

	tb = build_exchange(&e, "/a", "/d/b", T0 + 9);
	CHECK_EQ(tb->n_cmp, 3); /* both names; /d's touch (the root is nobody's key) */
	CHECK(apply(&e, tb));
	int64_t rev = store_rev(e.s);
	CHECK_EQ(rev, before + 1);
	CHECK_VALUE(&e, "/a", long_b);
	CHECK_VALUE(&e, "/d/b", "short");
	struct store_kv kv;
	KV(&e, "/a", &kv);
	CHECK_EQ(kv.meta.mode, 0755);
	CHECK_EQ(kv.meta.uid, 1002);
	CHECK_EQ(kv.meta.gid, 102);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 2);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 9); /* each object's ctime is the exchange's */
	CHECK_EQ(kv.lease, 0);
	KV(&e, "/d/b", &kv);
	CHECK_EQ(kv.meta.mode, 0600);
	CHECK_EQ(kv.meta.uid, 1001);
	CHECK_EQ(kv.meta.mtime_ns, T0 + 1);
	CHECK_EQ(kv.meta.ctime_ns, T0 + 9);
	CHECK_EQ(kv.lease, 7);
	check_made_at(&e, "/a", rev);
	check_made_at(&e, "/d/b", rev);
	check_xattr(&e, "/a", "user.tag", "from b");
	check_xattr(&e, "/a", "user.only_b", "b alone");
	check_xattr(&e, "/d/b", "user.tag", "from a");
	CHECK(!has_xattr(&e, "/d/b", "user.only_b"));
	KV(&e, "/d", &kv);
	CHECK_EQ(kv.mod_revision, rev); /* the parent that is a key was touched */
	CHECK_EQ(kv.meta.mtime_ns, T0 + 9);
	/* the lease went with its file: revoking it deletes /d/b and its attributes, not /a */
	revoke_lease(&e, 7);
	CHECK(!exists(&e, "/d/b"));
	CHECK(!has_xattr(&e, "/d/b", "user.tag"));
	CHECK_VALUE(&e, "/a", long_b);
	check_xattr(&e, "/a", "user.tag", "from b");
	store_close(e.s);
}

CHECK_TEST(exchange_of_two_directories_swaps_their_trees_in_one_revision)
{
	struct env e;
	env_open(&e);
	static const char *const dirs[] = {"/x", "/x/s", "/p", "/p/y", "/p/y/t"};
	for (size_t i = 0; i < 5; i++)
		make(&e, dirs[i], S_IFDIR, NULL, T0);
	make(&e, "/x/f", S_IFREG, "x's f", T0);
	make(&e, "/x/s/g", S_IFREG, "x's g", T0);
	make(&e, "/p/y/f", S_IFREG, "y's f, longer", T0);
	make(&e, "/p/y/t/h", S_IFREG, "y's h", T0);
	make(&e, "/xy", S_IFREG, "a neighbour", T0);
	CHECK(apply(&e, build_xattr(&e, "/x", "user.k", "x itself", 0)));
	CHECK(apply(&e, build_xattr(&e, "/x/s/g", "user.k", "x's g", 0)));
	CHECK(apply(&e, build_xattr(&e, "/p/y/t", "user.k", "y's t", 0)));
	int64_t before = store_rev(e.s);
	CHECK(apply(&e, build_exchange(&e, "/x", "/p/y", T0 + 9)));
	int64_t rev = store_rev(e.s);
	CHECK_EQ(rev, before + 1);
	/* every name of each tree is under the other name now, made at the exchange */
	static const char *const now[] = {"/x", "/x/f", "/x/t", "/x/t/h", "/p/y", "/p/y/f",
					  "/p/y/s", "/p/y/s/g"};
	for (size_t i = 0; i < 8; i++)
		check_made_at(&e, now[i], rev);
	CHECK_VALUE(&e, "/x/f", "y's f, longer");
	CHECK_VALUE(&e, "/x/t/h", "y's h");
	CHECK_VALUE(&e, "/p/y/f", "x's f");
	CHECK_VALUE(&e, "/p/y/s/g", "x's g");
	CHECK(!exists(&e, "/x/s"));
	CHECK(!exists(&e, "/x/s/g"));
	CHECK(!exists(&e, "/p/y/t"));
	CHECK(!exists(&e, "/p/y/t/h"));
	struct store_kv kv;
	KV(&e, "/x/t", &kv);
	CHECK_EQ(kv.meta.type, S_IFDIR);
	KV(&e, "/x/f", &kv);
	CHECK_EQ(kv.meta.ctime_ns, T0); /* what is under them is not changed */
	check_xattr(&e, "/p/y", "user.k", "x itself");
	CHECK(!has_xattr(&e, "/x", "user.k"));
	check_xattr(&e, "/p/y/s/g", "user.k", "x's g");
	check_xattr(&e, "/x/t", "user.k", "y's t");
	CHECK(!has_xattr(&e, "/x/s/g", "user.k"));
	CHECK_VALUE(&e, "/xy", "a neighbour");
	KV(&e, "/xy", &kv);
	CHECK_LT(kv.mod_revision, rev);
	KV(&e, "/p", &kv);
	CHECK_EQ(kv.mod_revision, rev);
	/* and back: the same tree as before, one revision later */
	CHECK(apply(&e, build_exchange(&e, "/p/y", "/x", T0 + 10)));
	CHECK_VALUE(&e, "/x/f", "x's f");
	CHECK_VALUE(&e, "/x/s/g", "x's g");
	CHECK_VALUE(&e, "/p/y/t/h", "y's h");
	check_xattr(&e, "/x", "user.k", "x itself");
	store_close(e.s);
}

CHECK_TEST(exchange_of_a_file_with_a_directory)
{
	struct env e;
	env_open(&e);
	make(&e, "/dir", S_IFDIR, NULL, T0);
	make(&e, "/dir/in", S_IFREG, "inside", T0);
	make(&e, "/dir/sub", S_IFDIR, NULL, T0);
	make(&e, "/file", S_IFREG, "a file", T0);
	CHECK(apply(&e, build_exchange(&e, "/file", "/dir", T0 + 3)));
	struct store_kv kv;
	KV(&e, "/file", &kv);
	CHECK_EQ(kv.meta.type, S_IFDIR);
	KV(&e, "/dir", &kv);
	CHECK_EQ(kv.meta.type, S_IFREG);
	CHECK_VALUE(&e, "/dir", "a file");
	CHECK_VALUE(&e, "/file/in", "inside");
	KV(&e, "/file/sub", &kv);
	CHECK_EQ(kv.meta.type, S_IFDIR);
	CHECK(!exists(&e, "/dir/in"));
	CHECK(!exists(&e, "/dir/sub"));
	store_close(e.s);
}

CHECK_TEST(exchange_fails_cleanly_when_either_side_changed)
{
	struct env e;
	env_open(&e);
	make(&e, "/a", S_IFREG, "a1", T0);
	make(&e, "/b", S_IFREG, "b1", T0);
	make(&e, "/d", S_IFDIR, NULL, T0);
	make(&e, "/d/sub", S_IFDIR, NULL, T0);
	make(&e, "/d/sub/deep", S_IFREG, "deep", T0);
	/* a write to either file between building and applying */
	struct fs_txn *tb = build_exchange(&e, "/a", "/b", T0 + 1);
	CHECK(apply(&e, build_write(&e, "/b", "b2, written meanwhile", T0 + 2)));
	int64_t rev = store_rev(e.s);
	CHECK(!apply(&e, tb));
	CHECK_EQ(store_rev(e.s), rev);
	CHECK_VALUE(&e, "/a", "a1");
	CHECK_VALUE(&e, "/b", "b2, written meanwhile");
	tb = build_exchange(&e, "/a", "/b", T0 + 3);
	CHECK(apply(&e, build_write(&e, "/a", "a2", T0 + 4)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/a", "a2");
	/* a write deep in a directory's tree */
	tb = build_exchange(&e, "/a", "/d", T0 + 5);
	CHECK(apply(&e, build_write(&e, "/d/sub/deep", "deeper", T0 + 6)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/a", "a2");
	CHECK_VALUE(&e, "/d/sub/deep", "deeper");
	/* the other side renamed away meanwhile */
	tb = build_exchange(&e, "/a", "/b", T0 + 7);
	CHECK(apply(&e, build_rename(&e, "/b", "/c", T0 + 8)));
	CHECK(!apply(&e, tb));
	CHECK(!exists(&e, "/b"));
	CHECK_VALUE(&e, "/c", "b2, written meanwhile");
	CHECK_VALUE(&e, "/a", "a2");
	/* a create built before an exchange of its directory applies after it: the directory's
	   name is a new generation, so the create's touch of it fails and changes nothing */
	make(&e, "/e", S_IFDIR, NULL, T0);
	struct fs_txn *create = build_create(&e, "/d/new", S_IFREG, "n", 1000, T0 + 9);
	CHECK(apply(&e, build_exchange(&e, "/d", "/e", T0 + 10)));
	rev = store_rev(e.s);
	CHECK(!apply(&e, create));
	CHECK_EQ(store_rev(e.s), rev);
	CHECK(!exists(&e, "/d/new"));
	CHECK(exists(&e, "/e/sub/deep"));
	store_close(e.s);
}

CHECK_TEST(exchange_of_a_tree_too_deep_for_the_other_name_is_refused)
{
	struct env e;
	env_open(&e);
	make(&e, "/d", S_IFDIR, NULL, T0);
	make(&e, "/d/sub", S_IFDIR, NULL, T0);
	put_deep(&e, "/d/sub");
	char longer[300];
	long_name(longer);
	make(&e, longer, S_IFREG, "long name", T0);
	/* a key of either tree would grow past the path limit under the other name */
	struct fs_txn *tb = txn();
	CHECK_EQ(build_error(fs__txn_rename(tb, &e.v, "/d", longer, RENAME_EXCHANGE, T0), tb),
		 -ENAMETOOLONG);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_rename(tb, &e.v, longer, "/d", RENAME_EXCHANGE, T0), tb),
		 -ENAMETOOLONG);
	store_close(e.s);
}

/* ---- size ------------------------------------------------------------------------------------ */

/* A regular file put straight into the store (faster than a txn each, for big trees). */
static void put_straight(struct env *e, const char *path, const char *value)
{
	struct store_put p = {.key = path, .key_len = strlen(path), .value = value,
			      .value_len = strlen(value), .meta = meta(S_IFREG, 0644, 0, 0, T0)};
	CHECK_EQ(store_put(e->s, &p, NULL), 0);
}

/* Encodes tb (freed), CHECKs that the request is under 1 KiB, applies it and that it held. */
static void apply_small(struct env *e, struct fs_txn *tb)
{
	uint8_t *buf;
	size_t len;
	CHECK_EQ(fs__txn_encode(tb, T0, &buf, &len), 0);
	fs__txn_free(tb);
	CHECK(len < 1024);
	CHECK(apply_bytes(e, buf, len).succeeded);
}

CHECK_TEST(a_rename_of_any_size_is_one_small_request)
{
	struct env e;
	env_open(&e);
	make(&e, "/big", S_IFDIR, NULL, T0);
	make(&e, "/big/sub", S_IFDIR, NULL, T0);
	char path[64], value[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(path, sizeof path, "/big/%sf%05d", i % 2 ? "sub/" : "", i);
		snprintf(value, sizeof value, "content %d%.*s", i, i % 17, "................");
		put_straight(&e, path, value);
	}
	int64_t before = store_rev(e.s);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_rename(tb, &e.v, "/big", "/moved", 0, T0 + 1), 0);
	apply_small(&e, tb); /* not the tree: a move of its prefixes */
	CHECK_EQ(store_rev(e.s), before + 1);
	for (int i = 0; i < 20000; i += 1999) {
		snprintf(path, sizeof path, "/moved/%sf%05d", i % 2 ? "sub/" : "", i);
		snprintf(value, sizeof value, "content %d%.*s", i, i % 17, "................");
		CHECK_VALUE(&e, path, value);
		snprintf(path, sizeof path, "/big/%sf%05d", i % 2 ? "sub/" : "", i);
		CHECK(!exists(&e, path));
	}
	CHECK(!exists(&e, "/big"));
	store_close(e.s);
}

CHECK_TEST(an_exchange_of_any_size_is_one_small_request)
{
	struct env e;
	env_open(&e);
	make(&e, "/one", S_IFDIR, NULL, T0);
	make(&e, "/two", S_IFDIR, NULL, T0);
	char path[64], value[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(path, sizeof path, "/%s/f%05d", i % 2 ? "one" : "two", i);
		snprintf(value, sizeof value, "content %d", i);
		put_straight(&e, path, value);
	}
	int64_t before = store_rev(e.s);
	struct fs_txn *tb = txn();
	CHECK_EQ(fs__txn_rename(tb, &e.v, "/one", "/two", RENAME_EXCHANGE, T0 + 1), 0);
	apply_small(&e, tb); /* not the trees: a swap of their prefixes */
	CHECK_EQ(store_rev(e.s), before + 1);
	for (int i = 0; i < 20000; i += 1999) {
		snprintf(path, sizeof path, "/%s/f%05d", i % 2 ? "two" : "one", i);
		snprintf(value, sizeof value, "content %d", i);
		CHECK_VALUE(&e, path, value);
		snprintf(path, sizeof path, "/%s/f%05d", i % 2 ? "one" : "two", i);
		CHECK(!exists(&e, path));
	}
	store_close(e.s);
}

CHECK_TEST(a_rename_deep_in_whose_tree_a_file_changed_fails)
{
	struct env e;
	env_open(&e);
	make(&e, "/t", S_IFDIR, NULL, T0);
	make(&e, "/t/a", S_IFDIR, NULL, T0);
	make(&e, "/t/a/f", S_IFREG, "first", T0);
	struct fs_txn *tb = build_rename(&e, "/t", "/u", T0 + 1);
	/* a write deep in the tree after the rename was built (on another member) */
	CHECK(apply(&e, build_write(&e, "/t/a/f", "second, longer", T0 + 2)));
	CHECK(!apply(&e, tb));
	CHECK_VALUE(&e, "/t/a/f", "second, longer");
	CHECK(!exists(&e, "/u"));
	/* a key of the tree would grow past the path limit: refused before anything is proposed */
	put_deep(&e, "/t/a");
	char longer[300];
	long_name(longer);
	tb = txn();
	CHECK_EQ(build_error(fs__txn_rename(tb, &e.v, "/t", longer, 0, T0), tb), -ENAMETOOLONG);
	store_close(e.s);
}

CHECK_SUITE("fs-txn", CHECK_CASE(create_makes_the_name_and_touches_its_parent),
	    CHECK_CASE(create_of_an_existing_name_fails),
	    CHECK_CASE(create_in_a_directory_removed_meanwhile_fails),
	    CHECK_CASE(commit_puts_content_with_the_file_metadata),
	    CHECK_CASE(commit_keeps_the_lease),
	    CHECK_CASE(commit_by_another_than_root_clears_setuid_and_setgid),
	    CHECK_CASE(commit_of_a_file_created_here_creates_it),
	    CHECK_CASE(commit_whose_compare_fails_leaves_the_old_value),
	    CHECK_CASE(unlink_removes_the_file_and_its_attributes),
	    CHECK_CASE(rmdir_fails_when_a_child_was_created_meanwhile),
	    CHECK_CASE(rename_moves_a_file_with_its_attributes),
	    CHECK_CASE(rename_and_exchange_refuse_what_renameat2_refuses),
	    CHECK_CASE(rename_of_a_directory_moves_everything_in_one_revision),
	    CHECK_CASE(rename_fails_when_a_moved_key_changed_since_seen),
	    CHECK_CASE(exchange_of_two_files_swaps_content_metadata_attributes_and_lease),
	    CHECK_CASE(exchange_of_two_directories_swaps_their_trees_in_one_revision),
	    CHECK_CASE(exchange_of_a_file_with_a_directory),
	    CHECK_CASE(exchange_fails_cleanly_when_either_side_changed),
	    CHECK_CASE(exchange_of_a_tree_too_deep_for_the_other_name_is_refused),
	    CHECK_CASE(setattr_changes_metadata_and_size),
	    CHECK_CASE(setattr_fails_when_the_file_changed_since_seen),
	    CHECK_CASE(setattr_of_a_file_created_here_creates_it),
	    CHECK_CASE(xattr_keys_are_outside_the_path_space),
	    CHECK_CASE(xattr_create_replace_and_remove_guards),
	    CHECK_CASE(lease_attach_binds_the_file_and_its_attributes),
	    CHECK_CASE(a_rename_of_any_size_is_one_small_request),
	    CHECK_CASE(an_exchange_of_any_size_is_one_small_request),
	    CHECK_CASE(a_rename_deep_in_whose_tree_a_file_changed_fails))
