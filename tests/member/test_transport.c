/*
 * test_transport.c: the peer transport over real loopback TCP: handshake, ordered delivery,
 * refusal of other clusters and unknown members (with a log line naming both), the bounded
 * outbound queue, redial after a peer restarts, and hostile input.
 */
#include "check.h"
#include "common/common.h"
#include "member/transport.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLUSTER 0xc1c1c1c1c1c1c1c1ull

struct node {
	struct fs_transport *t;
	uint64_t id;
	int port;
	int received;           /* messages delivered */
	uint64_t last_from;     /* sender of the last one */
	int in_order;           /* every message carried the next sequence number */
	int unreachable;        /* on_unreachable calls */
	int closed;             /* the close callback ran */
	int snaps_received;     /* on_snapshot calls whose file held the expected bytes */
	int snap_rc;            /* what on_snapshot answers */
	const uint8_t *expect;  /* the data an incoming snapshot must hold */
	size_t expect_len;
	int snaps_sent_ok, snaps_sent_failed; /* on_snapshot_sent outcomes */
	int last_refusal;       /* the reason of the last failure on_snapshot_sent heard */
	char snap_dir[64];      /* incoming snapshots, when set */
	uint64_t learned;       /* the cluster id learned while joining */
	int refused_unknown;    /* peers of our cluster that did not know us */
};

static void on_message(void *ud, uint64_t from, const uint8_t *buf, size_t len)
{
	struct node *n = ud;
	int seq = -1;
	if (len >= sizeof seq)
		memcpy(&seq, buf, sizeof seq);
	if (seq != n->received)
		n->in_order = 0;
	n->received++;
	n->last_from = from;
}

static void on_unreachable(void *ud, uint64_t to)
{
	((struct node *)ud)->unreachable++;
}

static int on_snapshot(void *ud, uint64_t from, const uint8_t *msg, size_t msglen, const char *path,
		       struct fs_snap_verdict *v)
{
	struct node *n = ud;
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	uint8_t *buf = malloc(n->expect_len + 1);
	size_t got = fread(buf, 1, n->expect_len + 1, f);
	fclose(f);
	unlink(path); /* ours now */
	if (got == n->expect_len && memcmp(buf, n->expect, got) == 0 && msglen == 4 &&
	    memcmp(msg, "SNAP", 4) == 0)
		n->snaps_received++;
	free(buf);
	if (n->snap_rc)
		v->reason = FS_SNAP_NOT_MEMBER;
	return n->snap_rc;
}

static void on_snapshot_sent(void *ud, uint64_t to, int ok, int reason)
{
	struct node *n = ud;
	if (ok)
		n->snaps_sent_ok++;
	else
		n->snaps_sent_failed++;
	if (!ok)
		n->last_refusal = reason;
}

static void on_cluster_id(void *ud, uint64_t cluster_id)
{
	((struct node *)ud)->learned = cluster_id;
}

static void on_refused_unknown(void *ud, uint64_t from)
{
	((struct node *)ud)->refused_unknown++;
}

static const struct fs_transport_callbacks callbacks = {on_message, on_unreachable, on_snapshot,
							on_snapshot_sent, on_cluster_id,
							on_refused_unknown};

/* The TLS every node_start gives its node, or NULL for plaintext. */
static const struct fs_transport_tls *node_tls;

static void node_start(uv_loop_t *loop, struct node *n, uint64_t cluster, uint64_t id, int port,
		       size_t max_frames)
{
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	char dir[sizeof n->snap_dir];
	strcpy(dir, n->snap_dir);
	memset(n, 0, sizeof *n);
	strcpy(n->snap_dir, dir);
	n->id = id;
	n->in_order = 1;
	struct fs_transport_config cfg = {.cluster_id = cluster,
					  .self_id = id,
					  .listen_addr = addr,
					  .max_queue_frames = max_frames,
					  .max_frame_bytes = 1 << 20,
					  .backoff_min_ms = 5,
					  .backoff_max_ms = 50,
					  .snap_dir = n->snap_dir[0] ? n->snap_dir : NULL,
					  .tls = node_tls};
	CHECK_EQ(fs_transport_start(&n->t, loop, &cfg, &callbacks, n), 0);
	n->port = fs_transport_port(n->t);
	CHECK_GT(n->port, 0);
}

