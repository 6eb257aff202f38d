/* test_config.c: member flags in etcd's words, and the ids derived from them. */
#include "check.h"
#include "member/member.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int apply(struct fs_member_config *cfg, const char *const *flags, char *err, size_t errsz)
{
	FILE *e = fmemopen(err, errsz, "w");
	int rc = 0;
	for (int i = 0; flags[i] && rc >= 0; i += 2) {
		rc = fs_config_flag(cfg, flags[i], flags[i + 1], e);
		if (rc == 0)
			rc = -ENOENT; /* not a member flag */
	}
	if (rc >= 0)
		rc = fs_config_finish(cfg, e);
	fclose(e);
	return rc;
}

CHECK_TEST(three_members_derive_the_same_ids)
{
	const char *cluster = "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003";
	struct fs_member_config c[3];
	char err[256] = "";
	const char *names[] = {"n1", "n2", "n3"};
	for (int i = 0; i < 3; i++) {
		fs_config_defaults(&c[i]);
		const char *flags[] = {"--name", names[i], "--initial-cluster", cluster,
				       "--initial-cluster-token", "tok", NULL};
		CHECK_EQ(apply(&c[i], flags, err, sizeof err), 0);
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(c[i].cluster_id, c[0].cluster_id);
		CHECK_EQ(c[i].n_peers, 3);
		CHECK_EQ_U64(c[i].self_id, c[0].peers[i].id);
		CHECK_STR_EQ(c[i].listen_peer, c[0].peers[i].addr);
	}
	CHECK_NE(c[0].self_id, c[1].self_id);
	CHECK_STR_EQ(c[1].data_dir, "/var/lib/raftfs/n2");
	/* Ids are stable across runs and builds: a change here breaks existing data dirs. */
	CHECK_EQ_U64(fs_member_id("tok", "n1", "127.0.0.1:7001"), c[0].peers[0].id);
	CHECK_EQ_U64(fs_member_id("raftfs-cluster", "default", "127.0.0.1:2380"),
		     fs_member_id("raftfs-cluster", "default", "127.0.0.1:2380"));

	/* Another token or another member set is another cluster. */
	struct fs_member_config other;
	fs_config_defaults(&other);
	const char *flags[] = {"--name", "n1", "--initial-cluster", cluster, NULL};
	CHECK_EQ(apply(&other, flags, err, sizeof err), 0);
	CHECK_NE(other.cluster_id, c[0].cluster_id);
	CHECK_NE(other.self_id, c[0].self_id);
}

CHECK_TEST(one_member_default)
{
	struct fs_member_config c;
	char err[256] = "";
	fs_config_defaults(&c);
	const char *none[] = {NULL};
	CHECK_EQ(apply(&c, none, err, sizeof err), 0);
	CHECK_EQ(c.n_peers, 1);
	CHECK_STR_EQ(c.peers[0].name, "default");
	CHECK_STR_EQ(c.listen_peer, "127.0.0.1:2380");
	CHECK_EQ(c.heartbeat_ms, 100);
	CHECK_EQ(c.election_ms, 1000);
	CHECK_EQ(c.snapshot_count, 10000);
	CHECK_NE(c.cluster_id, 0);
}

