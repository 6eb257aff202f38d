/*
 * txn.c: the transaction each change of the file system proposes (fuse/face.h, "Consistency
 * across members"), built from the store as this member has it and from plain inputs: paths,
 * metadata, content, the time. No FUSE request and no struct fs_ops is in sight, so
 * tests/fs/test_txn.c applies these very transactions to a store without mounting; the handlers
 * of ops.c call one builder per operation, encode what it built and propose it. The compares here
 * are what makes a create lose to a concurrent one, an rmdir fail when a child was made meanwhile
 * and a rename fail when a key it moves changed since it was seen.
 */
#include "fuse/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

static int is_root(const char *path)
{
	return path[0] == '/' && path[1] == '\0';
}

/* ---- the builder ----------------------------------------------------------------------------- */

struct fs_txn *fs__txn_new(void)
{
	return calloc(1, sizeof(struct fs_txn));
}

void fs__txn_free(struct fs_txn *tb)
{
	if (!tb)
		return;
	for (size_t i = 0; i < tb->n_kept; i++)
		free(tb->kept[i]);
	free(tb);
}

/* size zeroed bytes that tb owns until fs__txn_free; NULL when out of memory. */
static void *tb_alloc(struct fs_txn *tb, size_t size)
{
	if (tb->n_kept == FS_TXN_KEPT)
		return NULL;
	void *p = calloc(1, size);
	if (p)
		tb->kept[tb->n_kept++] = p;
	return p;
}

/* A copy of s that tb owns, for a key made on the builder's stack; NULL when out of memory. */
static const char *tb_keep(struct fs_txn *tb, const char *s)
{
	size_t n = strlen(s) + 1;
	char *c = tb_alloc(tb, n);
	if (c)
		memcpy(c, s, n);
	return c;
}

static void bytes_of(ProtobufCBinaryData *b, protobuf_c_boolean *has, const void *p, size_t n)
{
	b->data = (uint8_t *)p;
	b->len = n;
	*has = 1;
}

static Rpc__Compare *tb_cmp_n(struct fs_txn *tb, Rpc__Compare__Target target,
			      Rpc__Compare__Result result, const void *key, size_t key_len,
			      int64_t number)
{
	if (tb->n_cmp == FS_TXN_MAX) {
		tb->overflow = 1;
		return NULL;
	}
	Rpc__Compare *c = &tb->cmp[tb->n_cmp];
	rpc__compare__init(c);
	c->has_target = c->has_result = c->has_number = 1;
	c->target = target;
	c->result = result;
	c->number = number;
	bytes_of(&c->key, &c->has_key, key, key_len);
	tb->cmpp[tb->n_cmp++] = c;
	return c;
}

static Rpc__Compare *tb_cmp(struct fs_txn *tb, Rpc__Compare__Target target,
			    Rpc__Compare__Result result, const char *key, int64_t number)
{
	return tb_cmp_n(tb, target, result, key, strlen(key), number);
}

static Rpc__Put *tb_put_n(struct fs_txn *tb, const void *key, size_t key_len, const void *value,
			  size_t len, const struct store_meta *m, int64_t lease)
{
	if (tb->n_op == FS_TXN_MAX) {
		tb->overflow = 1;
		return NULL;
	}
	size_t i = tb->n_op;
	Rpc__Put *p = &tb->put[i];
	Rpc__Meta *mm = &tb->meta[i];
	rpc__put__init(p);
	rpc__meta__init(mm);
	bytes_of(&p->key, &p->has_key, key, key_len);
	bytes_of(&p->value, &p->has_value, value, len);
	mm->has_type = mm->has_mode = mm->has_uid = mm->has_gid = 1;
	mm->has_atime_ns = mm->has_mtime_ns = mm->has_ctime_ns = 1;
	mm->type = m->type;
	mm->mode = m->mode;
	mm->uid = m->uid;
	mm->gid = m->gid;
	mm->atime_ns = m->atime_ns;
	mm->mtime_ns = m->mtime_ns;
	mm->ctime_ns = m->ctime_ns;
	p->meta = mm;
	if (lease) {
		p->has_lease = 1;
		p->lease = lease;
	}
	rpc__op__init(&tb->op[i]);
	tb->op[i].op_case = RPC__OP__OP_PUT;
	tb->op[i].put = p;
	tb->opp[i] = &tb->op[i];
	tb->n_op++;
	return p;
}