static void on_closed(void *arg)
{
	((struct node *)arg)->closed = 1;
}

static void add_peer(struct node *a, const struct node *b)
{
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", b->port);
	CHECK_EQ(fs_transport_add_peer(a->t, b->id, addr), 0);
}

static void on_tick(uv_timer_t *t)
{
	(void)t; /* only wakes the loop so the deadline is checked */
}

/* Runs the loop until *flag reaches want or ms pass; returns whether it did. */
static int run_until(uv_loop_t *loop, const int *flag, int want, int ms)
{
	uv_timer_t tick;
	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, on_tick, 2, 2);
	uint64_t deadline = uv_now(loop) + (uint64_t)ms;
	while (*flag < want && uv_now(loop) < deadline)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *flag >= want;
}

/* Members 1 and 2 of CLUSTER, each knowing the other. */
static void start_pair(uv_loop_t *loop, struct node *a, struct node *b)
{
	node_start(loop, a, CLUSTER, 1, 0, 0);
	node_start(loop, b, CLUSTER, 2, 0, 0);
	add_peer(a, b);
	add_peer(b, a);
}

static void node_stop(uv_loop_t *loop, struct node *n)
{
	fs_transport_close(n->t, on_closed, n);
	CHECK(run_until(loop, &n->closed, 1, 2000));
}

static void send_seq(struct node *from, uint64_t to, int first, int count)
{
	for (int i = first; i < first + count; i++) {
		unsigned char msg[200];
		memset(msg, 0xab, sizeof msg);
		memcpy(msg, &i, sizeof i);
		CHECK_EQ(fs_transport_send(from->t, to, msg, sizeof msg), 0);
	}
}

/* Captures log lines in a memfd; returns its fd, previous log fd in *old. */
static int capture_log(int *old)
{
	int fd = memfd_create("log", 0);
	CHECK_GE(fd, 0);
	*old = fs_log_set_fd(fd);
	return fd;
}

static char *read_log(int fd)
{
	static char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

CHECK_TEST(handshake_and_ordered_delivery)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a, b;
	start_pair(&loop, &a, &b);
	send_seq(&a, 2, 0, 1000); /* queued while the connection is being made */
	CHECK(run_until(&loop, &b.received, 1000, 5000));
	CHECK(b.in_order);
	CHECK_EQ_U64(b.last_from, 1);
	CHECK(fs_transport_connected(a.t, 2));
	send_seq(&b, 1, 0, 10);
	CHECK(run_until(&loop, &a.received, 10, 5000));
	CHECK_EQ_U64(a.last_from, 2);
	CHECK_EQ(a.unreachable, 0);
	CHECK_EQ(fs_transport_send(a.t, 99, "x", 1), -ENOENT);
	node_stop(&loop, &a);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0); /* every handle closed */
}

