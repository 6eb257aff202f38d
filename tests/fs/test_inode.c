/* test_inode.c: the mount's inode table: lookup counts, forget, rename of trees, detach. */
#include "check.h"
#include "fuse/inode.h"

#include <errno.h>

static const char *path_of(struct fs_itable *it, uint64_t ino)
{
	static char buf[256];
	int rc = fs_itable_path(it, ino, buf, sizeof buf);
	return rc >= 0 ? buf : rc == -ESTALE ? "(stale)" : "(none)";
}

CHECK_TEST(lookup_counts_and_forget)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	CHECK_STR_EQ(path_of(&it, FS_ROOT_INO), "/");
	uint64_t a = fs_itable_lookup(&it, "/a");
	CHECK_GT(a, FS_ROOT_INO);
	CHECK_EQ(fs_itable_lookup(&it, "/a"), a);
	CHECK_EQ(fs_itable_find(&it, "/a"), a);
	fs_itable_forget(&it, a, 1);
	CHECK_STR_EQ(path_of(&it, a), "/a"); /* one lookup left */
	fs_itable_forget(&it, a, 1);
	CHECK_STR_EQ(path_of(&it, a), "(none)");
	CHECK_EQ(fs_itable_find(&it, "/a"), 0);
	/* Numbers are never reused. */
	uint64_t a2 = fs_itable_lookup(&it, "/a");
	CHECK_GT(a2, a);
	fs_itable_forget(&it, FS_ROOT_INO, 100);
	CHECK_STR_EQ(path_of(&it, FS_ROOT_INO), "/");
	char small[2];
	CHECK_EQ(fs_itable_path(&it, a2, small, sizeof small), -ENAMETOOLONG);
	fs_itable_close(&it);
}

CHECK_TEST(rename_moves_a_tree_and_detaches_the_target)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	uint64_t d = fs_itable_lookup(&it, "/d");
	uint64_t f = fs_itable_lookup(&it, "/d/f");
	uint64_t deep = fs_itable_lookup(&it, "/d/sub/g");
	uint64_t sibling = fs_itable_lookup(&it, "/dx"); /* shares a prefix, not a parent */
	uint64_t old = fs_itable_lookup(&it, "/e/f");
	uint64_t e = fs_itable_lookup(&it, "/e");
	CHECK_EQ(fs_itable_rename(&it, "/d", "/e", 41), 0);
	CHECK_STR_EQ(path_of(&it, d), "/e");
	CHECK_STR_EQ(path_of(&it, f), "/e/f");
	CHECK_STR_EQ(path_of(&it, deep), "/e/sub/g");
	CHECK_STR_EQ(path_of(&it, sibling), "/dx");
	CHECK_STR_EQ(path_of(&it, old), "(stale)"); /* replaced by the rename */
	/* but whoever holds it open reads it as it was, before the rename's revision */
	char buf[64];
	int64_t rev = -1;
	CHECK_EQ(fs_itable_path_at(&it, old, buf, sizeof buf, &rev), 4);
	CHECK_STR_EQ(buf, "/e/f");
	CHECK_EQ(rev, 41);
	CHECK_EQ(fs_itable_path_at(&it, f, buf, sizeof buf, &rev), 4);
	CHECK_EQ(rev, 0); /* attached: current */
	CHECK_STR_EQ(path_of(&it, e), "(stale)");
	CHECK_EQ(fs_itable_find(&it, "/e/f"), f);
	CHECK_EQ(fs_itable_find(&it, "/d/f"), 0);
	/* A stale inode is freed by its forget like any other. */
	fs_itable_forget(&it, old, 1);
	CHECK_STR_EQ(path_of(&it, old), "(none)");
	fs_itable_close(&it);
}

CHECK_TEST(detach_on_delete)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	uint64_t d = fs_itable_lookup(&it, "/d");
	uint64_t f = fs_itable_lookup(&it, "/d/f");
	uint64_t keep = fs_itable_lookup(&it, "/d2");
	fs_itable_detach(&it, "/d", 7);
	CHECK_STR_EQ(path_of(&it, d), "(stale)");
	CHECK_STR_EQ(path_of(&it, f), "(stale)");
	char buf[64];
	int64_t rev = 0;
	CHECK_EQ(fs_itable_path_at(&it, f, buf, sizeof buf, &rev), 4);
	CHECK_STR_EQ(buf, "/d/f");
	CHECK_EQ(rev, 7);
	CHECK_STR_EQ(path_of(&it, keep), "/d2");
	/* The path can be made anew: a new inode. */
	uint64_t d2 = fs_itable_lookup(&it, "/d");
	CHECK_NE(d2, d);
	fs_itable_close(&it);
}

