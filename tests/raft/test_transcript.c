/*
 * test_transcript.c: transcript tests in the style of etcd raft's testdata (seed 001).
 *
 * Each .txt file in tests/raft/testdata holds commands (lines starting with "> ") each followed by the
 * output it must produce: the messages delivered while stabilizing, statuses, logs. A run replays
 * every file and fails on the first difference, printing both lines. RAFT_REWRITE=1 rewrites the
 * files with the actual output (review the diff before committing it).
 *
 * Commands:
 *   add-nodes N [voters=K] [prevote] [checkquorum]   members 1..N, the first K bootstrapped voters
 *   campaign ID | stabilize | tick ID N | tick-all N | isolate ID | heal | crash ID | restart ID
 *   propose ID TEXT | conf-change ID add|learner|remove NODE | transfer-leader ID TO
 *   read-index ID CTX | read-states ID | snapshot ID | status ID | log ID
 */
#include "check.h"
#include "net.h"
#include "raft.h"

#include <dirent.h>

static struct net nw;
static int have_net;

static void print_status(FILE *out, uint64_t id)
{
	struct raft_status st = net_status(&nw, id);
	fprintf(out, "%" PRIu64 ": %s term=%" PRIu64 " vote=%" PRIu64 " lead=%" PRIu64
		     " commit=%" PRIu64 " applied=%" PRIu64 " last=%" PRIu64 " voters=(",
		id, raft_state_name(st.soft_state.state), st.hard_state.term, st.hard_state.vote,
		st.soft_state.lead, st.hard_state.commit, st.applied, st.last_index);
	for (size_t i = 0; i < st.conf.n_voters; i++)
		fprintf(out, "%s%" PRIu64, i ? " " : "", st.conf.voters[i]);
	fprintf(out, ") learners=(");
	for (size_t i = 0; i < st.conf.n_learners; i++)
		fprintf(out, "%s%" PRIu64, i ? " " : "", st.conf.learners[i]);
	fprintf(out, ")\n");
}

static void print_log(FILE *out, uint64_t id)
{
	struct tnode *t = &nw.n[id];
	uint64_t first, last;
	t->st.first_index(t->st.data, &first);
	t->st.last_index(t->st.data, &last);
	fprintf(out, "%" PRIu64 ":", id);
	if (first > 1)
		fprintf(out, " (snapshot %" PRIu64 ")", first - 1);
	for (uint64_t i = first; i <= last; i++) {
		const struct raft_entry *e;
		size_t n;
		if (t->st.entries(t->st.data, i, i + 1, UINT64_MAX, &e, &n) != 0)
			break;
		fprintf(out, " %" PRIu64 "/%" PRIu64 "%s", e->term, e->index,
			e->type == RAFT_ENTRY_CONF_CHANGE ? "cc" : "");
		if (e->type == RAFT_ENTRY_NORMAL && e->len)
			fprintf(out, "(%.*s)", (int)e->len, (const char *)e->data);
	}
	fprintf(out, "\n");
}