static void refused_case(uint64_t intruder_cluster, uint64_t intruder_id, const char *why)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int old, logfd = capture_log(&old);
	struct node b, x;
	node_start(&loop, &b, CLUSTER, 2, 0, 0);
	node_start(&loop, &x, intruder_cluster, intruder_id, 0, 0);
	/* b knows member 1 only; x dials b claiming to be intruder_id. */
	CHECK_EQ(fs_transport_add_peer(b.t, 1, "127.0.0.1:9"), 0);
	add_peer(&x, &b);
	send_seq(&x, 2, 0, 5);
	int never = 0;
	run_until(&loop, &never, 1, 300);
	fs_log_set_fd(old);
	char *log = read_log(logfd);
	close(logfd);
	CHECK_EQ(b.received, 0);
	CHECK(!fs_transport_connected(x.t, 2));
	char want[256];
	snprintf(want, sizeof want,
		 "refused peer connection from member %016llx of cluster %016llx: %s (this is "
		 "member 0000000000000002 of cluster %016llx)",
		 (unsigned long long)intruder_id, (unsigned long long)intruder_cluster, why,
		 (unsigned long long)CLUSTER);
	if (!strstr(log, want))
		CHECK_FAIL("log lacks \"%s\":\n%s", want, log);
	CHECK(strstr(log, "refused us") != NULL); /* and the intruder says why it was refused */
	/* only a peer of its own cluster not knowing it hints that it was removed */
	if (intruder_cluster == CLUSTER)
		CHECK_GE(x.refused_unknown, 1);
	else
		CHECK_EQ(x.refused_unknown, 0);
	node_stop(&loop, &x);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

CHECK_TEST(member_of_another_cluster_is_refused)
{
	refused_case(0xdeadbeefull, 1, "member of another cluster");
}

CHECK_TEST(unknown_member_is_refused)
{
	refused_case(CLUSTER, 77, "unknown member id");
}

CHECK_TEST(joining_member_learns_the_cluster_id)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a, b;
	node_start(&loop, &a, 0, 1, 0, 0); /* joining: cluster id unknown */
	node_start(&loop, &b, CLUSTER, 2, 0, 0);
	add_peer(&a, &b);
	add_peer(&b, &a); /* b's cluster added member 1 */
	send_seq(&a, 2, 0, 3);
	CHECK(run_until(&loop, &b.received, 3, 5000));
	CHECK_EQ_U64(a.learned, CLUSTER);
	send_seq(&b, 1, 0, 2);
	CHECK(run_until(&loop, &a.received, 2, 5000));
	node_stop(&loop, &a);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

