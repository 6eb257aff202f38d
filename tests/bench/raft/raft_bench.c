/*
 * raft_bench.c: how fast the raft core commits when nothing else costs anything.
 *
 * An in-memory 3-member cluster (memory storage, messages handed from one member to another as
 * structs, no I/O) commits 128-byte proposals made in batches on the leader. Prints
 *   raft_commit_entries_per_s: N     entries applied on the leader per second of wall time
 *   raft_allocs_per_entry: X         malloc/calloc/realloc calls per committed entry, all members
 * Allocations are counted by interposing the allocator in this binary (glibc's __libc_* entry points).
 *
 *   raft-bench [entries] [batch]     defaults: 2000000 entries in batches of 512
 */
#include "raft.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- counting allocator ---- */

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static unsigned long long allocs;

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
	allocs++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	allocs++;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	allocs++;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

/* ---- cluster ---- */

#define N 3

struct member {
	struct raft *r;
	struct raft_memory_storage *ms;
	struct raft_storage st;
	uint64_t applied;
};

static struct member m[N];
static uint64_t leader_applied;

static void deliver(const struct raft_message *msg)
{
	if (msg->to < 1 || msg->to > N)
		return;
	raft_step(m[msg->to - 1].r, msg);
}

/* One Ready of member i: persist, send (delivering in place), apply, advance. */
static int ready_once(int i)
{
	struct member *x = &m[i];
	if (!raft_has_ready(x->r))
		return 0;
	struct raft_ready rd;
	if (raft_ready(x->r, &rd) != 0) {
		fprintf(stderr, "ready failed\n");
		exit(1);
	}
	if (rd.has_snapshot)
		raft_memory_storage_apply_snapshot(x->ms, &rd.snapshot);
	if (rd.n_entries)
		raft_memory_storage_append(x->ms, rd.entries, rd.n_entries);
	if (rd.has_hard_state)
		raft_memory_storage_set_hard_state(x->ms, &rd.hard_state);
	for (size_t k = 0; k < rd.n_messages; k++)
		deliver(&rd.messages[k]);
	for (size_t k = 0; k < rd.n_committed_entries; k++) {
		x->applied = rd.committed_entries[k].index;
		if (i == 0 && rd.committed_entries[k].len == 128)
			leader_applied++;
	}
	size_t applied_now = rd.n_committed_entries;
	raft_advance(x->r, &rd);
	/* Keep memory flat: compact what everyone applied long ago. */
	if (x->applied > 100000 && x->applied % 65536 < applied_now)
		raft_memory_storage_compact(x->ms, x->applied - 50000);
	return 1;
}

static void stabilize(void)
{
	int busy = 1;
	while (busy) {
		busy = 0;
		for (int i = 0; i < N; i++)
			busy |= ready_once(i);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : 2000000;
	uint64_t batch = argc > 2 ? strtoull(argv[2], NULL, 0) : 512;
	struct raft_conf_state cs = {.voters = {1, 2, 3}, .n_voters = 3};
	for (int i = 0; i < N; i++) {
		m[i].ms = raft_memory_storage_new();
		raft_memory_storage_bootstrap(m[i].ms, &cs);
		raft_memory_storage_bind(m[i].ms, &m[i].st);
		struct raft_config cfg = {
			.id = (uint64_t)i + 1,
			.election_tick = 10,
			.heartbeat_tick = 1,
			.max_size_per_msg = 1 << 20,
			.max_inflight_msgs = 256,
			.pre_vote = 1,
			.check_quorum = 1,
			.seed = 42,
		};
		if (raft_new(&cfg, &m[i].st, &m[i].r) != 0) {
			fprintf(stderr, "raft_new failed\n");
			return 1;
		}
	}
	stabilize(); /* applies the bootstrap entries: no campaign while conf changes are unapplied */
	raft_campaign(m[0].r);
	stabilize();
	struct raft_status st;
	raft_status(m[0].r, &st);
	if (st.soft_state.state != RAFT_LEADER) {
		fprintf(stderr, "member 1 did not become leader\n");
		return 1;
	}
	uint8_t payload[128];
	memset(payload, 'x', sizeof payload);
	unsigned long long a0 = allocs;
	double t0 = now_s();
	uint64_t proposed = 0;
	while (leader_applied < total) {
		for (uint64_t k = 0; k < batch && proposed < total; k++, proposed++) {
			memcpy(payload, &proposed, sizeof proposed);
			if (raft_propose(m[0].r, payload, sizeof payload) != 0) {
				fprintf(stderr, "propose failed\n");
				return 1;
			}
		}
		stabilize();
	}
	double dt = now_s() - t0;
	unsigned long long da = allocs - a0;
	printf("raft_commit_entries_per_s: %.0f\n", (double)leader_applied / dt);
	printf("raft_allocs_per_entry: %.3f\n", (double)da / (double)leader_applied);
	printf("raft_bench_entries: %" PRIu64 "\n", leader_applied);
	printf("raft_bench_batch: %" PRIu64 "\n", batch);
	for (int i = 0; i < N; i++) {
		raft_free(m[i].r);
		raft_memory_storage_free(m[i].ms);
	}
	return 0;
}
