/*
 * test_wal.c: the log (wal/wal.c): round trips of every record type, entry overwrite, opening at a
 * snapshot, reading across segment cuts, purge, a crash at every byte offset of the last record,
 * random bit flips before the tail, group commit from several threads, and a second process on the
 * same data dir.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "wal_test_util.h"

#define SMALL_SEG (16 * 1024)

/* The payload of entry index in a run salted with salt: 1..300 bytes, never ending in zero. */
static size_t payload(uint64_t index, uint64_t salt, uint8_t *buf)
{
	size_t len = (size_t)((index * 37 + salt) % 300) + 1;
	uint64_t s = index * 0x9E3779B97F4A7C15ull + salt + 1;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(tu_rand(&s) | 1);
	return len;
}

/* Saves entries [from, to] of term in batches of batch, with a hard state per batch. */
static void save_range(struct wal *w, uint64_t from, uint64_t to, uint64_t term, uint64_t salt,
		       size_t batch, int sync)
{
	static uint8_t bufs[256][300];
	struct wal_entry ents[256];
	for (uint64_t i = from; i <= to;) {
		size_t n = 0;
		for (; n < batch && i <= to; n++, i++) {
			ents[n].index = i;
			ents[n].term = term;
			ents[n].type = i % 7 == 0; /* some conf changes */
			ents[n].len = payload(i, salt, bufs[n]);
			ents[n].data = bufs[n];
		}
		struct wal_hard_state hs = {term, 1, i - 1};
		CHECK_EQ(wal_save(w, &hs, ents, n, sync), 0);
	}
}

/* Checks res holds entries [from, to] of term (salted) and nothing else. */
static void check_range(const struct wal_read_result *res, uint64_t from, uint64_t to, uint64_t term,
			uint64_t salt)
{
	uint8_t buf[300];
	CHECK_EQ(res->n_entries, to >= from ? to - from + 1 : 0);
	for (size_t k = 0; k < res->n_entries; k++) {
		const struct wal_entry *e = &res->entries[k];
		CHECK_EQ(e->index, from + k);
		CHECK_EQ(e->term, term);
		CHECK_EQ(e->type, e->index % 7 == 0);
		size_t len = payload(e->index, salt, buf);
		CHECK_EQ(e->len, len);
		CHECK_MEM_EQ(e->data, buf, len);
	}
}

static struct wal *open_ok(const char *dir, uint64_t index, uint64_t term, uint64_t seg,
			   struct wal_read_result *res)
{
	struct wal *w = NULL;
	struct wal_options o = {seg};
	struct wal_snapshot_ref at = {index, term};
	int r = wal_open(dir, at, &o, &w);
	if (r != 0)
		CHECK_FAIL("wal_open: %d %s", r, wal_errmsg());
	CHECK_EQ(wal_read_all(w, res), 0);
	return w;
}

static size_t count_files(const char *dir, const char *suffix)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "ls %s | grep -c '%s$'", dir, suffix);
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	if (fscanf(p, "%zu", &n) != 1)
		n = 0;
	pclose(p);
	return n;
}