/* Runs one command line, writing its output to out. */
static void run_command(char *line, FILE *out)
{
	char *argv[8];
	int argc = 0;
	for (char *tok = strtok(line, " \t"); tok && argc < 8; tok = strtok(NULL, " \t"))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	const char *cmd = argv[0];
	uint64_t id = argc > 1 ? strtoull(argv[1], NULL, 0) : 0;
	if (strcmp(cmd, "add-nodes") == 0) {
		if (have_net)
			net_free(&nw);
		struct raft_config cfg;
		net_default_cfg(&cfg);
		int voters = (int)id;
		for (int i = 2; i < argc; i++) {
			if (strncmp(argv[i], "voters=", 7) == 0)
				voters = atoi(argv[i] + 7);
			else if (strcmp(argv[i], "prevote") == 0)
				cfg.pre_vote = 1;
			else if (strcmp(argv[i], "checkquorum") == 0)
				cfg.check_quorum = 1;
		}
		net_init_cfg(&nw, (int)id, voters, &cfg);
		have_net = 1;
		nw.trace = out;
		net_stabilize(&nw); /* applies the bootstrap entries */
		return;
	}
	CHECK(have_net);
	nw.trace = out;
	if (id > (uint64_t)nw.nn && strcmp(cmd, "stabilize") && strcmp(cmd, "heal") &&
	    strcmp(cmd, "tick-all"))
		CHECK_FAIL("no member %" PRIu64, id);
	int rv = 0;
	if (strcmp(cmd, "campaign") == 0) {
		rv = raft_campaign(nw.n[id].r);
	} else if (strcmp(cmd, "stabilize") == 0) {
		net_stabilize(&nw);
	} else if (strcmp(cmd, "tick") == 0) {
		int k = argc > 2 ? atoi(argv[2]) : 1;
		for (int i = 0; i < k; i++) {
			raft_tick(nw.n[id].r);
			net_ready(&nw, id);
		}
	} else if (strcmp(cmd, "tick-all") == 0) {
		net_tick_all(&nw, (int)id);
	} else if (strcmp(cmd, "isolate") == 0) {
		net_isolate(&nw, id);
	} else if (strcmp(cmd, "heal") == 0) {
		net_heal(&nw);
	} else if (strcmp(cmd, "crash") == 0) {
		net_crash(&nw, id);
	} else if (strcmp(cmd, "restart") == 0) {
		net_start(&nw, id);
	} else if (strcmp(cmd, "propose") == 0) {
		rv = net_propose(&nw, id, argc > 2 ? argv[2] : "");
	} else if (strcmp(cmd, "conf-change") == 0) {
		CHECK_EQ(argc, 4);
		struct raft_conf_change cc = {.node_id = strtoull(argv[3], NULL, 0)};
		cc.type = strcmp(argv[2], "add") == 0	    ? RAFT_CONF_ADD_NODE
			  : strcmp(argv[2], "learner") == 0 ? RAFT_CONF_ADD_LEARNER_NODE
							    : RAFT_CONF_REMOVE_NODE;
		rv = raft_propose_conf_change(nw.n[id].r, &cc);
		net_ready(&nw, id);
	} else if (strcmp(cmd, "transfer-leader") == 0) {
		rv = raft_transfer_leader(nw.n[id].r, strtoull(argv[2], NULL, 0));
		net_ready(&nw, id);
	} else if (strcmp(cmd, "read-index") == 0) {
		uint64_t ctx = strtoull(argv[2], NULL, 0);
		rv = raft_read_index(nw.n[id].r, (const uint8_t *)&ctx, 8);
		net_ready(&nw, id);
	} else if (strcmp(cmd, "read-states") == 0) {
		for (size_t i = 0; i < nw.n[id].n_reads; i++)
			fprintf(out, "%" PRIu64 ": read ctx=%" PRIu64 " index=%" PRIu64 "\n", id,
				nw.n[id].read_ctx[i], nw.n[id].reads[i].index);
		nw.n[id].n_reads = 0;
	} else if (strcmp(cmd, "snapshot") == 0) {
		struct tnode *t = &nw.n[id];
		rv = raft_memory_storage_create_snapshot(t->ms, t->applied, &t->conf, NULL, 0);
		if (!rv)
			rv = raft_memory_storage_compact(t->ms, t->applied);
	} else if (strcmp(cmd, "status") == 0) {
		print_status(out, id);
	} else if (strcmp(cmd, "log") == 0) {
		print_log(out, id);
	} else {
		CHECK_FAIL("unknown command %s", cmd);
	}
	if (rv)
		fprintf(out, "error: %s\n", raft_strerror(rv));
}

/* Replays path; returns 0 when every output matched (or was rewritten). */
static int run_file(const char *path, int rewrite)
{
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	char *actual = NULL, *expected = NULL;
	size_t alen = 0, elen = 0;
	FILE *act = open_memstream(&actual, &alen);
	FILE *exp = open_memstream(&expected, &elen);
	char line[1024];
	int first_cmd_line = 0, lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		if (strncmp(line, "> ", 2) == 0) {
			fputs(line, act);
			fputs(line, exp);
			fflush(act);
			char cmd[1024];
			snprintf(cmd, sizeof cmd, "%s", line + 2);
			cmd[strcspn(cmd, "\n")] = 0;
			run_command(cmd, act);
			if (!first_cmd_line)
				first_cmd_line = lineno;
		} else if (line[0] == '#' || line[0] == '\n') {
			fputs(line, act);
			fputs(line, exp);
		} else {
			fputs(line, exp);
		}
	}
	fclose(f);
	fclose(act);
	fclose(exp);
	if (have_net) {
		net_free(&nw);
		have_net = 0;
	}
	int bad = 0;
	if (strcmp(actual, expected) != 0) {
		if (rewrite) {
			FILE *w = fopen(path, "w");
			CHECK(w != NULL);
			fputs(actual, w);
			fclose(w);
			printf("  rewrote %s\n", path);
		} else {
			/* Show the first differing line. */
			const char *a = actual, *e = expected;
			int ln = 1;
			while (*a && *a == *e) {
				if (*a == '\n')
					ln++;
				a++;
				e++;
			}
			while (a > actual && a[-1] != '\n') {
				a--;
				e--;
			}
			printf("  %s:%d:\n    want: %.*s\n    got:  %.*s\n", path, ln,
			       (int)strcspn(e, "\n"), e, (int)strcspn(a, "\n"), a);
			bad = 1;
		}
	}
	free(actual);
	free(expected);
	return bad;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

CHECK_TEST(transcripts)
{
	const char *dir = getenv("RAFT_TESTDATA");
	CHECK_SKIP_IF(!dir, "RAFT_TESTDATA not set");
	int rewrite = getenv("RAFT_REWRITE") != NULL;
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	char *names[256];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < 256) {
		size_t l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".txt") == 0)
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof names[0], cmp_str);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		int bad = run_file(path, rewrite);
		printf("  %s %s\n", bad ? "FAIL" : "ok  ", names[i]);
		failed += bad;
		free(names[i]);
	}
	CHECK_GT(n, 0);
	CHECK_EQ(failed, 0);
}

CHECK_SUITE("raft-transcripts", CHECK_CASE(transcripts))
