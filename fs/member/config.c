/*
 * config.c: parses and checks a member's bootstrap flags and derives member and cluster ids.
 *
 * Ids are 64-bit hashes (FNV-1a, then a splitmix64 finalizer) of the initial cluster token and each
 * member's name and peer address, as etcd derives its ids from the token and peer URLs: every
 * member computes the same ids from the same flags, and a member of another cluster (other token or
 * members) gets a different cluster id.
 */
#include "member/member.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

uint64_t fs_member_id(const char *token, const char *name, const char *addr)
{
	uint64_t h = fnv1a(FNV_OFFSET, "member", 7);
	h = fnv1a(h, token, strlen(token) + 1); /* the NUL separates the fields */
	h = fnv1a(h, name, strlen(name) + 1);
	h = fnv1a(h, addr, strlen(addr) + 1);
	h = mix64(h);
	return h ? h : 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t fs_cluster_id(const char *token, const uint64_t *ids, int n)
{
	uint64_t sorted[FS_MAX_MEMBERS];
	if (n > FS_MAX_MEMBERS)
		n = FS_MAX_MEMBERS;
	memcpy(sorted, ids, (size_t)n * sizeof *ids);
	qsort(sorted, (size_t)n, sizeof *sorted, cmp_u64);
	uint64_t h = fnv1a(FNV_OFFSET, "cluster", 8);
	h = fnv1a(h, token, strlen(token) + 1);
	for (int i = 0; i < n; i++)
		h = fnv1a(h, &sorted[i], sizeof sorted[i]);
	h = mix64(h);
	return h ? h : 1;
}

void fs_config_defaults(struct fs_member_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	strcpy(cfg->name, "default");
	strcpy(cfg->token, "raftfs-cluster");
	strcpy(cfg->log_level, "info");
	cfg->heartbeat_ms = 100;
	cfg->election_ms = 1000;
	cfg->snapshot_count = 10000;
	cfg->snapshot_catchup_entries = 5000;
	cfg->peer_client_cert_auth = -1;
}

int fs_config_flag_is_bool(const char *flag)
{
	return !strcmp(flag, "--peer-auto-tls") || !strcmp(flag, "--peer-client-cert-auth");
}

static int set_bool(int *dst, const char *flag, const char *value, FILE *err)
{
	if (strcmp(value, "true") && strcmp(value, "false")) {
		fprintf(err, "raftfs: %s: '%s' is neither true nor false\n", flag, value);
		return -EINVAL;
	}
	*dst = !strcmp(value, "true");
	return 1;
}

/* Copies value into dst[cap] or says why not. */
static int set_str(char *dst, size_t cap, const char *flag, const char *value, FILE *err)
{
	if (!value[0] || strlen(value) >= cap) {
		fprintf(err, "raftfs: %s: value must be 1 to %zu bytes\n", flag, cap - 1);
		return -EINVAL;
	}
	strcpy(dst, value);
	return 1;
}

static int set_uint(uint64_t *dst, uint64_t min, uint64_t max, const char *flag, const char *value,
		    FILE *err)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno || end == value || *end || value[0] == '-' || v < min || v > max) {
		fprintf(err, "raftfs: %s: '%s' is not a number from %llu to %llu\n", flag, value,
			(unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*dst = v;
	return 1;
}

/* host:port with a port in 1..65535 and a non-empty host; says why not on err unless NULL. */
static int check_addr(const char *addr, const char *flag, FILE *err)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || colon == addr || !colon[1] || *end || port < 1 || port > 65535) {
		if (err)
			fprintf(err, "raftfs: %s: '%s' is not host:port\n", flag, addr);
		return -EINVAL;
	}
	return 0;
}

