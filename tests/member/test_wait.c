/* test_wait.c: request ids increase strictly and carry the member; the wait table answers once. */
#include "check.h"
#include "member/wait.h"

#include <errno.h>

CHECK_TEST(request_ids_increase_and_carry_the_member)
{
	struct fs_reqid g, h;
	fs_reqid_init(&g, 0xabcd1234, 1790000000000ull);
	uint64_t prev = fs_reqid_next(&g);
	CHECK_EQ_U64(prev >> 48, 0x1234);
	for (int i = 0; i < 100000; i++) {
		uint64_t id = fs_reqid_next(&g);
		CHECK_GT(id, prev);
		prev = id;
	}
	/* A restart a millisecond later, after fewer than 256 ids per ms, continues above. */
	fs_reqid_init(&h, 0xabcd1234, 1790000000000ull + 100000 / 256 + 1);
	CHECK_GT(fs_reqid_next(&h), prev);
	/* Another member never collides. */
	fs_reqid_init(&h, 0x5678, 1790000000000ull);
	CHECK_NE(fs_reqid_next(&h) >> 48, prev >> 48);
}

struct answers {
	int calls;
	int last_status;
	uint64_t last_id;
	char last_result[32];
	struct fs_wait *w; /* for re-entrant callbacks */
};

static void record(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct answers *a = arg;
	a->calls++;
	a->last_status = status;
	a->last_id = id;
	a->last_result[0] = '\0';
	if (result && len < sizeof a->last_result) {
		memcpy(a->last_result, result, len);
		a->last_result[len] = '\0';
	}
}

CHECK_TEST(trigger_answers_exactly_once)
{
	struct fs_wait w;
	struct answers a = {0};
	fs_wait_init(&w);
	CHECK_EQ(fs_wait_register(&w, 7, 1000, record, &a), 0);
	CHECK_EQ(fs_wait_register(&w, 7, 1000, record, &a), -EEXIST);
	CHECK(fs_wait_is_registered(&w, 7));
	CHECK_EQ(fs_wait_trigger(&w, 8, 0, NULL, 0), -ENOENT); /* proposed on another member */
	CHECK_EQ(fs_wait_trigger(&w, 7, 0, "rev 12", 6), 0);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.last_status, 0);
	CHECK_STR_EQ(a.last_result, "rev 12");
	CHECK_EQ(fs_wait_trigger(&w, 7, 0, NULL, 0), -ENOENT);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(w.count, 0);
	fs_wait_fail_all(&w, -ECANCELED);
}

CHECK_TEST(deadlines_time_out_and_shutdown_fails_the_rest)
{
	struct fs_wait w;
	struct answers a = {0}, b = {0};
	fs_wait_init(&w);
	for (uint64_t id = 1; id <= 10000; id++)
		CHECK_EQ(fs_wait_register(&w, id, id <= 6000 ? 100 : 200, record, &a), 0);
	CHECK_EQ(fs_wait_register(&w, 99999, 300, record, &b), 0);
	CHECK_EQ(fs_wait_expire(&w, 99), 0);
	CHECK_EQ(fs_wait_expire(&w, 100), 6000);
	CHECK_EQ(a.calls, 6000);
	CHECK_EQ(a.last_status, -ETIMEDOUT);
	CHECK(!fs_wait_is_registered(&w, 6000));
	CHECK(fs_wait_is_registered(&w, 6001));
	CHECK_EQ(fs_wait_trigger(&w, 6001, 0, NULL, 0), 0);
	CHECK_EQ(fs_wait_expire(&w, 250), 3999);
	CHECK_EQ(a.calls, 10000);
	fs_wait_fail_all(&w, -ECANCELED);
	CHECK_EQ(b.calls, 1);
	CHECK_EQ(b.last_status, -ECANCELED);
	CHECK_EQ(w.count, 0);
}

static void reenter(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct answers *a = arg;
	record(arg, id, status, result, len);
	/* A timed-out proposer retries with a new id, and a neighbour is answered meanwhile. */
	if (id == 1) {
		CHECK_EQ(fs_wait_register(a->w, 100, 500, record, a), 0);
		CHECK_EQ(fs_wait_trigger(a->w, 2, 0, NULL, 0), 0);
	}
}

CHECK_TEST(callbacks_may_reenter)
{
	struct fs_wait w;
	struct answers a = {.w = &w};
	fs_wait_init(&w);
	CHECK_EQ(fs_wait_register(&w, 1, 10, reenter, &a), 0);
	CHECK_EQ(fs_wait_register(&w, 2, 10, record, &a), 0);
	CHECK_EQ(fs_wait_register(&w, 3, 10, record, &a), 0);
	CHECK_EQ(fs_wait_expire(&w, 10), 2); /* 1 and 3 timed out; 2 was answered by 1's callback */
	CHECK_EQ(a.calls, 3);
	CHECK(fs_wait_is_registered(&w, 100));
	fs_wait_fail_all(&w, -ECANCELED);
	CHECK_EQ(a.calls, 4);
}

CHECK_SUITE("member-wait", CHECK_CASE(request_ids_increase_and_carry_the_member),
	    CHECK_CASE(trigger_answers_exactly_once),
	    CHECK_CASE(deadlines_time_out_and_shutdown_fails_the_rest),
	    CHECK_CASE(callbacks_may_reenter))