CHECK_TEST(round_trip_every_record_type)
{
	char *dir = tu_tmpdir();
	const char *wd = tu_path(dir, "wal");
	struct wal *w;
	const char meta[] = "node=1 cluster=7";
	CHECK_EQ(wal_exists(wd), 0);
	struct wal_snapshot_ref none = {0, 0};
	CHECK_EQ(wal_open(wd, none, NULL, &w), -ENOENT);
	CHECK_EQ(wal_create(wd, meta, sizeof meta, NULL, &w), 0);
	CHECK_EQ(wal_exists(wd), 1);
	save_range(w, 1, 40, 2, 0, 3, 1);
	struct wal_entry empty = {3, 41, 0, NULL, 0};
	struct wal_hard_state hs = {3, 2, 40};
	CHECK_EQ(wal_save(w, &hs, &empty, 1, 1), 0);
	struct wal_snapshot_ref snap = {20, 2};
	CHECK_EQ(wal_save_snapshot(w, snap), 0);
	CHECK_EQ(wal_save(w, &hs, NULL, 0, 1), 0); /* a hard state alone */
	CHECK_EQ(wal_last_index(w), 41);
	CHECK_EQ(wal_close(w), 0);

	struct wal_read_result res;
	w = open_ok(wd, 0, 0, 0, &res);
	CHECK_EQ(res.metadata_len, sizeof meta);
	CHECK_MEM_EQ(res.metadata, meta, sizeof meta);
	CHECK(res.has_hard);
	CHECK_EQ(res.hard.term, 3);
	CHECK_EQ(res.hard.vote, 2);
	CHECK_EQ(res.hard.commit, 40);
	CHECK_EQ(res.n_entries, 41);
	struct wal_read_result head = res;
	head.n_entries = 40;
	check_range(&head, 1, 40, 2, 0);
	CHECK_EQ(res.entries[40].index, 41);
	CHECK_EQ(res.entries[40].len, 0);
	wal_read_result_free(&res);
	CHECK_EQ(wal_last_index(w), 41);
	CHECK_EQ(wal_close(w), 0);

	/* At the snapshot: only what follows it. */
	w = open_ok(wd, 20, 2, 0, &res);
	CHECK_EQ(res.n_entries, 21);
	CHECK_EQ(res.entries[0].index, 21);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);

	/* A snapshot that was never recorded, or with another term. */
	struct wal_snapshot_ref bad = {30, 2};
	CHECK_EQ(wal_open(wd, bad, NULL, &w), -ENOENT);
	bad.index = 20, bad.term = 3;
	CHECK_EQ(wal_open(wd, bad, NULL, &w), WAL_ECORRUPT);
	CHECK(strstr(wal_errmsg(), "term") != NULL);

	/* Creating over an existing log. */
	CHECK_EQ(wal_create(wd, meta, sizeof meta, NULL, &w), -EEXIST);
	tu_rmdir(dir);
}

CHECK_TEST(overwritten_entries_replace_the_tail)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), 0);
	save_range(w, 1, 10, 1, 0, 10, 1);
	save_range(w, 6, 8, 2, 5, 2, 1); /* a new leader overwrote 6.. */
	CHECK_EQ(wal_last_index(w), 8);
	CHECK_EQ(wal_close(w), 0);
	struct wal_read_result res;
	w = open_ok(dir, 0, 0, 0, &res);
	CHECK_EQ(res.n_entries, 8);
	struct wal_read_result part = res;
	part.n_entries = 5;
	check_range(&part, 1, 5, 1, 0);
	part.entries = res.entries + 5;
	part.n_entries = 3;
	check_range(&part, 6, 8, 2, 5);
	wal_read_result_free(&res);
	/* Appending after reopen continues the chain. */
	save_range(w, 9, 12, 2, 5, 4, 1);
	CHECK_EQ(wal_close(w), 0);
	w = open_ok(dir, 0, 0, 0, &res);
	CHECK_EQ(res.n_entries, 12);
	part.entries = res.entries + 5;
	part.n_entries = 7;
	check_range(&part, 6, 12, 2, 5);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	tu_rmdir(dir);
}