CHECK_TEST(many_inodes_grow_the_table)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	char p[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(p, sizeof p, "/dir/f%d", i);
		CHECK_EQ(fs_itable_lookup(&it, p), (uint64_t)i + 2);
	}
	for (int i = 0; i < 20000; i += 997) {
		snprintf(p, sizeof p, "/dir/f%d", i);
		CHECK_STR_EQ(path_of(&it, (uint64_t)i + 2), p);
	}
	CHECK_EQ(fs_itable_rename(&it, "/dir", "/moved", 3), 0);
	CHECK_STR_EQ(path_of(&it, 19999 + 2), "/moved/f19999");
	for (int i = 0; i < 20000; i++)
		fs_itable_forget(&it, (uint64_t)i + 2, 1);
	CHECK_EQ(it.count, 1);
	fs_itable_close(&it);
}

CHECK_TEST(a_rename_replayed_late_spares_inodes_made_after_it)
{
	/* the inotify replay performs the rename of revision 5 once the store is at 9 */
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	fs_itable_set_rev(&it, 3);
	uint64_t moved = fs_itable_lookup(&it, "/.conf.tmp");
	uint64_t victim = fs_itable_lookup(&it, "/conf");
	fs_itable_set_rev(&it, 9);
	fs_itable_forget(&it, victim, 1); /* the kernel forgot the old file, looked the name up again */
	uint64_t since = fs_itable_lookup(&it, "/conf");
	CHECK_EQ(fs_itable_rename(&it, "/.conf.tmp", "/conf", 4), 0);
	CHECK_STR_EQ(path_of(&it, moved), "/conf");
	char buf[64];
	int64_t rev = -1;
	/* made at 9 for /conf, it stands for what the rename put there: it stays, so that a
	   writer that opened it commits to /conf (a detached inode's writes go nowhere) */
	CHECK_EQ(fs_itable_path_at(&it, since, buf, sizeof buf, &rev), 5);
	CHECK_STR_EQ(buf, "/conf");
	CHECK_EQ(rev, 0);
	/* a temporary file made again since is not the one renamed, nor the one deleted */
	fs_itable_forget(&it, moved, 1);
	uint64_t again = fs_itable_lookup(&it, "/.conf.tmp");
	CHECK_EQ(fs_itable_rename(&it, "/.conf.tmp", "/conf", 7), 0);
	CHECK_STR_EQ(path_of(&it, again), "/.conf.tmp");
	fs_itable_detach(&it, "/.conf.tmp", 7);
	CHECK_STR_EQ(path_of(&it, again), "/.conf.tmp");
	/* its own delete, replayed, detaches it */
	fs_itable_detach(&it, "/.conf.tmp", 11);
	CHECK_EQ(fs_itable_path_at(&it, again, buf, sizeof buf, &rev), 10);
	CHECK_EQ(rev, 11);
	fs_itable_close(&it);
}

