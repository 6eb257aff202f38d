/*
 * raft.h: the public interface of raftfs's consensus core.
 *
 * The core is a pure state machine in the shape of the etcd raft library: no sockets, no clocks, no
 * files and no global state. Its randomness comes from a seed in its config. Functions return 0 or
 * a negative error: a negative errno value, or one of the RAFT_E* codes below.
 */
#ifndef RAFTFS_RAFT_H
#define RAFTFS_RAFT_H

#include <stddef.h>
#include <stdint.h>

/* Errors of the core, all negative and outside the errno range. */
enum {
	RAFT_EPROPOSALDROPPED = -1001, /* no leader known, or leadership moving: retry later */
	RAFT_ECOMPACTED = -1002,       /* the requested index was compacted away */
	RAFT_EUNAVAILABLE = -1003,     /* the requested entries are not available yet */
	RAFT_ESNAPOUTOFDATE = -1004,   /* a snapshot older than the one held */
	RAFT_ECONFPENDING = -1005,     /* a configuration change is already pending */
};

/* Returns a static, human-readable description of err (a RAFT_E* code or a negative errno). */
const char *raft_strerror(int err);

#endif