CHECK_TEST(reads_across_segment_cuts_and_purges)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "meta", 4, &o, &w), 0);
	save_range(w, 1, 300, 4, 9, 5, 1);
	struct wal_snapshot_ref snap = {250, 4};
	CHECK_EQ(wal_save_snapshot(w, snap), 0);
	CHECK_EQ(wal_close(w), 0);
	size_t nseg = count_files(dir, ".wal");
	CHECK_GE(nseg, 3);
	CHECK_EQ(count_files(dir, ".tmp"), 0);
	/* Every segment has the size it was cut at or its preallocation. */
	struct wal_read_result res;
	w = open_ok(dir, 0, 0, SMALL_SEG, &res);
	check_range(&res, 1, 300, 4, 9);
	CHECK_EQ(res.hard.commit, 300);
	wal_read_result_free(&res);
	/* Keep appending across more cuts after a reopen. */
	save_range(w, 301, 400, 4, 9, 7, 1);
	CHECK_EQ(wal_close(w), 0);
	w = open_ok(dir, 250, 4, SMALL_SEG, &res);
	check_range(&res, 251, 400, 4, 9);
	CHECK_EQ(res.hard.commit, 400);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);

	/* Purge what the snapshot at 250 covers, keeping 2: the log still opens at 250. */
	nseg = count_files(dir, ".wal");
	unsigned removed = 0;
	CHECK_EQ(wal_purge(dir, 250, 2, &removed), 0);
	CHECK_GT(removed, 0);
	CHECK_EQ(count_files(dir, ".wal"), nseg - removed);
	w = open_ok(dir, 250, 4, SMALL_SEG, &res);
	check_range(&res, 251, 400, 4, 9);
	CHECK(res.has_hard); /* every segment carries the hard state */
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	/* The entries before the oldest kept segment are gone: opening at 0 fails cleanly. */
	struct wal_snapshot_ref zero = {0, 0};
	CHECK_EQ(wal_open(dir, zero, &o, &w), -ENOENT);
	/* Purging never goes past what a snapshot covers, nor below keep. */
	CHECK_EQ(wal_purge(dir, 250, 1, &removed), 0);
	CHECK_EQ(removed, 0);
	CHECK_EQ(wal_purge(dir, 1000, 1, &removed), 0);
	CHECK_EQ(count_files(dir, ".wal"), 1);
	tu_rmdir(dir);
}

CHECK_TEST(missing_middle_segment_is_corruption)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "meta", 4, &o, &w), 0);
	save_range(w, 1, 200, 1, 0, 5, 0);
	CHECK_EQ(wal_close(w), 0);
	CHECK_GE(count_files(dir, ".wal"), 3);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm %s/0000000000000001-*.wal", dir);
	CHECK_EQ(system(cmd), 0);
	struct wal_snapshot_ref zero = {0, 0};
	CHECK_EQ(wal_open(dir, zero, &o, &w), WAL_ECORRUPT);
	CHECK(strstr(wal_errmsg(), "missing") != NULL);
	tu_rmdir(dir);
}

CHECK_TEST(damage_in_an_earlier_segment_names_it)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "meta", 4, &o, &w), 0);
	save_range(w, 1, 200, 1, 0, 5, 0);
	CHECK_EQ(wal_close(w), 0);
	char cmd[600], name[256], path[600];
	snprintf(cmd, sizeof cmd, "cd %s && ls 0000000000000001-*.wal", dir);
	FILE *p = popen(cmd, "r");
	CHECK(fgets(name, sizeof name, p) != NULL);
	pclose(p);
	name[strcspn(name, "\n")] = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	size_t len;
	uint8_t *b = tu_read(path, &len);
	struct wal_snapshot_ref zero = {0, 0};
	/* A flipped byte in the middle. */
	b[len / 2] ^= 0x04;
	tu_write(path, b, len);
	CHECK_EQ(wal_open(dir, zero, &o, &w), WAL_ECORRUPT);
	CHECK(strstr(wal_errmsg(), name) != NULL);
	CHECK(strstr(wal_errmsg(), "offset") != NULL);
	/* Cut short: no torn-tail repair outside the last segment. */
	b[len / 2] ^= 0x04;
	tu_write(path, b, len - 5);
	CHECK_EQ(wal_open(dir, zero, &o, &w), WAL_ECORRUPT);
	CHECK(strstr(wal_errmsg(), name) != NULL);
	/* Restored, it reads again. */
	tu_write(path, b, len);
	struct wal_read_result res;
	w = open_ok(dir, 0, 0, SMALL_SEG, &res);
	check_range(&res, 1, 200, 1, 0);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	free(b);
	tu_rmdir(dir);
}