CHECK_TEST(exchange_swaps_the_names_and_their_trees)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	fs_itable_set_rev(&it, 10);
	uint64_t a = fs_itable_lookup(&it, "/a");
	uint64_t ax = fs_itable_lookup(&it, "/a/x");
	uint64_t ay = fs_itable_lookup(&it, "/a/sub/y");
	uint64_t b = fs_itable_lookup(&it, "/d/b");
	uint64_t bx = fs_itable_lookup(&it, "/d/b/x");
	uint64_t ab = fs_itable_lookup(&it, "/ab"); /* shares a prefix, not a parent */
	fs_itable_set_rev(&it, 12);
	/* made after the exchange applied, before its replay: under a name it stays (it stands for
	   what the exchange put there), at a name it goes (the kernel exchanges what it holds) */
	uint64_t later = fs_itable_lookup(&it, "/a/z");
	fs_itable_forget(&it, b, 1);
	uint64_t b2 = fs_itable_lookup(&it, "/d/b");
	CHECK_EQ(fs_itable_exchange(&it, "/a", "/d/b", 11), 0);
	CHECK_STR_EQ(path_of(&it, a), "/d/b");
	CHECK_STR_EQ(path_of(&it, ax), "/d/b/x");
	CHECK_STR_EQ(path_of(&it, ay), "/d/b/sub/y");
	CHECK_STR_EQ(path_of(&it, b), "(none)"); /* forgotten */
	CHECK_STR_EQ(path_of(&it, b2), "/a");
	CHECK_STR_EQ(path_of(&it, bx), "/a/x");
	CHECK_STR_EQ(path_of(&it, ab), "/ab");
	CHECK_STR_EQ(path_of(&it, later), "/a/z");
	CHECK_EQ(fs_itable_find(&it, "/a"), b2);
	CHECK_EQ(fs_itable_find(&it, "/a/x"), bx);
	CHECK_EQ(fs_itable_find(&it, "/d/b/x"), ax);
	/* the exchange deleted and made both names again: their detach at the revision before it
	   leaves the inodes it moved */
	fs_itable_detach(&it, "/a", 11);
	fs_itable_detach(&it, "/d/b", 11);
	CHECK_STR_EQ(path_of(&it, b2), "/a");
	CHECK_STR_EQ(path_of(&it, ax), "/d/b/x");
	/* a later change does detach them */
	fs_itable_detach(&it, "/a", 12);
	CHECK_STR_EQ(path_of(&it, b2), "(stale)");
	CHECK_STR_EQ(path_of(&it, bx), "(stale)");
	CHECK_STR_EQ(path_of(&it, later), "(stale)");
	CHECK_STR_EQ(path_of(&it, a), "/d/b");
	CHECK_EQ(fs_itable_exchange(&it, "/q", "/q", 20), 0); /* with itself: nothing */
	/* marked replaced by a remote exchange until its replay moves them */
	fs_itable_set_rev(&it, 20);
	uint64_t p = fs_itable_lookup(&it, "/p"), q = fs_itable_lookup(&it, "/q");
	fs_itable_mark_replaced(&it, "/p", 21);
	fs_itable_mark_replaced(&it, "/q", 20); /* made at 20: stands for what 20 put there */
	CHECK(fs_itable_replaced(&it, p));
	CHECK(!fs_itable_replaced(&it, q));
	CHECK_EQ(fs_itable_exchange(&it, "/p", "/q", 20), 0);
	CHECK(!fs_itable_replaced(&it, p));
	CHECK_STR_EQ(path_of(&it, p), "/q");
	fs_itable_close(&it);
}

/* An inode a replayed exchange moved answers one request by path ESTALE, unless a lookup came. */
CHECK_TEST(a_moved_mark_is_taken_once_or_cleared_by_a_lookup)
{
	struct fs_itable it;
	CHECK_EQ(fs_itable_init(&it), 0);
	uint64_t a = fs_itable_lookup(&it, "/a"), b = fs_itable_lookup(&it, "/b");
	CHECK(!fs_itable_take_moved(&it, a));
	fs_itable_mark_moved(&it, a);
	fs_itable_mark_moved(&it, b);
	CHECK(fs_itable_take_moved(&it, a));
	CHECK(!fs_itable_take_moved(&it, a)); /* once */
	fs_itable_confirm(&it, b);            /* a lookup reply gave it to the kernel */
	CHECK(!fs_itable_take_moved(&it, b));
	CHECK(!fs_itable_take_moved(&it, 12345)); /* unknown: nothing */
	fs_itable_close(&it);
}

CHECK_SUITE("fs-inode", CHECK_CASE(lookup_counts_and_forget),
	    CHECK_CASE(rename_moves_a_tree_and_detaches_the_target), CHECK_CASE(detach_on_delete),
	    CHECK_CASE(many_inodes_grow_the_table),
	    CHECK_CASE(a_rename_replayed_late_spares_inodes_made_after_it),
	    CHECK_CASE(exchange_swaps_the_names_and_their_trees),
	    CHECK_CASE(a_moved_mark_is_taken_once_or_cleared_by_a_lookup))
