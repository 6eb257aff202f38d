/* test_rev.c: revisions order by {main, sub}, and their encoding sorts bytewise the same way. */
#include "check.h"
#include "store.h"

#include <errno.h>

CHECK_TEST(order)
{
	struct store_rev a = {2, 0}, b = {2, 1}, c = {3, 0};
	CHECK_LT(store_rev_cmp(a, b), 0);
	CHECK_LT(store_rev_cmp(b, c), 0);
	CHECK_GT(store_rev_cmp(c, a), 0);
	CHECK_EQ(store_rev_cmp(a, a), 0);
}

CHECK_TEST(encoding_round_trip_and_order)
{
	struct store_rev revs[] = {{0, 0}, {1, 0}, {1, 1}, {1, 256}, {255, 0}, {256, 0},
				   {INT64_MAX, 7}};
	unsigned char prev[STORE_REV_BYTES], cur[STORE_REV_BYTES];
	for (size_t i = 0; i < sizeof revs / sizeof revs[0]; i++) {
		struct store_rev back;
		store_rev_encode(revs[i], cur);
		CHECK_EQ(cur[8], '_');
		CHECK_EQ(store_rev_decode(cur, sizeof cur, &back), 0);
		CHECK_EQ(back.main, revs[i].main);
		CHECK_EQ(back.sub, revs[i].sub);
		if (i)
			CHECK_LT(memcmp(prev, cur, STORE_REV_BYTES), 0);
		memcpy(prev, cur, sizeof cur);
	}
	/* Revision {1, 2} as etcd's backend writes it. */
	const unsigned char want[STORE_REV_BYTES] = {0, 0, 0, 0, 0, 0, 0, 1, '_',
						     0, 0, 0, 0, 0, 0, 0, 2};
	store_rev_encode((struct store_rev){1, 2}, cur);
	CHECK_MEM_EQ(cur, want, STORE_REV_BYTES);
}

CHECK_TEST(bad_encoding_is_rejected)
{
	unsigned char buf[STORE_REV_BYTES];
	struct store_rev r;
	store_rev_encode((struct store_rev){5, 6}, buf);
	CHECK_EQ(store_rev_decode(buf, STORE_REV_BYTES - 1, &r), -EINVAL);
	buf[8] = '-';
	CHECK_EQ(store_rev_decode(buf, STORE_REV_BYTES, &r), -EINVAL);
}

CHECK_SUITE("store-rev", CHECK_CASE(order), CHECK_CASE(encoding_round_trip_and_order),
	    CHECK_CASE(bad_encoding_is_rejected))