/* Writes entries 1..9, records where the last record (entry 10 with its hard state) starts and
 * ends in the segment, then saves it. Returns the segment's path. */
static const char *prepare_crash(const char *dir, size_t *start, size_t *end, uint8_t **pristine,
				 size_t *size)
{
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "meta", 4, &o, &w), 0);
	save_range(w, 1, 9, 1, 3, 4, 1);
	const char *seg = tu_path(dir, "0000000000000000-0000000000000000.wal");
	size_t len;
	uint8_t *b = tu_read(seg, &len);
	size_t e = len;
	while (e > 0 && b[e - 1] == 0)
		e--;
	*start = (e + 7) & ~(size_t)7;
	free(b);
	uint8_t data[300];
	struct wal_entry ent = {1, 10, 0, data, payload(10, 3, data)};
	CHECK_EQ(wal_save(w, NULL, &ent, 1, 1), 0);
	CHECK_EQ(wal_close(w), 0);
	*pristine = tu_read(seg, size);
	e = *size;
	while (e > 0 && (*pristine)[e - 1] == 0)
		e--;
	*end = (e + 7) & ~(size_t)7;
	CHECK_GT(*end, *start + 8);
	return seg;
}

CHECK_TEST(crash_at_every_byte_of_the_last_record)
{
	char *dir = tu_tmpdir();
	size_t start, end, size;
	uint8_t *pristine;
	const char *seg = prepare_crash(dir, &start, &end, &pristine, &size);
	char segpath[512];
	snprintf(segpath, sizeof segpath, "%s", seg);
	/* The last byte of the entry's data (the rest is zero padding). */
	size_t last_data = end;
	while (pristine[last_data - 1] == 0)
		last_data--;
	for (int zero_fill = 0; zero_fill <= 1; zero_fill++)
		for (size_t k = start; k < end; k++) {
			if (zero_fill) {
				uint8_t *b = malloc(size);
				memcpy(b, pristine, k);
				memset(b + k, 0, size - k);
				tu_write(segpath, b, size);
				free(b);
			} else {
				tu_write(segpath, pristine, k);
			}
			tu_log_reset();
			struct wal_read_result res;
			struct wal *w = open_ok(dir, 0, 0, SMALL_SEG, &res);
			/* With zero fill, only missing padding leaves the record whole. */
			int whole = zero_fill && k >= last_data;
			check_range(&res, 1, whole ? 10 : 9, 1, 3);
			CHECK_EQ(res.hard.commit, 9);
			wal_read_result_free(&res);
			size_t ge = k; /* where the garbage ends: its last non-zero byte */
			while (ge > start && pristine[ge - 1] == 0)
				ge--;
			if (!whole && ge > start) {
				CHECK_EQ(tu_log_lines, 1);
				char want[128];
				snprintf(want, sizeof want, "offset %zu: truncated %zu bytes", start,
					 ge - start);
				if (!strstr(tu_log_buf, want))
					CHECK_FAIL("k=%zu log \"%s\" lacks \"%s\"", k, tu_log_buf, want);
				CHECK(strstr(tu_log_buf, segpath) != NULL);
			} else {
				CHECK_EQ(tu_log_lines, 0);
			}
			/* The repaired log takes new records and reads back whole. */
			if (k % 16 == 0 || k == end - 1) {
				if (!whole)
					save_range(w, 10, 11, 2, 4, 2, 1);
				CHECK_EQ(wal_close(w), 0);
				tu_log_reset();
				w = open_ok(dir, 0, 0, SMALL_SEG, &res);
				CHECK_EQ(res.n_entries, whole ? 10 : 11);
				CHECK_EQ(tu_log_lines, 0);
				wal_read_result_free(&res);
			}
			CHECK_EQ(wal_close(w), 0);
		}
	wal_set_log(NULL, NULL);
	free(pristine);
	tu_rmdir(dir);
}