static Rpc__Put *tb_put(struct fs_txn *tb, const char *key, const void *value, size_t len,
			const struct store_meta *m, int64_t lease)
{
	return tb_put_n(tb, key, strlen(key), value, len, m, lease);
}

static void tb_delete_n(struct fs_txn *tb, const void *key, size_t key_len, const void *end,
			size_t end_len)
{
	if (tb->n_op == FS_TXN_MAX) {
		tb->overflow = 1;
		return;
	}
	size_t i = tb->n_op;
	Rpc__DeleteRange *d = &tb->del[i];
	rpc__delete_range__init(d);
	bytes_of(&d->key, &d->has_key, key, key_len);
	if (end)
		bytes_of(&d->range_end, &d->has_range_end, end, end_len);
	rpc__op__init(&tb->op[i]);
	tb->op[i].op_case = RPC__OP__OP_DELETE_RANGE;
	tb->op[i].delete_range = d;
	tb->opp[i] = &tb->op[i];
	tb->n_op++;
}

static void tb_delete(struct fs_txn *tb, const char *key, const void *end, size_t end_len)
{
	tb_delete_n(tb, key, strlen(key), end, end_len);
}

/* The request tb makes, in t and r (which point into tb). */
static void request_of(struct fs_txn *tb, int64_t time_ns, Rpc__Txn *t, Rpc__Request *r)
{
	rpc__txn__init(t);
	t->n_compare = tb->n_cmp;
	t->compare = tb->cmpp;
	t->n_success = tb->n_op;
	t->success = tb->opp;
	rpc__request__init(r);
	r->has_time_ns = 1;
	r->time_ns = time_ns;
	r->op_case = RPC__REQUEST__OP_TXN;
	r->txn = t;
}

int fs__txn_encode(struct fs_txn *tb, int64_t time_ns, uint8_t **buf, size_t *len)
{
	if (tb->overflow)
		return -E2BIG;
	Rpc__Txn t;
	Rpc__Request r;
	request_of(tb, time_ns, &t, &r);
	*buf = fs_kv_encode(&r, len);
	return *buf ? 0 : -ENOMEM;
}

int fs__txn_propose(struct fs_txn *tb, struct fs_member *m, int64_t time_ns, fs_wait_cb cb,
		    void *arg)
{
	if (tb->overflow)
		return -E2BIG;
	Rpc__Txn t;
	Rpc__Request r;
	request_of(tb, time_ns, &t, &r);
	return fs_kv_propose(m, &r, cb, arg); /* encoded once, into the member's buffer */
}

/* ---- reading what the txn is built from ------------------------------------------------------ */

/* path as the store has it, what other members see: 0 with *kv, or -ENOENT. */
static int stored_kv(const struct fs_txn_view *v, const char *path, struct store_kv *kv)
{
	return store_get(v->store, path, strlen(path), 0, kv) == 0 ? 0 : -ENOENT;
}

/* path as this member shows it: stored, or created here and not committed yet (v->pending). */
static int view_kv(const struct fs_txn_view *v, const char *path, struct store_kv *kv)
{
	int rc = stored_kv(v, path, kv);
	if (rc == -ENOENT && v->pending)
		rc = v->pending(v->arg, path, kv);
	return rc;
}

static int any_child(void *arg, const char *name, size_t len, const struct store_kv *kv)
{
	return 1;
}

/* Whether directory dir has a child in the store. */
static int has_child(const struct fs_txn_view *v, const char *dir)
{
	return fs__ops_each_child(v->store, dir, any_child, NULL) > 0;
}

size_t fs__txn_xkey(const char *path, const char *name, char *buf)
{
	size_t pl = strlen(path), n = 2 + pl + 1;
	memcpy(buf, FS_XKEY_TAG, 2);
	memcpy(buf + 2, path, pl);
	buf[2 + pl] = '\0';
	if (name) {
		size_t nl = strlen(name);
		memcpy(buf + n, name, nl);
		n += nl;
	}
	return n;
}

