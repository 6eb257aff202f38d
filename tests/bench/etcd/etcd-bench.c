/*
 * etcd-bench.c: measures a 3-member etcd 3.4 cluster on this machine, so that raftfs's benchmarks
 * can print etcd's figures from the same run beside their own (issues 7 and 8: puts at 1 and 64
 * clients, serializable ranges at 64 clients, watch latency across members). It talks to etcd's
 * v3 HTTP/JSON gateway through etcd_client.c, one keep-alive connection per client thread, with
 * 256-byte values and keys unique to the run, and prints one `name: value` line per figure:
 *
 *   etcd_put_per_s_1, etcd_put_p50_us_1, etcd_put_p99_us_1     one client on member 1
 *   etcd_put_per_s_64, etcd_put_p50_us_64, etcd_put_p99_us_64  64 clients spread over the members
 *   etcd_range_serializable_per_s_64, ..._p99_us_64            64 clients reading existing keys
 *   etcd_watch_p50_us, etcd_watch_p99_us                       a put's reply on member 1 to the
 *                                                              event on a watch held on member 2
 *   etcd_watch_from_put_p50_us, ..._p99_us                     the same from the put's request
 *
 * Usage: etcd-bench [--endpoints URL,URL,URL] [--script PATH] [--put1-ops N] [--put64-ops N]
 *                   [--range-seconds S] [--watch-ops N] [--clients N]
 * Without --endpoints (or $ETCD_ENDPOINTS) it starts a throw-away cluster with
 * `etcd_cluster.sh serve` and stops it on every way out: it holds the script's stdin, so even a
 * SIGKILL of the bench makes the script tear the cluster down. Each phase is a fixed number of
 * operations (or seconds) under a time cap, so a run takes seconds, not minutes. Progress and
 * notes go to stderr as `# ...` lines; stdout has only the figures. Exit 0, 1 on failure, 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, pipe2, strncasecmp, SOCK_NONBLOCK */
#endif
#include "bench_common.h"
#include "etcd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ETCD_CLUSTER_SCRIPT
#define ETCD_CLUSTER_SCRIPT "tests/bench/etcd/etcd_cluster.sh"
#endif

#define VALUE_SIZE BENCH_VALUE_SIZE
#define MAX_ENDPOINTS 8
#define MAX_CLIENTS 256
#define REQUEST_TIMEOUT_MS 10000
#define PHASE_CAP_S 25.0 /* no phase runs longer than this, whatever its count */

static struct {
	const char *endpoints[MAX_ENDPOINTS];
	int n_endpoints;
	const char *script;
	long put1_ops, put64_ops, watch_ops;
	double range_seconds;
	int clients;
	char prefix[64]; /* unique to this run */
} opt = {
	.put1_ops = 1000,
	.put64_ops = 150,
	.watch_ops = 1000,
	.range_seconds = 3.0,
	.clients = 64,
};

#define now_s bench_now_s
#define now_us bench_now_us

/* ---- the cluster ---------------------------------------------------------------------------- */

static struct bench_cluster cluster = {.pid = -1, .in = -1, .out = -1};

/* ---- helpers ------------------------------------------------------------------------------ */

static void fail(const char *what, int err, const char *detail)
{
	fprintf(stderr, "etcd-bench: %s: %s%s%s\n", what, strerror(-err), detail && *detail ? ": " : "",
		detail ? detail : "");
}

static void make_key(char *key, size_t cap, const char *phase, long thread, long i)
{
	snprintf(key, cap, "%s/%s/%03ld/%08ld", opt.prefix, phase, thread, i);
}

/* ---- puts and ranges from N threads ------------------------------------------------------- */

enum op { OP_PUT, OP_RANGE };

struct worker {
	pthread_t tid;
	int index;
	enum op op;
	const char *endpoint;
	long ops;        /* puts to do; ranges: until the clock says stop */
	long key_space;  /* ranges: keys 0..key_space-1 of phase "put1" */
	uint32_t *lat;   /* per-op latency in µs, the worker's own */
	long done;
	double finished; /* now_s() after its last op */
	int err;
	char errmsg[256];
};