CHECK_TEST(bit_flips_before_the_tail_are_detected)
{
	char *dir = tu_tmpdir();
	size_t start, end, size;
	uint8_t *pristine;
	const char *seg = prepare_crash(dir, &start, &end, &pristine, &size);
	char segpath[512];
	snprintf(segpath, sizeof segpath, "%s", seg);
	uint64_t s = check_seed() * 2 + 1;
	uint8_t *b = malloc(size);
	/* Every bit before the tail in turn (about 14,000: a few seconds), then 200 random pairs of
	 * flips (CHECK_SEED replays them). */
	size_t trials = start * 8 + 200;
	for (size_t trial = 0; trial < trials; trial++) {
		size_t bit = trial, bit2 = SIZE_MAX;
		if (trial >= start * 8) {
			bit = (size_t)(tu_rand(&s) % (start * 8));
			bit2 = (size_t)(tu_rand(&s) % (start * 8));
		}
		memcpy(b, pristine, size);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (bit2 != SIZE_MAX && bit2 != bit)
			b[bit2 / 8] ^= (uint8_t)(1u << (bit2 % 8));
		tu_write(segpath, b, size);
		struct wal *w = NULL;
		struct wal_snapshot_ref zero = {0, 0};
		int r = wal_open(dir, zero, NULL, &w);
		if (r != WAL_ECORRUPT) {
			if (w) {
				struct wal_read_result res;
				wal_read_all(w, &res);
				printf("  read %zu entries\n", res.n_entries);
				if (getenv("WAL_TEST_KEEP"))
					tu_write("/tmp/wal-flip-pristine.wal", pristine, size);
				wal_read_result_free(&res);
				wal_close(w);
			}
			CHECK_FAIL("flip of bit %zu (byte %zu) not detected: %d %s", bit, bit / 8, r,
				   wal_errmsg());
		}
		CHECK(strstr(wal_errmsg(), segpath) != NULL);
		CHECK(strstr(wal_errmsg(), "offset") != NULL);
	}
	free(b);
	free(pristine);
	tu_rmdir(dir);
}

/* Group commit: threads saving hard states with must_sync share fdatasyncs. */
struct gc_arg {
	struct wal *w;
	int id;
};

static void *gc_thread(void *p)
{
	struct gc_arg *a = p;
	for (int i = 1; i <= 50; i++) {
		struct wal_hard_state hs = {(uint64_t)i, (uint64_t)a->id, 0};
		if (wal_save(a->w, &hs, NULL, 0, 1) != 0)
			return (void *)1;
	}
	return NULL;
}

CHECK_TEST(group_commit_shares_fdatasyncs)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), 0);
	wal_fault_clear();
	enum { T = 6 };
	pthread_t th[T];
	struct gc_arg args[T];
	for (int i = 0; i < T; i++) {
		args[i].w = w;
		args[i].id = i + 1;
		pthread_create(&th[i], NULL, gc_thread, &args[i]);
	}
	for (int i = 0; i < T; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		CHECK(rv == NULL);
	}
	unsigned long syncs = wal_fault_calls(WAL_SYS_FDATASYNC);
	printf("# %d durable saves took %lu fdatasyncs\n", T * 50, syncs);
	CHECK_LE(syncs, T * 50);
	CHECK_GE(syncs, 1);
	CHECK_EQ(wal_close(w), 0);
	struct wal_read_result res;
	w = open_ok(dir, 0, 0, 0, &res);
	CHECK(res.has_hard);
	CHECK_EQ(res.hard.term, 50);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	tu_rmdir(dir);
}

/* Group commit across segment cuts: threads append entries in index order (a test mutex keeps the
 * order, as the member's loop does) and wait for durability outside it, while segments are cut. */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_index;

static void *cut_thread(void *p)
{
	struct wal *w = p;
	uint8_t data[300];
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&order_mu);
		uint64_t idx = ++next_index;
		struct wal_entry e = {3, idx, idx % 7 == 0, data, payload(idx, 11, data)};
		struct wal_hard_state hs = {3, 1, idx};
		int r = wal_save(w, &hs, &e, 1, 0);
		pthread_mutex_unlock(&order_mu);
		if (r != 0 || wal_sync(w) != 0)
			return (void *)1;
	}
	return NULL;
}