/* Touches directory dir (its mtime and ctime) in the txn, so its mod revision moves; root: no-op. */
static int tb_touch_dir(struct fs_txn *tb, const struct fs_txn_view *v, const char *dir,
			int64_t now)
{
	if (is_root(dir))
		return 0;
	struct store_kv kv;
	if (view_kv(v, dir, &kv) != 0)
		return -ENOENT;
	if ((kv.meta.type & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	const char *key = tb_keep(tb, dir);
	if (!key)
		return -ENOMEM;
	struct store_meta m = kv.meta;
	m.mtime_ns = m.ctime_ns = now;
	tb_put(tb, key, NULL, 0, &m, kv.lease);
	/* it must still be the directory we saw */
	tb_cmp(tb, RPC__COMPARE__TARGET__CREATE, RPC__COMPARE__RESULT__EQUAL, key,
	       kv.create_revision);
	return 0;
}

/* ---- creating and writing -------------------------------------------------------------------- */

int fs__txn_create(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		   const struct store_meta *m, const void *value, size_t len, int64_t now)
{
	char dir[FS_PATH_MAX_BYTES + 1];
	fs__ops_parent_of(path, dir);
	tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__EQUAL, path, 0);
	tb_put(tb, path, value, len, m, 0);
	return tb_touch_dir(tb, v, dir, now);
}

int fs__txn_commit(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		   const void *content, size_t len, const struct store_meta *created, int kill_priv,
		   int64_t now)
{
	struct store_kv kv;
	char parent[FS_PATH_MAX_BYTES + 1];
	fs__ops_parent_of(path, parent);
	if (created) {
		struct store_meta m = *created;
		m.mtime_ns = m.ctime_ns = now;
		int exists = stored_kv(v, path, &kv) == 0;
		if (exists && (kv.meta.type & S_IFMT) == S_IFDIR)
			return -EISDIR;
		if (exists)
			tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, path,
			       kv.mod_revision);
		else
			tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__EQUAL, path,
			       0);
		tb_put(tb, path, content, len, &m, 0);
		return tb_touch_dir(tb, v, parent, now);
	}
	struct store_meta m = {.type = S_IFREG, .mode = 0644};
	if (view_kv(v, path, &kv) == 0)
		m = kv.meta;
	m.mtime_ns = m.ctime_ns = now;
	if (!m.atime_ns)
		m.atime_ns = now;
	if (kill_priv) { /* as the kernel's file_remove_privs: setgid only with group execute */
		m.mode &= ~(uint32_t)S_ISUID;
		if (m.mode & S_IXGRP)
			m.mode &= ~(uint32_t)S_ISGID;
	}
	if (!is_root(parent)) {
		const char *key = tb_keep(tb, parent);
		if (!key)
			return -ENOMEM;
		tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__GREATER, key, 0);
	}
	Rpc__Put *put = tb_put(tb, path, content, len, &m, 0);
	/* ignore_lease needs the key to exist: a file deleted meanwhile comes back bare */
	put->has_ignore_lease = 1;
	put->ignore_lease = stored_kv(v, path, &kv) == 0;
	return 0;
}

int fs__txn_setattr(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		    const struct stat *a, int to_set, const struct fs_txn_content *buffered,
		    size_t max_value, int64_t now)
{
	struct store_kv kv;
	int rc = view_kv(v, path, &kv);
	if (rc)
		return rc;
	struct store_meta m = kv.meta;
	size_t len = kv.value_len;
	if (to_set & FUSE_SET_ATTR_MODE)
		m.mode = a->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		m.uid = a->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		m.gid = a->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME)
		m.atime_ns = (int64_t)a->st_atim.tv_sec * 1000000000 + a->st_atim.tv_nsec;
	if (to_set & FUSE_SET_ATTR_MTIME)
		m.mtime_ns = (int64_t)a->st_mtim.tv_sec * 1000000000 + a->st_mtim.tv_nsec;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		m.atime_ns = now;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		m.mtime_ns = now;
	m.ctime_ns = now;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if ((kv.meta.type & S_IFMT) == S_IFDIR)
			rc = -EISDIR;
		else if ((size_t)a->st_size > max_value)
			rc = -EFBIG;
		len = (size_t)a->st_size;
		if (!(to_set & FUSE_SET_ATTR_MTIME))
			m.mtime_ns = now;
	}
	const uint8_t *from = kv.value;
	size_t from_len = kv.value_len;
	if (buffered) {
		from = buffered->data;
		from_len = len = buffered->len;
	}
	if (rc)
		return rc;
	uint8_t *value = tb_alloc(tb, len ? len : 1);
	if (!value)
		return -ENOMEM;
	if (from_len)
		memcpy(value, from, len < from_len ? len : from_len);
	tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, path, kv.mod_revision);
	tb_put(tb, path, value, len, &m, kv.lease);
	if (!kv.mod_revision) {
		/* a file created here, not committed: this creates it */
		char dir[FS_PATH_MAX_BYTES + 1];
		fs__ops_parent_of(path, dir);
		return tb_touch_dir(tb, v, dir, now);
	}
	return 0;
}