CHECK_TEST(bad_flags_get_a_clear_error)
{
	static const struct {
		const char *flag, *value, *message;
	} cases[] = {
		{"--initial-cluster", "n1=127.0.0.1", "'n1=127.0.0.1' is not name=host:port"},
		{"--initial-cluster", "n1", "'n1' is not name=host:port"},
		{"--initial-cluster", "n1=a:1,n1=b:2", "repeats a name or address"},
		{"--initial-cluster", "n1=a:1,", "trailing comma"},
		{"--initial-cluster", "n1=a:70000", "'n1=a:70000' is not name=host:port"},
		{"--initial-cluster-state", "old", "'old' is neither new nor existing"},
		{"--heartbeat-interval", "-5", "'-5' is not a number"},
		{"--snapshot-count", "12x", "'12x' is not a number"},
		{"--log-level", "loud", "'loud' is not debug, info, warn or error"},
		{"--listen-peer", ":80", "':80' is not host:port"},
		{"--name", "", "value must be 1 to"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fs_member_config c;
		char err[256] = "";
		fs_config_defaults(&c);
		const char *flags[] = {cases[i].flag, cases[i].value, NULL};
		CHECK_EQ(apply(&c, flags, err, sizeof err), -EINVAL);
		if (!strstr(err, cases[i].message))
			CHECK_FAIL("%s %s: got \"%s\"", cases[i].flag, cases[i].value, err);
	}
}

CHECK_TEST(inconsistent_flags_are_refused)
{
	struct fs_member_config c;
	char err[256] = "";
	fs_config_defaults(&c);
	const char *notin[] = {"--name", "n4", "--initial-cluster", "n1=a:1,n2=b:2", NULL};
	CHECK_EQ(apply(&c, notin, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "--name n4 is not in --initial-cluster") != NULL);

	fs_config_defaults(&c);
	memset(err, 0, sizeof err);
	const char *timing[] = {"--heartbeat-interval", "600", "--election-timeout", "1000", NULL};
	CHECK_EQ(apply(&c, timing, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "at least twice") != NULL);

	fs_config_defaults(&c);
	CHECK_EQ(fs_config_flag(&c, "--mystery", "1", stderr), 0); /* not ours: left to the caller */
}

/* A file of mode `mode` in a fresh temp dir; its path into path[64]. */
static void tmp_file(char *path, const char *name, mode_t mode)
{
	static char dir[64];
	if (!dir[0]) {
		strcpy(dir, "/tmp/rfs-config-XXXXXX");
		CHECK(mkdtemp(dir) != NULL);
	}
	snprintf(path, 64, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	CHECK_EQ(chmod(path, mode), 0);
}

CHECK_TEST(peer_tls_flags_are_checked_together)
{
	char cert[64], key[64], ca[64], open_key[64], err[512];
	tmp_file(cert, "n1.pem", 0644);
	tmp_file(key, "n1-key.pem", 0600);
	tmp_file(ca, "ca.pem", 0644);
	tmp_file(open_key, "open-key.pem", 0644);
	struct fs_member_config c;
	static const struct {
		const char *flags[9];
		const char *message; /* NULL: accepted */
	} cases[] = {
		{{"--peer-cert-file", "C", NULL}, "--peer-cert-file and --peer-key-file go together"},
		{{"--peer-trusted-ca-file", "A", NULL}, "need --peer-cert-file and --peer-key-file"},
		{{"--peer-cert-file", "C", "--peer-key-file", "K", "--peer-client-cert-auth", "true",
		  NULL}, "--peer-client-cert-auth needs --peer-trusted-ca-file"},
		{{"--peer-cert-file", "C", "--peer-key-file", "K", "--peer-cert-allowed-cn", "x",
		  NULL}, "--peer-cert-allowed-cn needs --peer-trusted-ca-file"},
		{{"--peer-cert-file", "C", "--peer-key-file", "O", NULL},
		 "is readable by group or others (mode 0644): chmod 600 it"},
		{{"--peer-cert-file", "C", "--peer-key-file", "/nonexistent/k.pem", NULL},
		 "--peer-key-file: /nonexistent/k.pem: No such file or directory"},
		{{"--peer-auto-tls", "maybe", NULL}, "'maybe' is neither true nor false"},
		{{"--peer-cert-file", "C", "--peer-key-file", "K", "--peer-trusted-ca-file", "A",
		  NULL}, NULL},
		{{"--peer-cert-file", "C", "--peer-key-file", "K", "--peer-trusted-ca-file", "A",
		  "--peer-client-cert-auth", "false", NULL}, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *flags[11];
		int n = 0;
		for (; cases[i].flags[n]; n++) {
			const char *f = cases[i].flags[n];
			flags[n] = !strcmp(f, "C") ? cert : !strcmp(f, "K") ? key : !strcmp(f, "A") ? ca
				 : !strcmp(f, "O") ? open_key : f;
		}
		flags[n] = NULL;
		fs_config_defaults(&c);
		memset(err, 0, sizeof err);
		int rc = apply(&c, flags, err, sizeof err);
		if (!cases[i].message) {
			CHECK_EQ(rc, 0);
			continue;
		}
		CHECK_EQ(rc, -EINVAL);
		if (!strstr(err, cases[i].message))
			CHECK_FAIL("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].message);
	}
	/* client certificates are verified by default once a CA is given, unless turned off */
	fs_config_defaults(&c);
	const char *with_ca[] = {"--peer-cert-file", cert, "--peer-key-file", key,
				 "--peer-trusted-ca-file", ca, NULL};
	CHECK_EQ(apply(&c, with_ca, err, sizeof err), 0);
	CHECK_EQ(c.peer_client_cert_auth, 1);
	fs_config_defaults(&c);
	const char *no_ca[] = {"--peer-cert-file", cert, "--peer-key-file", key, NULL};
	CHECK_EQ(apply(&c, no_ca, err, sizeof err), 0);
	CHECK_EQ(c.peer_client_cert_auth, 0);
	CHECK(fs_config_flag_is_bool("--peer-auto-tls") && !fs_config_flag_is_bool("--name"));
	unlink(cert);
	unlink(key);
	unlink(ca);
	unlink(open_key);
	*strrchr(cert, '/') = '\0';
	rmdir(cert);
}

CHECK_SUITE("member-config", CHECK_CASE(three_members_derive_the_same_ids),
	    CHECK_CASE(one_member_default), CHECK_CASE(bad_flags_get_a_clear_error),
	    CHECK_CASE(inconsistent_flags_are_refused),
	    CHECK_CASE(peer_tls_flags_are_checked_together))