CHECK_TEST(group_commit_across_cuts)
{
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "m", 1, &o, &w), 0);
	next_index = 0;
	enum { T = 4 };
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, cut_thread, w);
	for (int i = 0; i < T; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		CHECK(rv == NULL);
	}
	CHECK_EQ(wal_close(w), 0);
	CHECK_GE(count_files(dir, ".wal"), 4);
	struct wal_read_result res;
	w = open_ok(dir, 0, 0, SMALL_SEG, &res);
	check_range(&res, 1, T * 100, 3, 11);
	CHECK_EQ(res.hard.commit, T * 100);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	tu_rmdir(dir);
}

/* A member killed (SIGKILL) at a random moment, mid-save or mid-cut: everything it was told is
 * durable reads back, and the log opens cleanly and takes new records. */
CHECK_TEST(killed_writer_loses_nothing_acknowledged)
{
	uint64_t s = check_seed() * 3 + 1;
	for (int round = 0; round < 8; round++) {
		char *dir = tu_tmpdir();
		int pfd[2];
		CHECK_EQ(pipe(pfd), 0);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			struct wal *w;
			struct wal_options o = {SMALL_SEG};
			if (wal_create(dir, "m", 1, &o, &w) != 0)
				_exit(3);
			uint8_t data[300];
			for (uint64_t i = 1;; i++) {
				struct wal_entry e = {1, i, i % 7 == 0, data, payload(i, 5, data)};
				struct wal_hard_state hs = {1, 1, i};
				if (wal_save(w, &hs, &e, 1, 1) != 0)
					_exit(4);
				if (write(pfd[1], &i, sizeof i) != sizeof i)
					_exit(5);
			}
		}
		close(pfd[1]);
		/* the kill lands after the first acknowledged save, however slow the machine */
		uint64_t acked = 0, v;
		if (read(pfd[0], &v, sizeof v) == sizeof v)
			acked = v;
		usleep((useconds_t)(20000 + tu_rand(&s) % 80000));
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFSIGNALED(st));
		while (read(pfd[0], &v, sizeof v) == sizeof v)
			acked = v;
		close(pfd[0]);
		CHECK_GT(acked, 0);
		struct wal_read_result res;
		struct wal *w = open_ok(dir, 0, 0, SMALL_SEG, &res);
		CHECK_GE(res.n_entries, acked);
		check_range(&res, 1, res.n_entries, 1, 5);
		uint64_t n = res.n_entries;
		printf("# killed after %" PRIu64 " acknowledged saves; %" PRIu64 " entries read back\n",
		       acked, n);
		wal_read_result_free(&res);
		save_range(w, n + 1, n + 3, 2, 6, 3, 1);
		CHECK_EQ(wal_close(w), 0);
		w = open_ok(dir, 0, 0, SMALL_SEG, &res);
		CHECK_EQ(res.n_entries, n + 3);
		wal_read_result_free(&res);
		CHECK_EQ(wal_close(w), 0);
		tu_rmdir(dir);
	}
}

/* The member's restart path (DESIGN.md): lock the data dir, load the newest valid snapshot, open the
 * log at it. Snapshots at 100, 200 and 300; the log purged up to the oldest kept snapshot, so that
 * when the newest snapshot turns out broken the one before it still has its log. */