/* Workers connect, then wait for `go`, so that connecting is not measured. */
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int go, ready;
static atomic_int stop_all;   /* set on the first error */
static double range_until;    /* ranges stop at this now_s() */
static double phase_deadline; /* puts stop at this now_s() whatever their count */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct etcdc_conn *c = NULL;
	unsigned char val[VALUE_SIZE], buf[VALUE_SIZE + 16];
	char key[160];
	int r = etcdc_connect(w->endpoint, REQUEST_TIMEOUT_MS, &c);
	if (r < 0) {
		w->err = r;
		snprintf(w->errmsg, sizeof w->errmsg, "connect to %s", w->endpoint);
		atomic_store(&stop_all, 1);
	}
	pthread_mutex_lock(&go_lock);
	ready++;
	pthread_cond_signal(&ready_cond);
	while (!go)
		pthread_cond_wait(&go_cond, &go_lock);
	pthread_mutex_unlock(&go_lock);
	uint64_t x = (uint64_t)w->index * 7919 + 1;
	while (!w->err && !atomic_load(&stop_all)) {
		double t = now_s();
		if (w->op == OP_PUT && (w->done >= w->ops || t > phase_deadline))
			break;
		if (w->op == OP_RANGE && (t > range_until || w->done >= w->ops))
			break;
		uint64_t t0 = now_us();
		if (w->op == OP_PUT) {
			make_key(key, sizeof key, "put64", w->index, w->done);
			bench_make_value(val, (uint64_t)w->index << 32 | (uint64_t)w->done);
			r = etcdc_put(c, key, strlen(key), val, VALUE_SIZE, NULL);
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			make_key(key, sizeof key, "put1", 0, (long)(x % (uint64_t)w->key_space));
			size_t vl = 0;
			r = etcdc_get(c, key, strlen(key), ETCDC_SERIALIZABLE, buf, sizeof buf, &vl,
				      NULL);
			if (r == 0 && vl != VALUE_SIZE)
				r = -EPROTO;
		}
		uint64_t t1 = now_us();
		if (r < 0) {
			w->err = r;
			snprintf(w->errmsg, sizeof w->errmsg, "%s on %s: %s",
				 w->op == OP_PUT ? "put" : "range", w->endpoint, etcdc_errmsg(c));
			atomic_store(&stop_all, 1);
			break;
		}
		w->lat[w->done++] = (uint32_t)(t1 - t0);
	}
	w->finished = now_s();
	etcdc_close(c);
	return NULL;
}

struct result {
	double per_s;
	uint32_t p50, p99;
	uint32_t from_send_p50, from_send_p99; /* watch: from the put's request, not its reply */
	long ops;
};