/* ---- removing -------------------------------------------------------------------------------- */

int fs__txn_remove(struct fs_txn *tb, const struct fs_txn_view *v, const char *path, int dir,
		   int64_t now)
{
	struct store_kv kv;
	int rc = view_kv(v, path, &kv);
	if (!rc) {
		int is_dir = (kv.meta.type & S_IFMT) == S_IFDIR;
		if (dir && !is_dir)
			rc = -ENOTDIR;
		else if (!dir && is_dir)
			rc = -EISDIR;
	}
	if (!rc && dir && has_child(v, path))
		rc = -ENOTEMPTY;
	if (rc)
		return rc;
	char *xp = tb_alloc(tb, FS_XKEY_MAX);
	unsigned char *xe = tb_alloc(tb, FS_XKEY_MAX);
	if (!xp || !xe)
		return -ENOMEM;
	char d[FS_PATH_MAX_BYTES + 1];
	fs__ops_parent_of(path, d);
	if (dir)
		tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, path,
		       kv.mod_revision);
	else
		tb_cmp(tb, RPC__COMPARE__TARGET__CREATE, RPC__COMPARE__RESULT__EQUAL, path,
		       kv.create_revision);
	tb_delete(tb, path, NULL, 0);
	size_t xl = fs__txn_xkey(path, NULL, xp);
	size_t xel = store_prefix_end(xp, xl, xe);
	tb_delete_n(tb, xp, xl, xe, xel); /* its extended attributes go with it */
	return tb_touch_dir(tb, v, d, now);
}

/* ---- rename ---------------------------------------------------------------------------------- */

/* What a rename's txn points at besides the store and its inputs. */
struct rename_keys {
	char from[FS_PATH_MAX_BYTES + 2], to[FS_PATH_MAX_BYTES + 2]; /* "SRC/", "DST/" */
	unsigned char end[FS_PATH_MAX_BYTES + 2];                     /* the range end of "SRC/" */
	char xf[FS_XKEY_MAX], xt[FS_XKEY_MAX];   /* attribute prefixes of SRC and DST */
	char xfd[FS_XKEY_MAX], xtd[FS_XKEY_MAX]; /* ... of what is under them */
	unsigned char xe[FS_XKEY_MAX];           /* a range end */
};

/* A move of every live key beginning with from[fl] to to[tl] + the rest (STORE_OP_MOVE), or with
   swap, the keys beginning with from[fl] and those with to[tl] trading places (STORE_OP_SWAP). */
static void tb_move_n(struct fs_txn *tb, const void *from, size_t fl, const void *to, size_t tl,
		      int swap)
{
	if (tb->n_op == FS_TXN_MAX) {
		tb->overflow = 1;
		return;
	}
	size_t i = tb->n_op;
	Rpc__Move *m = &tb->move[i];
	rpc__move__init(m);
	bytes_of(&m->from, &m->has_from, from, fl);
	bytes_of(&m->to, &m->has_to, to, tl);
	rpc__op__init(&tb->op[i]);
	if (swap) {
		tb->op[i].op_case = RPC__OP__OP_SWAP;
		tb->op[i].swap = m;
	} else {
		tb->op[i].op_case = RPC__OP__OP_MOVE;
		tb->op[i].move = m;
	}
	tb->opp[i] = &tb->op[i];
	tb->n_op++;
}