CHECK_TEST(restart_from_newest_valid_snapshot)
{
	char *data_dir = tu_tmpdir();
	char wd[512], sd[512];
	snprintf(wd, sizeof wd, "%s/wal", data_dir);
	snprintf(sd, sizeof sd, "%s/snap", data_dir);
	int lock;
	CHECK_EQ(wal_dir_lock(data_dir, &lock), 0);
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(wd, "m", 1, &o, &w), 0);
	for (uint64_t snap = 100; snap <= 300; snap += 100) {
		save_range(w, snap - 99, snap, 2, 8, 10, 1);
		char img[32];
		int n = snprintf(img, sizeof img, "image@%" PRIu64, snap);
		CHECK_EQ(wal_snap_save(sd, 2, snap, img, (size_t)n), 0);
		struct wal_snapshot_ref ref = {snap, 2};
		CHECK_EQ(wal_save_snapshot(w, ref), 0);
		/* Keep two snapshots; purge the log up to the older of them. */
		CHECK_EQ(wal_snap_purge(sd, 2, NULL), 0);
		struct wal_snap_info *v;
		size_t nv;
		CHECK_EQ(wal_snap_list(sd, &v, &nv), 0);
		CHECK_EQ(wal_purge(wd, v[nv - 1].index, 1, NULL), 0);
		free(v);
	}
	save_range(w, 301, 350, 2, 8, 10, 1);
	CHECK_EQ(wal_close(w), 0);
	wal_dir_unlock(lock);
	/* The purge did remove the oldest segments. */
	CHECK(access(tu_path(wd, "0000000000000000-0000000000000000.wal"), F_OK) != 0);

	/* Restart. */
	CHECK_EQ(wal_dir_lock(data_dir, &lock), 0);
	void *img;
	size_t len;
	uint64_t term, index;
	CHECK_EQ(wal_snap_load(sd, &img, &len, &term, &index), 0);
	CHECK_EQ(index, 300);
	CHECK_MEM_EQ(img, "image@300", 9);
	free(img);
	struct wal_read_result res;
	w = open_ok(wd, index, term, SMALL_SEG, &res);
	check_range(&res, 301, 350, 2, 8);
	CHECK_EQ(res.hard.commit, 350);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);

	/* The newest snapshot rots: the one at 200 and the log after it take over. */
	char p300[600];
	snprintf(p300, sizeof p300, "%s/%016x-%016x.snap", sd, 2, 300);
	size_t fl;
	uint8_t *b = tu_read(p300, &fl);
	b[fl - 1] ^= 1;
	tu_write(p300, b, fl);
	free(b);
	tu_log_reset();
	CHECK_EQ(wal_snap_load(sd, &img, &len, &term, &index), 0);
	wal_set_log(NULL, NULL);
	CHECK_EQ(index, 200);
	free(img);
	w = open_ok(wd, index, term, SMALL_SEG, &res);
	check_range(&res, 201, 350, 2, 8);
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
	wal_dir_unlock(lock);
	tu_rmdir(data_dir);
}

CHECK_TEST(second_process_is_kept_out)
{
	char *dir = tu_tmpdir();
	int fd;
	CHECK_EQ(wal_dir_lock(dir, &fd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd2, r = wal_dir_lock(dir, &fd2);
		char want[64];
		snprintf(want, sizeof want, "in use by pid %ld", (long)getppid());
		_exit(r == -EWOULDBLOCK && strstr(wal_errmsg(), want) ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	wal_dir_unlock(fd);
	/* Released: a second process gets it now. */
	pid = fork();
	if (pid == 0) {
		int fd2, r = wal_dir_lock(dir, &fd2);
		_exit(r == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	tu_rmdir(dir);
}

CHECK_SUITE("wal-log", CHECK_CASE(round_trip_every_record_type),
	    CHECK_CASE(overwritten_entries_replace_the_tail),
	    CHECK_CASE(reads_across_segment_cuts_and_purges),
	    CHECK_CASE(missing_middle_segment_is_corruption),
	    CHECK_CASE(damage_in_an_earlier_segment_names_it),
	    CHECK_CASE(crash_at_every_byte_of_the_last_record),
	    CHECK_CASE(bit_flips_before_the_tail_are_detected),
	    CHECK_CASE(group_commit_shares_fdatasyncs), CHECK_CASE(group_commit_across_cuts),
	    CHECK_CASE(killed_writer_loses_nothing_acknowledged),
	    CHECK_CASE(restart_from_newest_valid_snapshot),
	    CHECK_CASE(second_process_is_kept_out))
