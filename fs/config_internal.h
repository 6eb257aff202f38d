/*
 * config_internal.h: a member's configuration, from the bootstrap flags in etcd's words
 * (--name, --data-dir, --listen-peer, --initial-cluster, --initial-cluster-state,
 * --initial-cluster-token, timings), and the deterministic member and cluster ids derived from them.
 */
#ifndef RAFTFS_FS_CONFIG_INTERNAL_H
#define RAFTFS_FS_CONFIG_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#define FS_MAX_MEMBERS 64
#define FS_NAME_MAX 63
#define FS_ADDR_MAX 63

/* One member of --initial-cluster. */
struct fs_peer_config {
	char name[FS_NAME_MAX + 1]; /* the member's --name */
	char addr[FS_ADDR_MAX + 1]; /* its peer address, host:port */
	uint64_t id;                /* fs_member_id(token, name, addr) */
};

struct fs_member_config {
	char name[FS_NAME_MAX + 1];     /* --name (default "default") */
	char data_dir[4096];            /* --data-dir (default /var/lib/raftfs/NAME) */
	char listen_peer[FS_ADDR_MAX + 1]; /* --listen-peer host:port (default: this member's
					    * address in --initial-cluster) */
	char token[FS_NAME_MAX + 1];    /* --initial-cluster-token (default "raftfs-cluster") */
	int existing;                   /* --initial-cluster-state existing (else new) */
	struct fs_peer_config peers[FS_MAX_MEMBERS]; /* --initial-cluster, in the order given */
	int n_peers;
	unsigned heartbeat_ms;          /* --heartbeat-interval (100) */
	unsigned election_ms;           /* --election-timeout (1000) */
	uint64_t snapshot_count;        /* --snapshot-count (10000) */
	uint64_t snapshot_catchup_entries; /* --snapshot-catchup-entries (5000): log entries kept
					    * behind a snapshot for slow followers */
	char log_level[16];             /* --log-level (info) */
	uint64_t self_id;               /* this member's id, derived */
	uint64_t cluster_id;            /* the cluster's id, derived */
};

/* Fills cfg with the defaults above; no peers. */
void fs_config_defaults(struct fs_member_config *cfg);

/*
 * Applies one flag (with its value) to cfg. Returns 1 when the flag was a member flag and consumed
 * its value, 0 when it is not a member flag, -EINVAL with a one-line message on err for a bad
 * value. Call fs_config_finish after the last flag.
 */
int fs_config_flag(struct fs_member_config *cfg, const char *flag, const char *value, FILE *err);

/*
 * Checks the flags together and derives ids: this member must be in --initial-cluster (a
 * one-member cluster of NAME at --listen-peer, default 127.0.0.1:2380, when the flag is absent);
 * names and addresses unique. -EINVAL with a message on err otherwise.
 */
int fs_config_finish(struct fs_member_config *cfg, FILE *err);

/* Parses "n1=host:port,n2=host:port" into peers; -EINVAL with a message on err. */
int fs_config_parse_cluster(const char *s, struct fs_peer_config *peers, int max, int *n,
			    FILE *err);

/* The member id of (token, name, addr): stable across runs and machines, never 0. */
uint64_t fs_member_id(const char *token, const char *name, const char *addr);

/* The cluster id of a token and a set of member ids (any order): never 0. */
uint64_t fs_cluster_id(const char *token, const uint64_t *ids, int n);

#endif
