/*
 * test_member.c: members of a 3-member cluster in one process, each with its own data dir, WAL and
 * loopback peer port, applying to a small test state machine: election and commit, restart from
 * the data dir, a lagging member caught up by snapshot, quorum loss and heal, leadership handed over
 * on stop, proposals refused while apply lags commit. (Crashes of separate processes are the e2e
 * suite's.)
 */
#include "check.h"
#include "common/common.h"
#include "member/member.h"
#include "member/transport.h"
#include "raft.h"
#include "wal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 3       /* the initial members */
#define N_MAX 4   /* and one that can join */

#define TSM_MAX 8192

/* The test state machine: every applied request, in order. */
struct tsm {
	char items[TSM_MAX][16]; /* applied payloads, as strings */
	int count;
};

/*
 * A proposal made from inside the first apply on member `member` once armed: what a proposer sees
 * while that member applies a batch, with the backlog (commit - applied) it had then.
 */
struct apply_probe {
	int armed, member;
	uint64_t backlog;
	int done, status;
};

static struct apply_probe P;
static void probe_from_apply(struct apply_probe *p);

static int tsm_apply(void *ud, uint64_t index, const uint8_t *req, size_t len, void **result,
		     size_t *rlen)
{
	struct tsm *s = ud;
	probe_from_apply(&P);
	if (len >= sizeof s->items[0] || s->count == TSM_MAX)
		return -EINVAL;
	memcpy(s->items[s->count], req, len);
	s->items[s->count][len] = '\0';
	s->count++;
	char *r = malloc(32);
	*rlen = (size_t)snprintf(r, 32, "applied at %" PRIu64, index);
	*result = r;
	return 0;
}

static int tsm_snapshot(void *ud, uint8_t **image, size_t *len)
{
	struct tsm *s = ud;
	*len = sizeof s->count + (size_t)s->count * sizeof s->items[0];
	*image = malloc(*len);
	memcpy(*image, &s->count, sizeof s->count);
	memcpy(*image + sizeof s->count, s->items, (size_t)s->count * sizeof s->items[0]);
	return 0;
}

static int tsm_restore(void *ud, const uint8_t *image, size_t len)
{
	struct tsm *s = ud;
	int count;
	if (len < sizeof count)
		return -EINVAL;
	memcpy(&count, image, sizeof count);
	if (count < 0 || count > TSM_MAX || len != sizeof count + (size_t)count * sizeof s->items[0])
		return -EINVAL;
	s->count = count;
	memcpy(s->items, image + sizeof count, (size_t)count * sizeof s->items[0]);
	return 0;
}

struct cluster {
	uv_loop_t loop;
	char root[64];
	struct fs_member_config cfg[N_MAX];
	struct fs_member *m[N_MAX];
	struct tsm sm[N_MAX];
	int stopped[N_MAX];   /* not running (never started, or stopped) */
	int removed[N_MAX];   /* on_removed ran */
	int syncs[N_MAX];     /* on_sync ran so often */
	uint64_t snapshot_count;
	uint64_t timeout_ms;
};

static struct cluster C;

/* Answers of proposals made by the tests. */
struct answer {
	int done;
	int status;
	char result[64];
};

static void on_answer(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct answer *a = arg;
	a->done = 1;
	a->status = status;
	snprintf(a->result, sizeof a->result, "%.*s", (int)len, result ? (const char *)result : "");
}