CHECK_TEST(full_queue_drops_and_reports_unreachable)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a, gone;
	node_start(&loop, &gone, CLUSTER, 2, 0, 0);
	int port = gone.port;
	node_stop(&loop, &gone); /* nobody listens on port any more */
	node_start(&loop, &a, CLUSTER, 1, 0, 4);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	CHECK_EQ(fs_transport_add_peer(a.t, 2, addr), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(fs_transport_send(a.t, 2, "m", 1), i < 4 ? 0 : -ENOBUFS);
	CHECK_EQ(a.unreachable, 6);
	/* The dial fails: the queue is dropped and the peer reported once more. */
	CHECK(run_until(&loop, &a.unreachable, 7, 2000));
	node_stop(&loop, &a);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

CHECK_TEST(redials_a_restarted_peer)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a, b;
	start_pair(&loop, &a, &b);
	send_seq(&a, 2, 0, 3);
	CHECK(run_until(&loop, &b.received, 3, 5000));
	int port = b.port;
	node_stop(&loop, &b);
	node_start(&loop, &b, CLUSTER, 2, port, 0); /* same member, same port, new process */
	add_peer(&b, &a);
	/* Keep sending as raft would (it retransmits); some are lost while a redials. */
	for (int round = 0; round < 200 && b.received == 0; round++) {
		fs_transport_send(a.t, 2, "hb", 2);
		int never = 0;
		run_until(&loop, &never, 1, 10);
	}
	CHECK_GT(b.received, 0);
	CHECK_EQ_U64(b.last_from, 1);
	node_stop(&loop, &a);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A raw client socket connected to port. */
static int raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Writes a valid handshake of kind (1 messages, 5 a snapshot) from member 1 to member 2. */
static void raw_hello(int fd, int kind)
{
	unsigned char hello[5 + 32] = {32, 0, 0, 0, (unsigned char)kind, 'R', 'A', 'F', 'T', 'F',
				       'S', '0', '1'};
	uint64_t v[3] = {CLUSTER, 1, 2}; /* little-endian host assumed by this test */
	memcpy(hello + 13, v, sizeof v);
	CHECK_EQ(write(fd, hello, sizeof hello), (ssize_t)sizeof hello);
}

/* Runs the loop a while, then says whether the server closed fd (EOF after any reply). */
static int closed_by_server(uv_loop_t *loop, int fd)
{
	int never = 0;
	run_until(loop, &never, 1, 300);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	char buf[256];
	ssize_t n;
	while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
		;
	return n == 0;
}

CHECK_TEST(hostile_input_is_refused_not_crashed)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int old, logfd = capture_log(&old);
	struct node b;
	node_start(&loop, &b, CLUSTER, 2, 0, 0);
	CHECK_EQ(fs_transport_add_peer(b.t, 1, "127.0.0.1:9"), 0);

	/* Garbage instead of a handshake. */
	int fd = raw_connect(b.port);
	CHECK_EQ(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	CHECK(closed_by_server(&loop, fd));
	close(fd);

	/* A valid handshake, then a frame claiming 2 GiB. */
	fd = raw_connect(b.port);
	raw_hello(fd, 1);
	unsigned char huge[5] = {0, 0, 0, 0x80, 4};
	CHECK_EQ(write(fd, huge, sizeof huge), 5);
	CHECK(closed_by_server(&loop, fd));
	close(fd);
	CHECK_EQ(b.received, 0);

	fs_log_set_fd(old);
	char *log = read_log(logfd);
	close(logfd);
	CHECK(strstr(log, "not a raftfs peer handshake") != NULL);
	CHECK(strstr(log, "exceeds the limit") != NULL);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

CHECK_TEST(partition_hook_drops_both_ways)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a, b;
	start_pair(&loop, &a, &b);
	send_seq(&a, 2, 0, 1);
	CHECK(run_until(&loop, &b.received, 1, 5000));
	fs_transport_block(a.t, 2, 1);
	fs_transport_block(b.t, 1, 1);
	send_seq(&a, 2, 1, 5);
	send_seq(&b, 1, 0, 5);
	int never = 0;
	run_until(&loop, &never, 1, 100);
	CHECK_EQ(b.received, 1);
	CHECK_EQ(a.received, 0);
	fs_transport_block(a.t, 2, 0);
	fs_transport_block(b.t, 1, 0);
	send_seq(&a, 2, 1, 1); /* raft's sequence continues after the heal */
	CHECK(run_until(&loop, &b.received, 2, 5000));
	node_stop(&loop, &a);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
}

static int released;

static void release(void *arg)
{
	released++;
	free(arg);
}

/* Number of entries in dir besides . and .. */
static int dir_entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

CHECK_TEST(snapshot_streams_whole_or_not_at_all)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct node a = {0}, b = {0};
	strcpy(b.snap_dir, "/tmp/rfs-snap-XXXXXX");
	CHECK(mkdtemp(b.snap_dir) != NULL);
	start_pair(&loop, &a, &b);

	/* 5.5 MiB: several chunks and a partial one. */
	size_t len = (11u << 20) / 2;
	uint8_t *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	b.expect = data;
	b.expect_len = len;
	released = 0;
	CHECK_EQ(fs_transport_send_snapshot(a.t, 2, "SNAP", 4, data, len, NULL, NULL), 0);
	CHECK(run_until(&loop, &a.snaps_sent_ok, 1, 10000));
	CHECK_EQ(b.snaps_received, 1);
	CHECK_EQ(a.snaps_sent_failed, 0);

	/* The member refuses it (its membership does not name it): the sender hears why. */
	b.snap_rc = -EIO;
	uint8_t *copy = malloc(len);
	memcpy(copy, data, len);
	CHECK_EQ(fs_transport_send_snapshot(a.t, 2, "SNAP", 4, copy, len, release, copy), 0);
	CHECK(run_until(&loop, &a.snaps_sent_failed, 1, 10000));
	CHECK_EQ(a.last_refusal, FS_SNAP_NOT_MEMBER);
	CHECK_EQ(released, 1);
	CHECK_EQ(b.snaps_received, 2);
	CHECK_EQ(dir_entries(b.snap_dir), 0); /* the callee took its file */

	/* Messages kept flowing on their own connection meanwhile. */
	send_seq(&a, 2, 0, 3);
	CHECK(run_until(&loop, &b.received, 3, 5000));

	/* A member that takes no snapshots refuses the stream. */
	struct node c = {0};
	node_start(&loop, &c, CLUSTER, 3, 0, 0);
	add_peer(&c, &a);
	add_peer(&a, &c);
	CHECK_EQ(fs_transport_send_snapshot(a.t, 3, "SNAP", 4, data, len, NULL, NULL), 0);
	CHECK(run_until(&loop, &a.snaps_sent_failed, 2, 10000));
	CHECK_EQ(a.last_refusal, FS_SNAP_STREAM);
	CHECK_EQ(fs_transport_send_snapshot(a.t, 42, "SNAP", 4, data, len, NULL, NULL), -ENOENT);

	node_stop(&loop, &a);
	node_stop(&loop, &b);
	node_stop(&loop, &c);
	CHECK_EQ(uv_loop_close(&loop), 0);
	free(data);
	rmdir(b.snap_dir);
}

