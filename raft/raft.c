/*
 * raft.c: the consensus core of raftfs (etcd raft library's shape): elections, replication,
 * membership, snapshots, ReadIndex and leadership transfer, driven by tick/step and drained through
 * ready/advance.
 */
#include "raft.h"

#include <string.h>

const char *raft_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case RAFT_EPROPOSALDROPPED:
		return "proposal dropped: no leader known";
	case RAFT_ECOMPACTED:
		return "requested index is unavailable due to compaction";
	case RAFT_EUNAVAILABLE:
		return "requested entry at index is unavailable";
	case RAFT_ESNAPOUTOFDATE:
		return "requested index is older than the existing snapshot";
	case RAFT_ECONFPENDING:
		return "a configuration change is already pending";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}