static void on_tick_noop(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop until pred() or ms pass. */
static int run_until(int (*pred)(void *), void *arg, int ms)
{
	uv_timer_t tick;
	uv_timer_init(&C.loop, &tick);
	uv_timer_start(&tick, on_tick_noop, 5, 5);
	uint64_t deadline = uv_now(&C.loop) + (uint64_t)ms;
	int ok;
	while (!(ok = pred(arg)) && uv_now(&C.loop) < deadline)
		uv_run(&C.loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&C.loop, UV_RUN_NOWAIT);
	return ok;
}

static int answered(void *arg)
{
	return ((struct answer *)arg)->done;
}

static int leader_of(void)
{
	for (int i = 0; i < N; i++) {
		if (C.stopped[i])
			continue;
		struct fs_member_status st;
		fs_member_status(C.m[i], &st);
		if (st.is_leader)
			return i;
	}
	return -1;
}

static int has_leader(void *arg)
{
	(void)arg;
	int l = leader_of();
	if (l < 0)
		return 0;
	/* every running member knows it */
	struct fs_member_status lst;
	fs_member_status(C.m[l], &lst);
	for (int i = 0; i < N; i++) {
		struct fs_member_status st;
		if (C.stopped[i])
			continue;
		fs_member_status(C.m[i], &st);
		if (st.leader != lst.id)
			return 0;
	}
	return 1;
}

static void on_removed(void *arg)
{
	*(int *)arg = 1;
}

static void on_sync(void *arg) /* arg: &C.removed[i], the options' one argument */
{
	C.syncs[(int *)arg - C.removed]++;
}

static void member_start(int i)
{
	struct fs_state_machine sm = {&C.sm[i], tsm_apply, tsm_snapshot, tsm_restore};
	struct fs_member_options opt = {.request_timeout_ms = C.timeout_ms,
					.catchup_entries = 5,
					.snapshot_fork = 1, /* memberd (crash tests) snapshots on the loop */
					.on_removed = on_removed,
					.on_sync = on_sync,
					.arg = &C.removed[i]};
	memset(&C.sm[i], 0, sizeof C.sm[i]);
	CHECK_EQ(fs_member_start(&C.m[i], &C.loop, &C.cfg[i], &opt, &sm), 0);
	C.stopped[i] = 0;
}

static void cluster_start(uint64_t snapshot_count, uint64_t timeout_ms)
{
	if (getenv("RAFTFS_TEST_DEBUG"))
		fs_log_setup(FS_LOG_DEBUG, NULL);
	memset(&C, 0, sizeof C);
	uv_loop_init(&C.loop);
	strcpy(C.root, "/tmp/rfs-member-XXXXXX");
	CHECK(mkdtemp(C.root) != NULL);
	C.snapshot_count = snapshot_count;
	C.timeout_ms = timeout_ms;
	char cluster[256] = "", joined[256];
	int ports[N_MAX];
	for (int i = 0; i < N_MAX; i++) {
		/* a free port: bind to 0 through a throwaway transport-free socket */
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t sl = sizeof sa;
		CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
		getsockname(fd, (struct sockaddr *)&sa, &sl);
		ports[i] = ntohs(sa.sin_port);
		close(fd);
		if (i == N)
			strcpy(joined, cluster); /* what the cluster was made of */
		snprintf(cluster + strlen(cluster), sizeof cluster - strlen(cluster),
			 "%sn%d=127.0.0.1:%d", i ? "," : "", i + 1, ports[i]);
	}
	for (int i = 0; i < N_MAX; i++) {
		struct fs_member_config *c = &C.cfg[i];
		char name[8], dir[128], hb[8];
		snprintf(name, sizeof name, "n%d", i + 1);
		snprintf(dir, sizeof dir, "%s/n%d", C.root, i + 1);
		fs_config_defaults(c);
		CHECK_EQ(fs_config_flag(c, "--name", name, stderr), 1);
		CHECK_EQ(fs_config_flag(c, "--data-dir", dir, stderr), 1);
		/* The fourth joins later, as etcd's `member add` tells it to: all four, existing. */
		CHECK_EQ(fs_config_flag(c, "--initial-cluster", i < N ? joined : cluster, stderr), 1);
		if (i == N)
			CHECK_EQ(fs_config_flag(c, "--initial-cluster-state", "existing", stderr), 1);
		CHECK_EQ(fs_config_flag(c, "--heartbeat-interval", "10", stderr), 1);
		CHECK_EQ(fs_config_flag(c, "--election-timeout", "100", stderr), 1);
		snprintf(hb, sizeof hb, "%" PRIu64, snapshot_count);
		CHECK_EQ(fs_config_flag(c, "--snapshot-count", hb, stderr), 1);
		CHECK_EQ(fs_config_finish(c, stderr), 0);
	}
	C.stopped[N] = 1;
	for (int i = 0; i < N; i++)
		member_start(i);
}

static int stopped_flag;

static void on_stopped(void *arg)
{
	(*(int *)arg)++;
}

static void member_stop(int i)
{
	int before = stopped_flag;
	fs_member_stop(C.m[i], on_stopped, &stopped_flag);
	int want = before + 1;
	uint64_t deadline = uv_now(&C.loop) + 5000;
	while (stopped_flag < want && uv_now(&C.loop) < deadline)
		uv_run(&C.loop, UV_RUN_ONCE);
	CHECK_EQ(stopped_flag, want);
	C.m[i] = NULL;
	C.stopped[i] = 1;
}

static void cluster_stop(void)
{
	for (int i = 0; i < N_MAX; i++)
		if (!C.stopped[i])
			member_stop(i);
	uv_run(&C.loop, UV_RUN_NOWAIT);
	CHECK_EQ(uv_loop_close(&C.loop), 0);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", C.root);
	CHECK_EQ(system(cmd), 0);
}

/* Proposes "v<k>" through member i and waits for the answer. */
static int put(int i, int k, struct answer *a)
{
	char req[16];
	int len = snprintf(req, sizeof req, "v%d", k);
	memset(a, 0, sizeof *a);
	CHECK_EQ(fs_member_propose(C.m[i], req, (size_t)len, on_answer, a), 0);
	CHECK(run_until(answered, a, (int)C.timeout_ms + 2000));
	return a->status;
}

static void on_probe_answer(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct apply_probe *p = arg;
	p->done = 1;
	p->status = status;
}

static void probe_from_apply(struct apply_probe *p)
{
	if (!p->armed || !C.m[p->member])
		return;
	struct fs_member_status st;
	fs_member_status(C.m[p->member], &st);
	p->backlog = st.commit - st.applied;
	if (p->backlog <= FS_MAX_APPLY_BACKLOG)
		return; /* the leader's first append after the cut may carry one entry (probing) */
	p->armed = 0;
	CHECK_EQ(fs_member_propose(C.m[p->member], "probe", 5, on_probe_answer, p), 0);
}

/* Proposes "v<from>".."v<from+n-1>" through member i, 64 at a time, each answered with 0. */
static void put_many(int i, int from, int n)
{
	struct answer *a = calloc((size_t)n, sizeof *a);
	char req[16];
	CHECK(a != NULL);
	for (int next = 0, done = 0; done < n; done++) {
		for (; next < n && next - done < 64; next++) {
			int len = snprintf(req, sizeof req, "v%d", from + next);
			CHECK_EQ(fs_member_propose(C.m[i], req, (size_t)len, on_answer, &a[next]), 0);
		}
		CHECK(run_until(answered, &a[done], (int)C.timeout_ms + 2000));
		CHECK_EQ(a[done].status, 0);
	}
	free(a);
}

struct applied_at_least {
	int member, count;
};

static int applied_count(void *arg)
{
	struct applied_at_least *w = arg;
	return C.sm[w->member].count >= w->count;
}

static void check_same_history(int a, int b)
{
	CHECK_EQ(C.sm[a].count, C.sm[b].count);
	for (int i = 0; i < C.sm[a].count; i++)
		CHECK_STR_EQ(C.sm[a].items[i], C.sm[b].items[i]);
}

/* Cuts member x off from every other member (blocked 1), or heals that partition (0). */
static void partition(int x, int blocked)
{
	struct fs_member_status sx, si;
	fs_member_status(C.m[x], &sx);
	for (int i = 0; i < N; i++) {
		if (i == x)
			continue;
		fs_member_status(C.m[i], &si);
		fs_member_block_peer(C.m[x], si.id, blocked);
		fs_member_block_peer(C.m[i], sx.id, blocked);
	}
}

CHECK_TEST(three_members_elect_and_commit)
{
	cluster_start(10000, 3000);
	CHECK(run_until(has_leader, NULL, 5000));
	struct answer a;
	int syncs[N_MAX];
	memcpy(syncs, C.syncs, sizeof syncs);
	for (int k = 0; k < 30; k++) {
		CHECK_EQ(put(k % N, k, &a), 0);
		CHECK(strncmp(a.result, "applied at ", 11) == 0);
	}
	for (int i = 0; i < N; i++) {
		struct applied_at_least w = {i, 30};
		CHECK(run_until(applied_count, &w, 3000));
	}
	/*
	 * Members tell their owner when they begin syncing their WAL (the replay of inotify events
	 * waits for that moment): the leader once for each of these 30 one-at-a-time puts, and the
	 * followers together once for each as well (the follower that made a put's quorum synced it
	 * before the next put was made; the other may be slow and sync two puts at once).
	 */
	int leader = leader_of(), followers = 0;
	CHECK_GE(leader, 0);
	for (int i = 0; i < N; i++)
		if (i != leader)
			followers += C.syncs[i] - syncs[i];
	CHECK_GE(C.syncs[leader] - syncs[leader], 30);
	CHECK_GE(followers, 30);
	check_same_history(0, 1);
	check_same_history(0, 2);
	CHECK_STR_EQ(C.sm[2].items[29], "v29");
	cluster_stop();
}

CHECK_TEST(restart_replays_snapshot_and_wal)
{
	cluster_start(7, 3000); /* snapshots every 7 entries: both paths of recovery */
	CHECK(run_until(has_leader, NULL, 5000));
	struct answer a;
	for (int k = 0; k < 25; k++)
		CHECK_EQ(put(0, k, &a), 0);
	struct applied_at_least w = {2, 25};
	CHECK(run_until(applied_count, &w, 3000));
	struct tsm before = C.sm[2];
	member_stop(2);
	/*
	 * A snapshot file the WAL never recorded (the member stopped between the two) is set aside
	 * at restart, and the one before it used.
	 */
	char snapdir[4200], fake[4300];
	void *data = NULL;
	size_t len = 0;
	uint64_t term = 0, index = 0;
	snprintf(snapdir, sizeof snapdir, "%s/member/snap", C.cfg[2].data_dir);
	CHECK_EQ(wal_snap_load(snapdir, &data, &len, &term, &index), 0);
	CHECK_EQ(wal_snap_save(snapdir, term, index + 1000, data, len), 0);
	free(data);
	snprintf(fake, sizeof fake, "%s/%016" PRIx64 "-%016" PRIx64 ".snap.unrecorded", snapdir,
		 term, index + 1000);
	member_start(2); /* a fresh state machine: everything comes from the data dir */
	CHECK_EQ(access(fake, F_OK), 0);
	CHECK(run_until(applied_count, &w, 5000));
	CHECK_EQ(C.sm[2].count, before.count);
	for (int i = 0; i < before.count; i++)
		CHECK_STR_EQ(C.sm[2].items[i], before.items[i]);
	/* and it goes on taking part */
	CHECK_EQ(put(2, 99, &a), 0);
	w.count = 26;
	CHECK(run_until(applied_count, &w, 3000));
	CHECK_STR_EQ(C.sm[2].items[25], "v99");
	cluster_stop();
}

/* The log goes to a file for a test to count lines in (log_capture .. log_release). */
static char log_path[128];
static int log_old_fd = -1;

static void log_capture(void)
{
	snprintf(log_path, sizeof log_path, "/tmp/rfs-member-log-%d", (int)getpid());
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	log_old_fd = fs_log_set_fd(fd);
}

static void log_release(void)
{
	close(fs_log_set_fd(log_old_fd));
	unlink(log_path);
}

/* Lines of the captured log that contain needle. */
static int log_lines(const char *needle)
{
	FILE *f = fopen(log_path, "r");
	char line[2048];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* Lines saying a snapshot to member i was sent (streamed whole and acknowledged). */
static int sends_to(int i)
{
	char needle[64];
	snprintf(needle, sizeof needle, "snapshot to %016" PRIx64 ": sent", C.cfg[i].self_id);
	return log_lines(needle);
}

/* Whether member *arg has started streaming a snapshot. */
static int streaming_from(void *arg)
{
	struct fs_member_status st;
	fs_member_status(C.m[*(int *)arg], &st);
	return st.snapshots_sent > 0;
}

/*
 * A cluster snapshotting every 10 entries whose follower (returned) was stopped while the leader
 * (*l) applied 60 puts: the log is compacted past what the follower has, so it needs a snapshot.
 */
static int follower_left_behind(int *l)
{
	cluster_start(10, 3000);
	CHECK(run_until(has_leader, NULL, 5000));
	*l = leader_of();
	int f = (*l + 1) % N;
	member_stop(f);
	struct answer a;
	for (int k = 0; k < 60; k++)
		CHECK_EQ(put(*l, k, &a), 0);
	return f;
}

CHECK_TEST(lagging_member_catches_up_by_snapshot)
{
	int l, f = follower_left_behind(&l);
	member_start(f);
	struct applied_at_least w = {f, 60};
	CHECK(run_until(applied_count, &w, 10000));
	check_same_history(l, f);
	cluster_stop();
}

static int never(void *arg)
{
	(void)arg;
	return 0;
}

/*
 * Whether member *arg owes no snapshot: its newest is at its applied index, or fewer than the
 * snapshot count entries were applied since it. An idle member that owes one takes it at its
 * applied index within a moment, however slow the machine; a fixed wait for it is not enough.
 */
static int snapshot_settled(void *arg)
{
	struct fs_member_status st;
	fs_member_status(C.m[*(int *)arg], &st);
	return st.snapshot_index == st.applied || st.applied < st.snapshot_index + C.snapshot_count;
}

/*
 * A leader builds a follower's snapshot when the follower needs it, at the applied index then
 * (etcd's merged snapshot), from its newest snapshot file when that is already there: an idle
 * leader whose newest file is at its applied index streams that file and takes no other.
 */
CHECK_TEST(snapshot_for_a_follower_is_the_newest_file_at_the_applied_index)
{
	log_capture();
	int l, f = follower_left_behind(&l);
	struct answer a;
	int k = 60;
	struct fs_member_status st;
	for (;;) { /* puts until the leader's newest snapshot is at its applied index */
		CHECK(run_until(snapshot_settled, &l, 20000));
		fs_member_status(C.m[l], &st);
		if (st.snapshot_index == st.applied)
			break;
		CHECK_LT(k, 100);
		CHECK_EQ(put(l, k++, &a), 0);
	}
	uint64_t newest = st.snapshot_index;
	CHECK_EQ(newest, st.applied);
	member_start(f);
	struct applied_at_least w = {f, k};
	CHECK(run_until(applied_count, &w, 10000));
	char needle[128];
	snprintf(needle, sizeof needle, "snapshot to %016" PRIx64 ": streaming the one at index %"
		 PRIu64 " ", C.cfg[f].self_id, newest);
	CHECK_EQ(log_lines(needle), 1);
	CHECK_EQ(sends_to(f), 1);
	fs_member_status(C.m[l], &st);
	CHECK_EQ(st.snapshot_index, newest); /* no other taken for it */
	fs_member_status(C.m[f], &st);
	CHECK_EQ(st.snapshot_index, newest);
	check_same_history(l, f);
	cluster_stop();
	log_release();
}

CHECK_TEST(quorum_lost_times_out_then_heals)
{
	cluster_start(10000, 500);
	CHECK(run_until(has_leader, NULL, 5000));
	int l = leader_of();
	/* Cut the leader off from both others. */
	partition(l, 1);
	struct answer a;
	CHECK_EQ(put(l, 1, &a), -ETIMEDOUT);
	partition(l, 0);
	CHECK(run_until(has_leader, NULL, 5000));
	CHECK_EQ(put(l, 2, &a), 0);
	cluster_stop();
}

CHECK_TEST(stopping_leader_hands_over)
{
	cluster_start(10000, 3000);
	CHECK(run_until(has_leader, NULL, 5000));
	int l = leader_of();
	struct answer a;
	CHECK_EQ(put(l, 1, &a), 0);
	member_stop(l);
	/* A new leader among the two left, quickly: no election timeout to sit out. */
	CHECK(run_until(has_leader, NULL, 2000));
	CHECK_NE(leader_of(), l);
	CHECK_EQ(put(leader_of(), 2, &a), 0);
	cluster_stop();
}

struct flag_set {
	int *flag;
};

static int flag_is_set(void *arg)
{
	return *((struct flag_set *)arg)->flag;
}

static void change(int via, enum fs_member_change_type type, int who, struct answer *a)
{
	memset(a, 0, sizeof *a);
	CHECK_EQ(fs_member_change(C.m[via], type, C.cfg[who].self_id, C.cfg[who].name,
				  C.cfg[who].listen_peer, on_answer, a),
		 0);
}

CHECK_TEST(learner_joins_is_promoted_and_removed_while_writing)
{
	cluster_start(10000, 3000);
	CHECK(run_until(has_leader, NULL, 5000));
	int l = leader_of(), k = 0;
	struct answer a, b;
	for (; k < 10; k++)
		CHECK_EQ(put(k % N, k, &a), 0);

	/* malformed additions are refused before anything is proposed */
	CHECK_EQ(fs_member_change(C.m[l], FS_MEMBER_ADD_LEARNER, 77, "n9", "", on_answer, &a),
		 -EINVAL);
	CHECK_EQ(fs_member_change(C.m[l], FS_MEMBER_ADD_LEARNER, 77, "n9", "nohostport", on_answer,
				  &a), -EINVAL);
	CHECK_EQ(fs_member_change(C.m[l], FS_MEMBER_ADD_VOTER, 77, "n1", "127.0.0.1:9", on_answer,
				  &a), -EEXIST);
	change(l, FS_MEMBER_ADD_LEARNER, N, &a);
	CHECK(run_until(answered, &a, 5000));
	CHECK_EQ(a.status, 0);
	member_start(N); /* fresh data dir, --initial-cluster-state existing */
	for (; k < 20; k++)
		CHECK_EQ(put(k % N, k, &a), 0);
	/* each put answered once its own proposer applied it: the others may still be applying */
	struct applied_at_least w = {N, 20}, w0 = {0, 20};
	CHECK(run_until(applied_count, &w, 10000));
	CHECK(run_until(applied_count, &w0, 10000));
	check_same_history(0, N);
	struct fs_member_status st;
	fs_member_status(C.m[l], &st);
	CHECK_EQ(st.n_learners, 1);
	CHECK_EQ(st.n_voters, 3);
	fs_member_status(C.m[N], &st);
	CHECK_EQ_U64(st.cluster_id, C.cfg[0].cluster_id); /* learned from its peers */

	/* Promote; a second change while the first is pending is refused. */
	change(l, FS_MEMBER_ADD_VOTER, N, &a);
	change(l, FS_MEMBER_REMOVE, N, &b);
	CHECK(run_until(answered, &a, 5000));
	CHECK(run_until(answered, &b, 5000));
	CHECK_EQ(a.status, 0);
	CHECK_EQ(b.status, RAFT_ECONFPENDING);
	fs_member_status(C.m[l], &st);
	CHECK_EQ(st.n_voters, 4);
	CHECK_EQ(st.n_learners, 0);
	for (; k < 25; k++)
		CHECK_EQ(put(N, k, &a), 0); /* the new voter proposes too */

	/* Remove it: it hears so, and the others go on without it. */
	l = leader_of();
	change(l == N ? 0 : l, FS_MEMBER_REMOVE, N, &a);
	CHECK(run_until(answered, &a, 5000));
	CHECK_EQ(a.status, 0);
	CHECK(run_until(has_leader, NULL, 5000));
	int l2 = leader_of();
	CHECK_NE(l2, N);
	for (; k < 30; k++)
		CHECK_EQ(put(l2, k, &a), 0);
	struct flag_set removed = {&C.removed[N]};
	CHECK(run_until(flag_is_set, &removed, 5000)); /* the removed member was told */
	fs_member_status(C.m[l2], &st);
	CHECK_EQ(st.n_voters, 3);
	cluster_stop();
}

/* A read barrier's answer, and what the member had applied when it came. */
struct read {
	struct answer a;
	int member;
	int applied_then;
};

static void on_read(void *arg, uint64_t id, int status, const void *r, size_t len)
{
	struct read *rd = arg;
	rd->a.done = 1;
	rd->a.status = status;
	rd->applied_then = C.sm[rd->member].count;
}

static void read_barrier(int i, struct read *rd)
{
	memset(rd, 0, sizeof *rd);
	rd->member = i;
	rd->applied_then = -1;
	CHECK_EQ(fs_member_read_barrier(C.m[i], on_read, rd), 0);
	CHECK(run_until(answered, &rd->a, 3000));
}

CHECK_TEST(read_barrier_sees_every_acknowledged_write)
{
	cluster_start(10000, 500);
	CHECK(run_until(has_leader, NULL, 5000));
	struct answer a;
	for (int k = 0; k < 12; k++)
		CHECK_EQ(put(0, k, &a), 0);
	struct read rd;
	for (int i = 0; i < N; i++) {
		/* Linearizable: everything acknowledged before the read is applied when it answers. */
		read_barrier(i, &rd);
		CHECK_EQ(rd.a.status, 0);
		CHECK_GE(rd.applied_then, 12);
	}
	/* A member cut off from the others cannot confirm a read. */
	int f = (leader_of() + 1) % N;
	partition(f, 1);
	read_barrier(f, &rd);
	CHECK_EQ(rd.a.status, -ETIMEDOUT);
	partition(f, 0);
	cluster_stop();
}

/*
 * Seed 000: when committed runs more than FS_MAX_APPLY_BACKLOG entries ahead of applied, proposals
 * are refused at once with FS_ETOOMANYREQUESTS (the fs answers EAGAIN), and accepted again once
 * apply has caught up. A follower cut off while the others commit more than that learns the
 * backlog as committed in one message (after, at times, a first append of one entry while the
 * leader probes it); a proposal made from inside the first apply that sees it is refused.
 */
CHECK_TEST(apply_backlog_refuses_proposals_then_recovers)
{
	cluster_start(100000, 5000);
	CHECK(run_until(has_leader, NULL, 5000));
	int l = leader_of(), f = (l + 1) % N, n = FS_MAX_APPLY_BACKLOG + 1000;
	struct answer a;
	CHECK_EQ(put(l, 0, &a), 0);
	struct applied_at_least w = {f, 1};
	CHECK(run_until(applied_count, &w, 3000));
	partition(f, 1);
	put_many(l, 1, n);
	P = (struct apply_probe){.armed = 1, .member = f};
	partition(f, 0);
	w.count = n + 1;
	CHECK(run_until(applied_count, &w, 10000));
	CHECK(!P.armed);
	CHECK_GT(P.backlog, FS_MAX_APPLY_BACKLOG);
	CHECK(P.done);
	CHECK_EQ(P.status, FS_ETOOMANYREQUESTS);
	/* applied has caught up: proposals through f are accepted again */
	CHECK_EQ(put(f, n + 1, &a), 0);
	w.count = n + 2;
	CHECK(run_until(applied_count, &w, 3000));
	w.member = l;
	CHECK(run_until(applied_count, &w, 3000));
	check_same_history(l, f);
	cluster_stop();
}

/* ---- issue 23: snapshots for members that join or come back --------------------------------- */

/*
 * A cluster snapshotting every snapshot_count entries (5 kept behind each) whose leader (returned)
 * applied 60 puts and is idle: N, added (voter or learner) after the last snapshot, needs one.
 * The log is captured.
 */
static int cluster_gains_member(enum fs_member_change_type type, uint64_t snapshot_count)
{
	log_capture();
	cluster_start(snapshot_count, 3000);
	CHECK(run_until(has_leader, NULL, 5000));
	int l = leader_of();
	struct answer a;
	for (int k = 0; k < 60; k++)
		CHECK_EQ(put(l, k, &a), 0);
	CHECK(run_until(snapshot_settled, &l, 20000)); /* no snapshot in flight: idle */
	change(l, type, N, &a);
	CHECK(run_until(answered, &a, 5000));
	CHECK_EQ(a.status, 0);
	return l;
}

/*
 * Issue 23: a member added (voter or learner) after the leader's last snapshot, the log compacted
 * past what it has, the cluster idle: it catches up with one snapshot, at its addition's index or
 * later, not the pre-addition one again and again.
 */
static void added_after_compaction(enum fs_member_change_type type)
{
	int l = cluster_gains_member(type, 10);
	struct fs_member_status st;
	fs_member_status(C.m[l], &st);
	uint64_t added_at = st.applied;
	member_start(N);
	struct applied_at_least w = {N, 60};
	CHECK(run_until(applied_count, &w, 3000));
	CHECK_EQ(sends_to(N), 1);
	fs_member_status(C.m[N], &st);
	CHECK(st.snapshot_index >= added_at);
	fs_member_status(C.m[l], &st);
	CHECK_EQ(st.snapshots_sent, 1);
	check_same_history(l, N);
	cluster_stop();
	log_release();
}

CHECK_TEST(voter_added_after_compaction_catches_up_with_one_snapshot)
{
	added_after_compaction(FS_MEMBER_ADD_VOTER);
}

CHECK_TEST(learner_added_after_compaction_catches_up_with_one_snapshot)
{
	added_after_compaction(FS_MEMBER_ADD_LEARNER);
}

/*
 * Writes go on while the new member joins (far more than the 5 entries kept behind a snapshot,
 * the next snapshot 50 entries away): the log is not compacted past the snapshot in flight, and
 * no snapshot is sent again until a newer one names the member, so one or two snapshots do.
 */
CHECK_TEST(member_added_to_a_busy_cluster_catches_up)
{
	int l = cluster_gains_member(FS_MEMBER_ADD_VOTER, 50);
	member_start(N);
	struct answer a;
	for (int k = 60; k < 260; k++) {
		CHECK_EQ(put(l, k, &a), 0);
		run_until(never, NULL, 2); /* a write every few milliseconds, for a second */
	}
	struct applied_at_least w = {N, 260};
	CHECK(run_until(applied_count, &w, 5000));
	int sends = sends_to(N);
	fprintf(stderr, "snapshot sends to the new member: %d\n", sends);
	CHECK(sends >= 1 && sends <= 2);
	check_same_history(l, N);
	cluster_stop();
	log_release();
}

/*
 * The leader stops once it has started streaming the new member's snapshot: the member catches
 * up, from that snapshot or the new leader's (two at most).
 */
CHECK_TEST(leader_stopped_during_a_snapshot_transfer)
{
	int l = cluster_gains_member(FS_MEMBER_ADD_VOTER, 10);
	member_start(N);
	CHECK(run_until(streaming_from, &l, 3000));
	member_stop(l);
	struct applied_at_least w = {N, 60};
	CHECK(run_until(applied_count, &w, 5000));
	int sends = sends_to(N);
	CHECK(sends >= 1 && sends <= 2);
	CHECK(run_until(has_leader, NULL, 5000));
	int nl = leader_of();
	struct answer a;
	CHECK_EQ(put(nl, 60, &a), 0);
	w.count = 61;
	CHECK(run_until(applied_count, &w, 3000));
	check_same_history(nl, N);
	cluster_stop();
	log_release();
}

/* A learner promoted as soon as it has caught up votes and applies like the others. */
CHECK_TEST(learner_promoted_right_after_catching_up)
{
	int l = cluster_gains_member(FS_MEMBER_ADD_LEARNER, 10);
	member_start(N);
	struct applied_at_least w = {N, 60};
	CHECK(run_until(applied_count, &w, 3000));
	struct answer a;
	change(l, FS_MEMBER_ADD_VOTER, N, &a);
	CHECK(run_until(answered, &a, 5000));
	CHECK_EQ(a.status, 0);
	struct fs_member_status st;
	fs_member_status(C.m[l], &st);
	CHECK_EQ(st.n_voters, 4);
	CHECK_EQ(st.n_learners, 0);
	for (int k = 60; k < 80; k++)
		CHECK_EQ(put(l, k, &a), 0);
	w.count = 80;
	CHECK(run_until(applied_count, &w, 3000));
	CHECK_EQ(sends_to(N), 1);
	check_same_history(l, N);
	cluster_stop();
	log_release();
}

static void on_fake_message(void *ud, uint64_t from, const uint8_t *buf, size_t len)
{
}

static void on_fake_unreachable(void *ud, uint64_t to)
{
}

struct fake_sent {
	int done, ok, reason;
};

static void on_fake_snapshot_sent(void *ud, uint64_t to, int ok, int reason)
{
	struct fake_sent *s = ud;
	*s = (struct fake_sent){1, ok, reason};
}

static int fake_sent_done(void *arg)
{
	return ((struct fake_sent *)arg)->done;
}

/*
 * A snapshot whose membership does not name the receiver is refused before raft sees it: the
 * receiver logs one line saying why and the sender hears the reason.
 */
CHECK_TEST(snapshot_not_naming_the_receiver_is_refused_with_its_reason)
{
	log_capture();
	int l, f = follower_left_behind(&l);
	struct fs_member_status st;
	fs_member_status(C.m[l], &st);
	/* The stopped follower's id and the cluster's, on a transport of the test's own. */
	struct fake_sent sent = {0};
	static const struct fs_transport_callbacks cb = {on_fake_message, on_fake_unreachable,
							 NULL, on_fake_snapshot_sent, NULL, NULL};
	struct fs_transport_config tc = {.cluster_id = st.cluster_id,
					 .self_id = C.cfg[f].self_id,
					 .listen_addr = "127.0.0.1:0"};
	struct fs_transport *t;
	CHECK_EQ(fs_transport_start(&t, &C.loop, &tc, &cb, &sent), 0);
	CHECK_EQ(fs_transport_add_peer(t, C.cfg[l].self_id, C.cfg[l].listen_peer), 0);
	struct raft_message msg = {.type = RAFT_MSG_SNAP, .to = C.cfg[l].self_id,
				   .from = C.cfg[f].self_id, .term = st.term, .has_snapshot = 1};
	msg.snapshot.meta = (struct raft_snapshot_meta){.index = st.applied + 100, .term = st.term};
	msg.snapshot.meta.conf.voters[0] = C.cfg[f].self_id;
	msg.snapshot.meta.conf.n_voters = 1;
	uint8_t head[256], data[16] = "not a snapshot";
	size_t hl = raft_message_encoded_size(&msg);
	CHECK(hl <= sizeof head);
	raft_message_encode(&msg, head);
	CHECK_EQ(fs_transport_send_snapshot(t, C.cfg[l].self_id, head, hl, data, sizeof data, NULL,
					    NULL), 0);
	CHECK(run_until(fake_sent_done, &sent, 3000));
	CHECK_EQ(sent.ok, 0);
	CHECK_EQ(sent.reason, FS_SNAP_NOT_MEMBER);
	char needle[128];
	snprintf(needle, sizeof needle, "does not include this member (%016" PRIx64 ")",
		 C.cfg[l].self_id);
	CHECK_EQ(log_lines(needle), 1);
	CHECK_EQ(log_lines("refused: the snapshot at index"), 1);
	/* The member goes on as before. */
	struct answer a;
	CHECK_EQ(put(l, 60, &a), 0);
	int closed = 0;
	fs_transport_close(t, on_stopped, &closed);
	while (!closed)
		uv_run(&C.loop, UV_RUN_ONCE);
	cluster_stop();
	log_release();
}

CHECK_SUITE("member-member", CHECK_CASE(three_members_elect_and_commit),
	    CHECK_CASE(restart_replays_snapshot_and_wal),
	    CHECK_CASE(lagging_member_catches_up_by_snapshot),
	    CHECK_CASE(snapshot_for_a_follower_is_the_newest_file_at_the_applied_index),
	    CHECK_CASE(quorum_lost_times_out_then_heals), CHECK_CASE(stopping_leader_hands_over),
	    CHECK_CASE(learner_joins_is_promoted_and_removed_while_writing),
	    CHECK_CASE(read_barrier_sees_every_acknowledged_write),
	    CHECK_CASE(apply_backlog_refuses_proposals_then_recovers),
	    CHECK_CASE(voter_added_after_compaction_catches_up_with_one_snapshot),
	    CHECK_CASE(learner_added_after_compaction_catches_up_with_one_snapshot),
	    CHECK_CASE(member_added_to_a_busy_cluster_catches_up),
	    CHECK_CASE(leader_stopped_during_a_snapshot_transfer),
	    CHECK_CASE(learner_promoted_right_after_catching_up),
	    CHECK_CASE(snapshot_not_naming_the_receiver_is_refused_with_its_reason))
