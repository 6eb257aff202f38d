/*
 * rev.c: revisions {main, sub}, their order and their 17-byte encoding, the key of the
 * revision-keyed value table (as etcd's backend keys its "key" bucket).
 */
#include "store.h"

#include <errno.h>

int store_rev_cmp(struct store_rev a, struct store_rev b)
{
	if (a.main != b.main)
		return a.main < b.main ? -1 : 1;
	if (a.sub != b.sub)
		return a.sub < b.sub ? -1 : 1;
	return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void store_rev_encode(struct store_rev rev, unsigned char out[STORE_REV_BYTES])
{
	put_be64(out, (uint64_t)rev.main);
	out[8] = '_';
	put_be64(out + 9, (uint64_t)rev.sub);
}

int store_rev_decode(const unsigned char *in, size_t len, struct store_rev *rev)
{
	if (len != STORE_REV_BYTES || in[8] != '_')
		return -EINVAL;
	rev->main = (int64_t)get_be64(in);
	rev->sub = (int64_t)get_be64(in + 9);
	return 0;
}
