/*
 * test_snap.c: snapshot files (wal/snap.c): round trip (whole and in pieces), listing newest first,
 * the newest valid one loaded after a broken one is renamed *.broken, purge keeping the newest N.
 */
#include "wal_test_util.h"

static char *snapdir(char *dir)
{
	return strdup(tu_path(dir, "snap"));
}

CHECK_TEST(round_trip_and_list)
{
	char *dir = tu_tmpdir(), *sd = snapdir(dir);
	struct wal_snap_info *v;
	size_t n;
	void *data;
	size_t len;
	uint64_t term, index;
	CHECK_EQ(wal_snap_list(sd, &v, &n), 0); /* missing dir: nothing */
	CHECK_EQ(n, 0);
	CHECK_EQ(wal_snap_load(sd, &data, &len, &term, &index), -ENOENT);
	size_t big = 3 * 1024 * 1024 + 5;
	uint8_t *img = malloc(big);
	uint64_t s = 77;
	for (size_t i = 0; i < big; i++)
		img[i] = (uint8_t)tu_rand(&s);
	CHECK_EQ(wal_snap_save(sd, 1, 100, "first", 5), 0);
	CHECK_EQ(wal_snap_save(sd, 2, 0x2710, img, big), 0);
	CHECK_EQ(wal_snap_save(sd, 2, 200, "", 0), 0);
	CHECK_EQ(wal_snap_list(sd, &v, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(v[0].index, 0x2710);
	CHECK_EQ(v[0].term, 2);
	CHECK(v[0].bytes > big && v[0].bytes < big + 32); /* the image and the header */
	CHECK(v[2].bytes > 5 && v[2].bytes < 5 + 32);
	CHECK_EQ(v[1].index, 200);
	CHECK_EQ(v[2].index, 100);
	free(v);
	/* The name is term-index, as DESIGN.md shows. */
	CHECK(access(tu_path(sd, "0000000000000002-0000000000002710.snap"), F_OK) == 0);
	CHECK_EQ(wal_snap_load(sd, &data, &len, &term, &index), 0);
	CHECK_EQ(len, big);
	CHECK_EQ(term, 2);
	CHECK_EQ(index, 0x2710);
	CHECK_MEM_EQ(data, img, big);
	free(data);
	/* in pieces (wal_snap_savev): the same file as the pieces put together */
	struct iovec iov[3] = {{img, 7}, {img + 7, 0}, {img + 7, big - 7}};
	CHECK_EQ(wal_snap_savev(sd, 3, 0x3000, iov, 3), 0);
	CHECK_EQ(wal_snap_load(sd, &data, &len, &term, &index), 0);
	CHECK_EQ(len, big);
	CHECK_EQ(index, 0x3000);
	CHECK_MEM_EQ(data, img, big);
	free(data);
	size_t wl = 0, pl = 0;
	CHECK_EQ(wal_snap_save(sd, 3, 0x3001, img, big), 0);
	uint8_t *pieces = tu_read(tu_path(sd, "0000000000000003-0000000000003000.snap"), &pl);
	uint8_t *whole = tu_read(tu_path(sd, "0000000000000003-0000000000003001.snap"), &wl);
	CHECK_EQ(pl, wl);
	CHECK_MEM_EQ(pieces, whole, wl);
	free(whole);
	free(pieces);
	free(img);
	free(sd);
	tu_rmdir(dir);
}

CHECK_TEST(broken_snapshot_falls_back_to_the_next)
{
	char *dir = tu_tmpdir(), *sd = snapdir(dir);
	CHECK_EQ(wal_snap_save(sd, 1, 10, "ten", 3), 0);
	CHECK_EQ(wal_snap_save(sd, 1, 20, "twenty", 6), 0);
	CHECK_EQ(wal_snap_save(sd, 2, 30, "thirty", 6), 0);
	/* 30: a flipped bit in the data; 20: cut short. */
	char p30[512], p20[512];
	snprintf(p30, sizeof p30, "%s", tu_path(sd, "0000000000000002-000000000000001e.snap"));
	snprintf(p20, sizeof p20, "%s", tu_path(sd, "0000000000000001-0000000000000014.snap"));
	size_t len;
	uint8_t *b = tu_read(p30, &len);
	b[len - 2] ^= 0x10;
	tu_write(p30, b, len);
	free(b);
	b = tu_read(p20, &len);
	tu_write(p20, b, len - 3);
	free(b);
	tu_log_reset();
	void *data;
	uint64_t term, index;
	CHECK_EQ(wal_snap_load(sd, &data, &len, &term, &index), 0);
	CHECK_EQ(index, 10);
	CHECK_EQ(term, 1);
	CHECK_EQ(len, 3);
	CHECK_MEM_EQ(data, "ten", 3);
	free(data);
	CHECK_EQ(tu_log_lines, 2);
	CHECK(strstr(tu_log_buf, "crc mismatch") != NULL);
	CHECK(access(tu_path(sd, "0000000000000002-000000000000001e.snap.broken"), F_OK) == 0);
	CHECK(access(tu_path(sd, "0000000000000001-0000000000000014.snap.broken"), F_OK) == 0);
	struct wal_snap_info *v;
	size_t n;
	CHECK_EQ(wal_snap_list(sd, &v, &n), 0);
	CHECK_EQ(n, 1);
	free(v);
	/* All broken: none valid. */
	b = tu_read(tu_path(sd, "0000000000000001-000000000000000a.snap"), &len);
	tu_write(tu_path(sd, "0000000000000001-000000000000000a.snap"), b, 0);
	free(b);
	CHECK_EQ(wal_snap_load(sd, &data, &len, &term, &index), -ENOENT);
	wal_set_log(NULL, NULL);
	free(sd);
	tu_rmdir(dir);
}

CHECK_TEST(purge_keeps_the_newest)
{
	char *dir = tu_tmpdir(), *sd = snapdir(dir);
	for (uint64_t i = 1; i <= 8; i++)
		CHECK_EQ(wal_snap_save(sd, 1, i * 10, &i, sizeof i), 0);
	unsigned removed;
	CHECK_EQ(wal_snap_purge(sd, 0, &removed), 0); /* default: 5 */
	CHECK_EQ(removed, 3);
	CHECK_EQ(wal_snap_purge(sd, 2, &removed), 0);
	CHECK_EQ(removed, 3);
	struct wal_snap_info *v;
	size_t n;
	CHECK_EQ(wal_snap_list(sd, &v, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(v[0].index, 80);
	CHECK_EQ(v[1].index, 70);
	free(v);
	free(sd);
	tu_rmdir(dir);
}

CHECK_SUITE("wal-snap", CHECK_CASE(round_trip_and_list),
	    CHECK_CASE(broken_snapshot_falls_back_to_the_next), CHECK_CASE(purge_keeps_the_newest))