/* Runs N workers doing OP; fills *res. */
static int run_workers(int n, enum op op, long ops_each, long key_space, struct result *res)
{
	struct worker *ws = calloc((size_t)n, sizeof *ws);
	if (!ws)
		return -ENOMEM;
	long cap = op == OP_PUT ? ops_each : 2000000; /* ranges: more than 2 cores can do */
	int r = 0, started = 0;
	atomic_store(&stop_all, 0);
	go = 0;
	ready = 0;
	for (int i = 0; i < n; i++) {
		ws[i].index = i;
		ws[i].op = op;
		ws[i].endpoint = opt.endpoints[i % opt.n_endpoints];
		ws[i].ops = ops_each;
		ws[i].key_space = key_space;
		ws[i].lat = malloc((size_t)(op == OP_PUT ? ops_each : cap / n + 1) * sizeof(uint32_t));
		if (!ws[i].lat) {
			r = -ENOMEM;
			break;
		}
	}
	/* Latency arrays of range workers: sized for 2M ranges in all; a worker stops when full. */
	if (op == OP_RANGE)
		for (int i = 0; i < n; i++)
			ws[i].ops = cap / n;
	for (int i = 0; r == 0 && i < n; i++) {
		int e = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
		if (e) {
			r = -e;
			break;
		}
		started++;
	}
	if (started < n)
		atomic_store(&stop_all, 1); /* the started ones return at once */
	/* Let every worker connect first: they then wait for go. */
	pthread_mutex_lock(&go_lock);
	while (ready < started)
		pthread_cond_wait(&ready_cond, &go_lock);
	double t0 = now_s();
	phase_deadline = t0 + PHASE_CAP_S;
	range_until = t0 + opt.range_seconds;
	go = 1;
	pthread_cond_broadcast(&go_cond);
	pthread_mutex_unlock(&go_lock);
	double last = t0;
	long total = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].tid, NULL);
		if (ws[i].err && r == 0) {
			r = ws[i].err;
			fail("worker", r, ws[i].errmsg);
		}
		if (ws[i].finished > last)
			last = ws[i].finished;
		total += ws[i].done;
	}
	uint32_t *all = r == 0 ? malloc((size_t)(total ? total : 1) * sizeof(uint32_t)) : NULL;
	if (r == 0 && !all)
		r = -ENOMEM;
	if (r == 0) {
		size_t k = 0;
		for (int i = 0; i < n; i++) {
			memcpy(all + k, ws[i].lat, (size_t)ws[i].done * sizeof(uint32_t));
			k += (size_t)ws[i].done;
		}
		qsort(all, k, sizeof *all, bench_cmp_u32);
		res->ops = total;
		res->per_s = last > t0 ? (double)total / (last - t0) : 0;
		res->p50 = bench_percentile(all, k, 50);
		res->p99 = bench_percentile(all, k, 99);
		if (op == OP_PUT && total < (long)n * ops_each)
			fprintf(stderr, "# only %ld of %ld puts done within %.0f s\n", total,
				(long)n * ops_each, PHASE_CAP_S);
	}
	free(all);
	for (int i = 0; i < n; i++)
		free(ws[i].lat);
	free(ws);
	return r;
}

/* ---- phases ------------------------------------------------------------------------------- */

/* One client on member 1, sequential puts of keys put1/000/0..N-1 (ranges read them later). */
static int phase_put1(struct result *res)
{
	struct etcdc_conn *c;
	int r = etcdc_connect(opt.endpoints[0], REQUEST_TIMEOUT_MS, &c);
	if (r < 0) {
		fail("connect", r, opt.endpoints[0]);
		return r;
	}
	uint32_t *lat = malloc((size_t)opt.put1_ops * sizeof *lat);
	unsigned char val[VALUE_SIZE];
	char key[160];
	long n = 0;
	if (!lat) {
		etcdc_close(c);
		return -ENOMEM;
	}
	/* Warm-up: connections, the leader's pipelines, the page cache of the WAL. */
	for (int i = 0; i < 50 && r == 0; i++) {
		make_key(key, sizeof key, "warm", 0, i);
		bench_make_value(val, (uint64_t)i);
		r = etcdc_put(c, key, strlen(key), val, VALUE_SIZE, NULL);
	}
	double t0 = now_s(), deadline = t0 + PHASE_CAP_S;
	while (r == 0 && n < opt.put1_ops && now_s() < deadline) {
		make_key(key, sizeof key, "put1", 0, n);
		bench_make_value(val, (uint64_t)n);
		uint64_t a = now_us();
		r = etcdc_put(c, key, strlen(key), val, VALUE_SIZE, NULL);
		lat[n++] = (uint32_t)(now_us() - a);
	}
	double t1 = now_s();
	if (r < 0) {
		fail("put (1 client)", r, etcdc_errmsg(c));
	} else {
		res->ops = n;
		res->per_s = (double)n / (t1 - t0);
		qsort(lat, (size_t)n, sizeof *lat, bench_cmp_u32);
		res->p50 = bench_percentile(lat, (size_t)n, 50);
		res->p99 = bench_percentile(lat, (size_t)n, 99);
	}
	free(lat);
	etcdc_close(c);
	return r;
}

/* Reads put1's first key back from every member, serializably: the keys the range phase reads
 * must be there (and so in each member's cache) before it starts. */