/* The longest key under prefix (keys only, no values read); 0 when none, -EIO. */
static long longest_under(struct store *s, const char *prefix, size_t pl, unsigned char *end)
{
	size_t el = store_prefix_end(prefix, pl, end);
	struct store_range_req rq = {.key = prefix, .key_len = pl, .end = end, .end_len = el,
				     .flags = STORE_RANGE_KEYS_ONLY};
	struct store_range_result res;
	if (store_range(s, &rq, &res) != 0)
		return -EIO;
	size_t longest = 0;
	for (size_t i = 0; i < res.n; i++)
		if (res.kvs[i].key_len > longest)
			longest = res.kvs[i].key_len;
	store_range_result_free(&res);
	return (long)longest;
}

/* Whether a lies under b (b a strict ancestor of a). */
static int under(const char *a, const char *b)
{
	size_t bl = strlen(b);
	return !strncmp(a, b, bl) && a[bl] == '/';
}

/* The checks of a rename of from (src) onto to (dst when has_dst): 0 or a negative errno. */
static int rename_check(const struct fs_txn_view *v, const char *from, const char *to,
			unsigned flags, const struct store_kv *src, int has_dst,
			const struct store_kv *dst)
{
	int src_dir = (src->meta.type & S_IFMT) == S_IFDIR;
	if (under(to, from))
		return -EINVAL; /* into itself */
	if (has_dst) {
		int dst_dir = (dst->meta.type & S_IFMT) == S_IFDIR;
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (src_dir && !dst_dir)
			return -ENOTDIR;
		if (!src_dir && dst_dir)
			return -EISDIR;
		if (dst_dir && has_child(v, to))
			return -ENOTEMPTY;
	}
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_WHITEOUT */
	return 0;
}

/*
 * Guards the tree under directory path (its prefix "PATH/", pl bytes, in prefix) against any
 * change after now, one compare over the range (end: room for its range end), and checks that
 * its keys still fit under a name of nl bytes: 0, -ENAMETOOLONG, -EIO.
 */
static int tb_guard_tree(struct fs_txn *tb, const struct fs_txn_view *v, const char *prefix,
			 size_t pl, unsigned char *end, size_t nl)
{
	long longest = nl + 1 > pl ? longest_under(v->store, prefix, pl, end) : 0;
	if (longest < 0)
		return (int)longest;
	if (longest > 0 && (size_t)longest - pl + nl + 1 > FS_PATH_MAX_BYTES)
		return -ENAMETOOLONG;
	size_t el = store_prefix_end(prefix, pl, end);
	Rpc__Compare *c = tb_cmp_n(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__LESS,
				   prefix, pl, store_rev(v->store) + 1);
	if (c)
		bytes_of(&c->range_end, &c->has_range_end, end, el);
	return 0;
}

/* What an exchange's txn points at besides the store and its inputs. */
struct exchange_keys {
	char a[FS_PATH_MAX_BYTES + 2], b[FS_PATH_MAX_BYTES + 2]; /* "A/", "B/" */
	unsigned char ea[FS_PATH_MAX_BYTES + 2], eb[FS_PATH_MAX_BYTES + 2]; /* their range ends */
	char xa[FS_XKEY_MAX], xb[FS_XKEY_MAX];   /* attribute prefixes of A and B */
	char xad[FS_XKEY_MAX], xbd[FS_XKEY_MAX]; /* ... of what is under them */
};

/*
 * RENAME_EXCHANGE of a and b (fs__txn_rename): both names are deleted and put again, each with
 * the other's object, so each becomes a new generation (a compare on its create revision, as a
 * directory's touch makes, sees that it is no longer the object seen); their trees and attributes
 * trade places by STORE_OP_SWAP.
 */