int fs_config_parse_cluster(const char *s, struct fs_peer_config *peers, int max, int *n,
			    FILE *err)
{
	*n = 0;
	const char *p = s;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		if (*n == max) {
			fprintf(err, "raftfs: --initial-cluster: more than %d members\n", max);
			return -EINVAL;
		}
		struct fs_peer_config *pc = &peers[*n];
		size_t nlen = eq ? (size_t)(eq - p) : 0, alen = eq ? len - nlen - 1 : 0;
		int ok = eq && nlen > 0 && nlen <= FS_NAME_MAX && alen > 0 && alen <= FS_ADDR_MAX;
		if (ok) {
			memcpy(pc->name, p, nlen);
			pc->name[nlen] = '\0';
			memcpy(pc->addr, eq + 1, alen);
			pc->addr[alen] = '\0';
			ok = check_addr(pc->addr, "--initial-cluster", NULL) == 0;
		}
		if (!ok) {
			fprintf(err, "raftfs: --initial-cluster: '%.*s' is not name=host:port\n",
				(int)len, p);
			return -EINVAL;
		}
		for (int i = 0; i < *n; i++) {
			if (!strcmp(peers[i].name, pc->name) || !strcmp(peers[i].addr, pc->addr)) {
				fprintf(err, "raftfs: --initial-cluster: '%s=%s' repeats a name or "
					     "address\n", pc->name, pc->addr);
				return -EINVAL;
			}
		}
		(*n)++;
		p += len + (comma ? 1 : 0);
		if (comma && !*p) {
			fprintf(err, "raftfs: --initial-cluster: trailing comma\n");
			return -EINVAL;
		}
	}
	if (*n == 0) {
		fprintf(err, "raftfs: --initial-cluster: no members\n");
		return -EINVAL;
	}
	return 0;
}

int fs_config_flag(struct fs_member_config *cfg, const char *flag, const char *value, FILE *err)
{
	uint64_t v;
	int rc;
	if (!strcmp(flag, "--name"))
		return set_str(cfg->name, sizeof cfg->name, flag, value, err);
	if (!strcmp(flag, "--data-dir"))
		return set_str(cfg->data_dir, sizeof cfg->data_dir, flag, value, err);
	if (!strcmp(flag, "--listen-peer")) {
		if ((rc = set_str(cfg->listen_peer, sizeof cfg->listen_peer, flag, value, err)) < 0)
			return rc;
		return check_addr(value, flag, err) ? -EINVAL : 1;
	}
	if (!strcmp(flag, "--initial-cluster-token"))
		return set_str(cfg->token, sizeof cfg->token, flag, value, err);
	if (!strcmp(flag, "--initial-cluster"))
		return fs_config_parse_cluster(value, cfg->peers, FS_MAX_MEMBERS, &cfg->n_peers,
					       err) ? -EINVAL : 1;
	if (!strcmp(flag, "--initial-cluster-state")) {
		if (strcmp(value, "new") && strcmp(value, "existing")) {
			fprintf(err, "raftfs: %s: '%s' is neither new nor existing\n", flag, value);
			return -EINVAL;
		}
		cfg->existing = !strcmp(value, "existing");
		return 1;
	}
	if (!strcmp(flag, "--heartbeat-interval")) {
		if ((rc = set_uint(&v, 1, 60000, flag, value, err)) > 0)
			cfg->heartbeat_ms = (unsigned)v;
		return rc;
	}
	if (!strcmp(flag, "--election-timeout")) {
		if ((rc = set_uint(&v, 1, 600000, flag, value, err)) > 0)
			cfg->election_ms = (unsigned)v;
		return rc;
	}
	if (!strcmp(flag, "--snapshot-count"))
		return set_uint(&cfg->snapshot_count, 1, UINT64_MAX / 2, flag, value, err);
	if (!strcmp(flag, "--snapshot-catchup-entries"))
		return set_uint(&cfg->snapshot_catchup_entries, 1, UINT64_MAX / 2, flag, value, err);
	if (!strcmp(flag, "--peer-cert-file"))
		return set_str(cfg->peer_cert, sizeof cfg->peer_cert, flag, value, err);
	if (!strcmp(flag, "--peer-key-file"))
		return set_str(cfg->peer_key, sizeof cfg->peer_key, flag, value, err);
	if (!strcmp(flag, "--peer-trusted-ca-file"))
		return set_str(cfg->peer_ca, sizeof cfg->peer_ca, flag, value, err);
	if (!strcmp(flag, "--peer-cert-allowed-cn"))
		return set_str(cfg->peer_allowed_cn, sizeof cfg->peer_allowed_cn, flag, value, err);
	if (!strcmp(flag, "--peer-client-cert-auth"))
		return set_bool(&cfg->peer_client_cert_auth, flag, value, err);
	if (!strcmp(flag, "--peer-auto-tls"))
		return set_bool(&cfg->peer_auto_tls, flag, value, err);
	if (!strcmp(flag, "--log-level")) {
		if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
		    strcmp(value, "error")) {
			fprintf(err, "raftfs: %s: '%s' is not debug, info, warn or error\n", flag,
				value);
			return -EINVAL;
		}
		strcpy(cfg->log_level, value);
		return 1;
	}
	return 0;
}