static int check_keys_everywhere(long n_keys)
{
	char key[160];
	unsigned char want[VALUE_SIZE], got[VALUE_SIZE + 16];
	for (int e = 0; e < opt.n_endpoints; e++) {
		struct etcdc_conn *c;
		int r = etcdc_connect(opt.endpoints[e], REQUEST_TIMEOUT_MS, &c);
		if (r < 0) {
			fail("connect", r, opt.endpoints[e]);
			return r;
		}
		long idx[2] = {0, n_keys - 1};
		for (int k = 0; k < 2 && r == 0; k++) {
			make_key(key, sizeof key, "put1", 0, idx[k]);
			bench_make_value(want, (uint64_t)idx[k]);
			size_t vl = 0;
			/* A follower may apply the last entries a moment after the leader replied. */
			for (int tries = 0; tries < 100; tries++) {
				r = etcdc_get(c, key, strlen(key), ETCDC_SERIALIZABLE, got, sizeof got,
					      &vl, NULL);
				if (r != -ENOENT)
					break;
				usleep(10000);
			}
			if (r == 0 && (vl != VALUE_SIZE || memcmp(got, want, VALUE_SIZE) != 0))
				r = -EPROTO;
		}
		if (r < 0)
			fail("reading back a put key", r, etcdc_errmsg(c));
		etcdc_close(c);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A watch on member 2 on the prefix .../watch/; puts on member 1, one at a time; each put's
 * latency is from its reply to the arrival of its event. */
static int phase_watch(struct result *res)
{
	const char *put_ep = opt.endpoints[0];
	const char *watch_ep = opt.endpoints[opt.n_endpoints > 1 ? 1 : 0];
	struct etcdc_conn *c = NULL;
	struct etcdc_watch *w = NULL;
	char prefix[128], key[160];
	unsigned char val[VALUE_SIZE];
	snprintf(prefix, sizeof prefix, "%s/watch/", opt.prefix);
	uint32_t *lat = malloc((size_t)opt.watch_ops * sizeof *lat);
	uint32_t *from_send = malloc((size_t)opt.watch_ops * sizeof *lat);
	long n = 0, early = 0;
	int r = lat && from_send ? 0 : -ENOMEM;
	if (r == 0 && (r = etcdc_connect(put_ep, REQUEST_TIMEOUT_MS, &c)) < 0)
		fail("connect", r, put_ep);
	if (r == 0 && (r = etcdc_watch_open(watch_ep, prefix, strlen(prefix), ETCDC_WATCH_PREFIX, 0,
					    REQUEST_TIMEOUT_MS, &w)) < 0)
		fail("watch open", r, watch_ep);
	double deadline = now_s() + PHASE_CAP_S;
	while (r == 0 && n < opt.watch_ops && now_s() < deadline) {
		make_key(key, sizeof key, "watch", 0, n);
		bench_make_value(val, (uint64_t)n);
		int64_t rev;
		uint64_t sent = now_us();
		if ((r = etcdc_put(c, key, strlen(key), val, VALUE_SIZE, &rev)) < 0) {
			fail("put (watch phase)", r, etcdc_errmsg(c));
			break;
		}
		uint64_t replied = now_us();
		/* Was the event already here before the reply was parsed? Then it counts as 0. */
		struct pollfd pfd = {.fd = etcdc_watch_fd(w), .events = POLLIN};
		if (poll(&pfd, 1, 0) == 1)
			early++;
		struct etcdc_event ev;
		for (;;) {
			r = etcdc_watch_next(w, 5000, &ev);
			if (r < 0) {
				fail("watch", r, etcdc_watch_errmsg(w));
				break;
			}
			if (ev.mod_revision == rev && ev.klen == strlen(key) &&
			    memcmp(ev.key, key, ev.klen) == 0) {
				r = 0;
				break;
			}
			if (ev.mod_revision > rev) {
				r = -EPROTO;
				fail("watch", r, "an event past the put's revision came before it");
				break;
			}
		}
		if (r < 0)
			break;
		if (ev.vlen != VALUE_SIZE || memcmp(ev.value, val, VALUE_SIZE) != 0) {
			r = -EPROTO;
			fail("watch", r, "the event's value is not the one put");
			break;
		}
		uint64_t seen = now_us();
		lat[n] = (uint32_t)(seen - replied);
		from_send[n++] = (uint32_t)(seen - sent);
	}
	if (r == 0) {
		qsort(lat, (size_t)n, sizeof *lat, bench_cmp_u32);
		qsort(from_send, (size_t)n, sizeof *lat, bench_cmp_u32);
		res->ops = n;
		res->p50 = bench_percentile(lat, (size_t)n, 50);
		res->p99 = bench_percentile(lat, (size_t)n, 99);
		res->from_send_p50 = bench_percentile(from_send, (size_t)n, 50);
		res->from_send_p99 = bench_percentile(from_send, (size_t)n, 99);
		res->per_s = 0;
		fprintf(stderr, "# watch: %ld puts on %s seen on %s; %ld events were already in "
				"the socket when the put's reply was read\n",
			n, put_ep, watch_ep, early);
	}
	etcdc_watch_close(w);
	etcdc_close(c);
	free(lat);
	free(from_send);
	return r;
}

/* Says on stderr which endpoint is the leader: the figures depend on where the clients are. */
static void report_leader(void)
{
	uint64_t ids[MAX_ENDPOINTS] = {0}, leader = 0;
	int64_t term = 0;
	for (int e = 0; e < opt.n_endpoints; e++) {
		struct etcdc_conn *c;
		if (etcdc_connect(opt.endpoints[e], REQUEST_TIMEOUT_MS, &c) < 0)
			continue;
		if (etcdc_status(c, &ids[e], &leader, &term) < 0)
			fprintf(stderr, "# status of %s: %s\n", opt.endpoints[e], etcdc_errmsg(c));
		etcdc_close(c);
	}
	for (int e = 0; e < opt.n_endpoints; e++)
		if (ids[e] && ids[e] == leader)
			fprintf(stderr, "# leader: member %d (%s), term %" PRId64 "\n", e + 1,
				opt.endpoints[e], term);
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: etcd-bench [--endpoints URL,URL,URL] [--script PATH] [--put1-ops N]\n"
		"                  [--put64-ops N] [--range-seconds S] [--watch-ops N] [--clients N]\n"
		"Without --endpoints or $ETCD_ENDPOINTS, starts a 3-member cluster with PATH serve\n"
		"(default %s).\n",
		ETCD_CLUSTER_SCRIPT);
	exit(2);
}

static long parse_count(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		usage();
	return v;
}

static int split_endpoints(char *list)
{
	opt.n_endpoints = 0;
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (opt.n_endpoints == MAX_ENDPOINTS)
			return -E2BIG;
		opt.endpoints[opt.n_endpoints++] = t;
	}
	return opt.n_endpoints ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	char *endpoints = NULL;
	opt.script = getenv("ETCD_CLUSTER_SCRIPT") ? getenv("ETCD_CLUSTER_SCRIPT")
						   : ETCD_CLUSTER_SCRIPT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || !v)
			usage();
		i++;
		if (strcmp(a, "--endpoints") == 0)
			endpoints = strdup(v);
		else if (strcmp(a, "--script") == 0)
			opt.script = v;
		else if (strcmp(a, "--put1-ops") == 0)
			opt.put1_ops = parse_count(v, 10, 1000000);
		else if (strcmp(a, "--put64-ops") == 0)
			opt.put64_ops = parse_count(v, 1, 1000000);
		else if (strcmp(a, "--watch-ops") == 0)
			opt.watch_ops = parse_count(v, 10, 1000000);
		else if (strcmp(a, "--range-seconds") == 0)
			opt.range_seconds = (double)parse_count(v, 1, 60);
		else if (strcmp(a, "--clients") == 0)
			opt.clients = (int)parse_count(v, 1, MAX_CLIENTS);
		else
			usage();
	}
	double t_start = now_s();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!endpoints && getenv("ETCD_ENDPOINTS") && *getenv("ETCD_ENDPOINTS"))
		endpoints = strdup(getenv("ETCD_ENDPOINTS"));
	int r;
	if (!endpoints) {
		fprintf(stderr, "# starting a 3-member etcd with %s\n", opt.script);
		if ((r = bench_cluster_start(&cluster, opt.script, 60, NULL)) < 0) {
			fail("starting the cluster", r, opt.script);
			bench_cluster_stop(&cluster);
			return 1;
		}
		endpoints = strdup(cluster.endpoints);
	}
	if (!endpoints || split_endpoints(endpoints) < 0) {
		fprintf(stderr, "etcd-bench: bad endpoint list\n");
		bench_cluster_stop(&cluster);
		return 2;
	}
	snprintf(opt.prefix, sizeof opt.prefix, "/etcd-bench/%d.%" PRIu64, (int)getpid(), now_us());
	fprintf(stderr, "# endpoints %s", opt.endpoints[0]);
	for (int i = 1; i < opt.n_endpoints; i++)
		fprintf(stderr, ",%s", opt.endpoints[i]);
	fprintf(stderr, "; keys under %s, values of %d bytes\n", opt.prefix, VALUE_SIZE);

	report_leader();
	struct result put1 = {0}, put64 = {0}, range64 = {0}, watch = {0};
	long range_keys = 0;
	r = phase_put1(&put1);
	if (r == 0) {
		/* The ranges read put1's keys (those that were put, should the time cap have hit). */
		range_keys = put1.ops < 1000 ? put1.ops : 1000;
		fprintf(stderr, "# put, 1 client on %s: %ld puts\n", opt.endpoints[0], put1.ops);
		printf("etcd_put_per_s_1: %.0f\n", put1.per_s);
		printf("etcd_put_p50_us_1: %" PRIu32 "\n", put1.p50);
		printf("etcd_put_p99_us_1: %" PRIu32 "\n", put1.p99);
		r = run_workers(opt.clients, OP_PUT, opt.put64_ops, 0, &put64);
	}
	if (r == 0) {
		fprintf(stderr, "# put, %d clients over %d members: %ld puts\n", opt.clients,
			opt.n_endpoints, put64.ops);
		printf("etcd_put_per_s_%d: %.0f\n", opt.clients, put64.per_s);
		printf("etcd_put_p50_us_%d: %" PRIu32 "\n", opt.clients, put64.p50);
		printf("etcd_put_p99_us_%d: %" PRIu32 "\n", opt.clients, put64.p99);
		r = check_keys_everywhere(range_keys);
	}
	if (r == 0)
		r = run_workers(opt.clients, OP_RANGE, 0, range_keys, &range64);
	if (r == 0) {
		fprintf(stderr, "# serializable range, %d clients over %d members, %ld keys: %ld "
				"ranges in %.0f s\n",
			opt.clients, opt.n_endpoints, range_keys, range64.ops, opt.range_seconds);
		printf("etcd_range_serializable_per_s_%d: %.0f\n", opt.clients, range64.per_s);
		printf("etcd_range_serializable_p99_us_%d: %" PRIu32 "\n", opt.clients, range64.p99);
		r = phase_watch(&watch);
	}
	if (r == 0) {
		printf("etcd_watch_p50_us: %" PRIu32 "\n", watch.p50);
		printf("etcd_watch_p99_us: %" PRIu32 "\n", watch.p99);
		printf("etcd_watch_from_put_p50_us: %" PRIu32 "\n", watch.from_send_p50);
		printf("etcd_watch_from_put_p99_us: %" PRIu32 "\n", watch.from_send_p99);
	}
	bench_cluster_stop(&cluster);
	free(endpoints);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "# etcd-bench %s in %.1f s (the bench itself used %.1f s of CPU)\n",
		r == 0 ? "done" : "FAILED", now_s() - t_start,
		(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return r == 0 ? 0 : 1;
}