CHECK_TEST(broken_snapshot_stream_leaves_no_file)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int old, logfd = capture_log(&old);
	struct node b = {0};
	strcpy(b.snap_dir, "/tmp/rfs-snap-XXXXXX");
	CHECK(mkdtemp(b.snap_dir) != NULL);
	node_start(&loop, &b, CLUSTER, 2, 0, 0);
	CHECK_EQ(fs_transport_add_peer(b.t, 1, "127.0.0.1:9"), 0);

	for (int variant = 0; variant < 2; variant++) {
		int fd = raw_connect(b.port);
		raw_hello(fd, 5);
		unsigned char head[5 + 4] = {4, 0, 0, 0, 6, 'S', 'N', 'A', 'P'};
		unsigned char chunk[5 + 100] = {100, 0, 0, 0, 7};
		CHECK_EQ(write(fd, head, sizeof head), (ssize_t)sizeof head);
		CHECK_EQ(write(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
		if (variant == 1) {
			/* An end frame whose length disagrees: discarded, answered with failure. */
			unsigned char end[5 + 12] = {12, 0, 0, 0, 8, 200};
			CHECK_EQ(write(fd, end, sizeof end), (ssize_t)sizeof end);
		}
		int never = 0;
		run_until(&loop, &never, 1, 100);
		close(fd); /* variant 0: the sender dies mid-stream */
		run_until(&loop, &never, 1, 100);
		CHECK_EQ(dir_entries(b.snap_dir), 0);
	}
	CHECK_EQ(b.snaps_received, 0);
	fs_log_set_fd(old);
	char *log = read_log(logfd);
	close(logfd);
	CHECK(strstr(log, "holds 100 bytes with crc") != NULL);
	node_stop(&loop, &b);
	CHECK_EQ(uv_loop_close(&loop), 0);
	rmdir(b.snap_dir);
}

/*
 * TLS with an automatic self-signed pair (made in a temp dir): messages in order both ways, a
 * snapshot of several 1 MiB chunks, the peer's subject; then a plaintext member is refused by
 * the TLS one and the other way round, each side saying "protocol mismatch", nothing delivered.
 */
CHECK_TEST(tls_carries_messages_and_snapshots_and_refuses_plaintext)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[] = "/tmp/rfs-tls-XXXXXX", auto_dir[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(auto_dir, sizeof auto_dir, "%s/peer", dir);
	struct fs_transport_tls tls = {.auto_dir = auto_dir, .auto_host = "127.0.0.1",
				       .auto_cn = "unit"};
	int old, logfd = capture_log(&old);
	struct node a = {0}, b = {0};
	strcpy(b.snap_dir, "/tmp/rfs-snap-XXXXXX");
	CHECK(mkdtemp(b.snap_dir) != NULL);
	node_tls = &tls;
	start_pair(&loop, &a, &b);
	node_tls = NULL;
	CHECK(strstr(fs_transport_security(a.t), "TLS 1.3") != NULL);
	send_seq(&a, 2, 0, 1000);
	CHECK(run_until(&loop, &b.received, 1000, 5000));
	CHECK(b.in_order);
	send_seq(&b, 1, 0, 10);
	CHECK(run_until(&loop, &a.received, 10, 5000));
	char subject[128];
	CHECK_EQ(fs_transport_peer_subject(a.t, 2, subject, sizeof subject), 0);
	CHECK_STR_EQ(subject, "O=raftfs,CN=unit");
	size_t len = (7u << 20) / 2; /* 3.5 MiB: three whole chunks and a part */
	uint8_t *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 11);
	b.expect = data;
	b.expect_len = len;
	CHECK_EQ(fs_transport_send_snapshot(a.t, 2, "SNAP", 4, data, len, NULL, NULL), 0);
	CHECK(run_until(&loop, &a.snaps_sent_ok, 1, 10000));
	CHECK_EQ(b.snaps_received, 1);

	/* member 3 speaks plaintext: neither side lets the other in */
	struct node c = {0};
	node_start(&loop, &c, CLUSTER, 3, 0, 0);
	add_peer(&c, &a);
	add_peer(&a, &c);
	send_seq(&c, 1, 0, 5);
	send_seq(&a, 3, 0, 5);
	int never = 0;
	run_until(&loop, &never, 1, 300);
	CHECK_EQ(a.received, 10);
	CHECK_EQ(c.received, 0);
	CHECK(!fs_transport_connected(a.t, 3) && !fs_transport_connected(c.t, 1));
	CHECK_EQ(fs_transport_peer_subject(c.t, 1, subject, sizeof subject), -ENOTSUP);
	fs_log_set_fd(old);
	char *log = read_log(logfd);
	close(logfd);
	const char *want[] = {
		"protocol mismatch: plaintext, and this member takes TLS peers only",
		"refused us: protocol mismatch: it takes TLS peers only",
		"protocol mismatch: it speaks TLS and this member plaintext",
		"TLS: protocol mismatch: it answered in plaintext",
		"peer traffic is encrypted but members are not authenticated",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(log, want[i]))
			CHECK_FAIL("log lacks \"%s\":\n%s", want[i], log);
	node_stop(&loop, &a);
	node_stop(&loop, &b);
	node_stop(&loop, &c);
	CHECK_EQ(uv_loop_close(&loop), 0);
	free(data);
	rmdir(b.snap_dir);
	char path[96];
	snprintf(path, sizeof path, "%s/cert.pem", auto_dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/key.pem", auto_dir);
	unlink(path);
	rmdir(auto_dir);
	rmdir(dir);
}

CHECK_SUITE("member-transport", CHECK_CASE(handshake_and_ordered_delivery),
	    CHECK_CASE(member_of_another_cluster_is_refused), CHECK_CASE(unknown_member_is_refused),
	    CHECK_CASE(joining_member_learns_the_cluster_id),
	    CHECK_CASE(full_queue_drops_and_reports_unreachable),
	    CHECK_CASE(redials_a_restarted_peer), CHECK_CASE(hostile_input_is_refused_not_crashed),
	    CHECK_CASE(partition_hook_drops_both_ways),
	    CHECK_CASE(snapshot_streams_whole_or_not_at_all),
	    CHECK_CASE(broken_snapshot_stream_leaves_no_file),
	    CHECK_CASE(tls_carries_messages_and_snapshots_and_refuses_plaintext))