/* A file the member will read: it exists and can be read; says why not. */
static int check_file(const char *path, const char *flag, FILE *err)
{
	if (access(path, R_OK) != 0) {
		fprintf(err, "raftfs: %s: %s: %s\n", flag, path, strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* The peer TLS flags together: files in pairs and readable, the key its owner's only. */
static int check_tls(struct fs_member_config *cfg, FILE *err)
{
	if (!cfg->peer_cert[0] != !cfg->peer_key[0]) {
		fprintf(err, "raftfs: --peer-cert-file and --peer-key-file go together\n");
		return -EINVAL;
	}
	if (!cfg->peer_cert[0] && (cfg->peer_ca[0] || cfg->peer_allowed_cn[0] ||
				   cfg->peer_client_cert_auth == 1)) {
		fprintf(err, "raftfs: --peer-trusted-ca-file, --peer-client-cert-auth and "
			     "--peer-cert-allowed-cn need --peer-cert-file and --peer-key-file\n");
		return -EINVAL;
	}
	if (cfg->peer_client_cert_auth == 1 && !cfg->peer_ca[0]) {
		fprintf(err, "raftfs: --peer-client-cert-auth needs --peer-trusted-ca-file to verify "
			     "client certificates with\n");
		return -EINVAL;
	}
	if (cfg->peer_allowed_cn[0] && !cfg->peer_ca[0]) {
		fprintf(err, "raftfs: --peer-cert-allowed-cn needs --peer-trusted-ca-file (an "
			     "unverified certificate can claim any CN)\n");
		return -EINVAL;
	}
	if (cfg->peer_client_cert_auth < 0)
		cfg->peer_client_cert_auth = cfg->peer_ca[0] != 0;
	if (!cfg->peer_cert[0])
		return 0;
	if (check_file(cfg->peer_cert, "--peer-cert-file", err) ||
	    check_file(cfg->peer_key, "--peer-key-file", err) ||
	    (cfg->peer_ca[0] && check_file(cfg->peer_ca, "--peer-trusted-ca-file", err)))
		return -EINVAL;
	struct stat st;
	if (stat(cfg->peer_key, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH))) {
		fprintf(err, "raftfs: --peer-key-file: %s is readable by group or others (mode %04o):"
			     " chmod 600 it\n", cfg->peer_key, (unsigned)(st.st_mode & 07777));
		return -EINVAL;
	}
	return 0;
}

int fs_config_finish(struct fs_member_config *cfg, FILE *err)
{
	if (check_tls(cfg, err) != 0)
		return -EINVAL;
	if (cfg->election_ms < 2 * cfg->heartbeat_ms) {
		fprintf(err, "raftfs: --election-timeout (%u ms) must be at least twice "
			     "--heartbeat-interval (%u ms)\n", cfg->election_ms, cfg->heartbeat_ms);
		return -EINVAL;
	}
	if (cfg->n_peers == 0) {
		struct fs_peer_config *p = &cfg->peers[0];
		strcpy(p->name, cfg->name);
		strcpy(p->addr, cfg->listen_peer[0] ? cfg->listen_peer : "127.0.0.1:2380");
		cfg->n_peers = 1;
	}
	int self = -1;
	for (int i = 0; i < cfg->n_peers; i++)
		if (!strcmp(cfg->peers[i].name, cfg->name))
			self = i;
	if (self < 0) {
		fprintf(err, "raftfs: --name %s is not in --initial-cluster\n", cfg->name);
		return -EINVAL;
	}
	if (!cfg->listen_peer[0])
		strcpy(cfg->listen_peer, cfg->peers[self].addr);
	uint64_t ids[FS_MAX_MEMBERS];
	for (int i = 0; i < cfg->n_peers; i++) {
		struct fs_peer_config *p = &cfg->peers[i];
		p->id = ids[i] = fs_member_id(cfg->token, p->name, p->addr);
	}
	cfg->self_id = cfg->peers[self].id;
	cfg->cluster_id = fs_cluster_id(cfg->token, ids, cfg->n_peers);
	if (!cfg->data_dir[0])
		snprintf(cfg->data_dir, sizeof cfg->data_dir, "/var/lib/raftfs/%s", cfg->name);
	return 0;
}