static int exchange(struct fs_txn *tb, const struct fs_txn_view *v, const char *a,
		    const char *b, unsigned flags, int64_t now)
{
	if (flags != RENAME_EXCHANGE)
		return -EINVAL; /* with RENAME_NOREPLACE or RENAME_WHITEOUT, as the kernel says */
	struct store_kv ka, kb;
	if (view_kv(v, a, &ka) != 0 || view_kv(v, b, &kb) != 0)
		return -ENOENT;
	if (under(a, b) || under(b, a))
		return -EINVAL; /* a directory with its own ancestor */
	struct exchange_keys *k = tb_alloc(tb, sizeof *k);
	if (!k)
		return -ENOMEM;
	int a_dir = (ka.meta.type & S_IFMT) == S_IFDIR, b_dir = (kb.meta.type & S_IFMT) == S_IFDIR;
	size_t al = strlen(a), bl = strlen(b);
	snprintf(k->a, sizeof k->a, "%s/", a);
	snprintf(k->b, sizeof k->b, "%s/", b);
	int rc = 0;
	if (a_dir)
		rc = tb_guard_tree(tb, v, k->a, al + 1, k->ea, bl);
	if (!rc && b_dir)
		rc = tb_guard_tree(tb, v, k->b, bl + 1, k->eb, al);
	if (rc)
		return rc;
	/* both unchanged since seen; each name then holds the other's object, ctime now */
	tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, a, ka.mod_revision);
	tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, b, kb.mod_revision);
	tb_delete(tb, a, NULL, 0);
	tb_delete(tb, b, NULL, 0);
	struct store_meta ma = ka.meta, mb = kb.meta;
	ma.ctime_ns = mb.ctime_ns = now;
	tb_put(tb, b, ka.value, ka.value_len, &ma, ka.lease);
	tb_put(tb, a, kb.value, kb.value_len, &mb, kb.lease);
	if (a_dir || b_dir)
		tb_move_n(tb, k->a, al + 1, k->b, bl + 1, 1);
	/* extended attributes: "\x01x" NAME "\0" ... of each, and "\x01x" NAME "/" ... of a tree */
	size_t xal = fs__txn_xkey(a, NULL, k->xa), xbl = fs__txn_xkey(b, NULL, k->xb);
	tb_move_n(tb, k->xa, xal, k->xb, xbl, 1);
	if (a_dir || b_dir) {
		memcpy(k->xad, k->xa, xal);
		memcpy(k->xbd, k->xb, xbl);
		k->xad[xal - 1] = k->xbd[xbl - 1] = '/';
		tb_move_n(tb, k->xad, xal, k->xbd, xbl, 1);
	}
	char pa[FS_PATH_MAX_BYTES + 1], pb[FS_PATH_MAX_BYTES + 1];
	fs__ops_parent_of(a, pa);
	fs__ops_parent_of(b, pb);
	rc = tb_touch_dir(tb, v, pa, now);
	if (!rc && strcmp(pa, pb) != 0)
		rc = tb_touch_dir(tb, v, pb, now);
	return rc;
}

int fs__txn_rename(struct fs_txn *tb, const struct fs_txn_view *v, const char *from,
		   const char *to, unsigned flags, int64_t now)
{
	if (flags & RENAME_EXCHANGE)
		return exchange(tb, v, from, to, flags, now);
	struct store_kv src = {0}, dst = {0};
	struct rename_keys *k = tb_alloc(tb, sizeof *k);
	if (!k)
		return -ENOMEM;
	int rc = view_kv(v, from, &src);
	if (rc)
		return rc;
	int has_dst = view_kv(v, to, &dst) == 0;
	rc = rename_check(v, from, to, flags, &src, has_dst, &dst);
	if (rc)
		return rc;
	int src_dir = (src.meta.type & S_IFMT) == S_IFDIR;
	size_t sl = strlen(from), tl = strlen(to);
	char sp[FS_PATH_MAX_BYTES + 1], dp[FS_PATH_MAX_BYTES + 1];
	fs__ops_parent_of(from, sp);
	fs__ops_parent_of(to, dp);
	/* the source, unchanged since seen, goes; the target takes its place */
	tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, from, src.mod_revision);
	if (has_dst)
		tb_cmp(tb, RPC__COMPARE__TARGET__MOD, RPC__COMPARE__RESULT__EQUAL, to,
		       dst.mod_revision);
	else
		tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__EQUAL, to, 0);
	tb_delete(tb, from, NULL, 0);
	struct store_meta m = src.meta;
	m.ctime_ns = now;
	tb_put(tb, to, src.value, src.value_len, &m, src.lease);
	if (src_dir) {
		/* everything under the directory moves along in the same revision, by one op: the
		   keys as they are when it applies, none changed since now (one compare) */
		snprintf(k->from, sizeof k->from, "%s/", from);
		snprintf(k->to, sizeof k->to, "%s/", to);
		rc = tb_guard_tree(tb, v, k->from, sl + 1, k->end, tl);
		if (rc)
			return rc;
		tb_move_n(tb, k->from, sl + 1, k->to, tl + 1, 0);
	}
	/* extended attributes: the target's go, the source's (and its tree's) move */
	size_t fl = fs__txn_xkey(from, NULL, k->xf), xtl = fs__txn_xkey(to, NULL, k->xt);
	if (has_dst)
		tb_delete_n(tb, k->xt, xtl, k->xe, store_prefix_end(k->xt, xtl, k->xe));
	tb_move_n(tb, k->xf, fl, k->xt, xtl, 0);
	if (src_dir) {
		/* "\x01x" SRC "/" ...: the tree's attributes, SRC's NUL turned into '/' */
		memcpy(k->xfd, k->xf, fl);
		memcpy(k->xtd, k->xt, xtl);
		k->xfd[fl - 1] = k->xtd[xtl - 1] = '/';
		tb_move_n(tb, k->xfd, fl, k->xtd, xtl, 0);
	}
	if (!rc)
		rc = tb_touch_dir(tb, v, sp, now);
	if (!rc && strcmp(sp, dp) != 0)
		rc = tb_touch_dir(tb, v, dp, now);
	return rc;
}

/* ---- extended attributes and leases ---------------------------------------------------------- */

int fs__txn_xattr(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		  const char *name, const void *value, size_t size, int flags)
{
	char *k = tb_alloc(tb, FS_XKEY_MAX);
	if (!k)
		return -ENOMEM;
	size_t kl = fs__txn_xkey(path, name, k);
	if (!is_root(path))
		tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__GREATER, path, 0);
	if (!value || (flags & XATTR_REPLACE))
		tb_cmp_n(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__GREATER, k, kl, 0);
	else if (flags & XATTR_CREATE)
		tb_cmp_n(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__EQUAL, k, kl, 0);
	struct store_meta none = {0};
	struct store_kv kv;
	if (value) /* on the file's lease, so they go together */
		tb_put_n(tb, k, kl, value, size, &none,
			 !is_root(path) && view_kv(v, path, &kv) == 0 ? kv.lease : 0);
	else
		tb_delete_n(tb, k, kl, NULL, 0);
	return 0;
}

int fs__txn_lease(struct fs_txn *tb, const struct fs_txn_view *v, const char *path, int64_t id)
{
	struct store_kv kv;
	if (is_root(path))
		return -EPERM;
	if (view_kv(v, path, &kv) != 0)
		return -ENOENT;
	if ((kv.meta.type & S_IFMT) == S_IFDIR)
		return -EPERM; /* its expiry would orphan what it holds */
	tb_cmp(tb, RPC__COMPARE__TARGET__VERSION, RPC__COMPARE__RESULT__GREATER, path, 0);
	char xp[FS_XKEY_MAX];
	unsigned char xe[FS_XKEY_MAX];
	size_t xl = fs__txn_xkey(path, NULL, xp), el = store_prefix_end(xp, xl, xe);
	struct store_range_req rq = {.key = xp, .key_len = xl, .end = xe, .end_len = el,
				     .flags = STORE_RANGE_KEYS_ONLY};
	struct store_range_result res;
	if (store_range(v->store, &rq, &res) != 0)
		return -EIO;
	struct store_meta none = {0};
	for (size_t i = 0; i <= res.n; i++) {
		/* the attribute keys point into the store, valid until its next change (store.h) */
		Rpc__Put *put = i < res.n ? tb_put_n(tb, res.kvs[i].key, res.kvs[i].key_len, NULL, 0,
						     &none, id)
					  : tb_put(tb, path, NULL, 0, &none, id);
		if (put) {
			put->has_ignore_value = 1;
			put->ignore_value = 1;
		}
	}
	store_range_result_free(&res);
	return tb->overflow ? -E2BIG : 0;
}
