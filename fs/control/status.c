/*
 * status.c: the status of this member and its cluster, as the JSON of `.raftfs/status` (and of
 * `status` and `member list` with -w json) or as the table `raftfs status` prints: leader, term,
 * raft indexes, revisions, alarms, the session lease, the inotify replay's backlog, whether peer
 * traffic is TLS, and each member with its role and the subject of its certificate.
 */
#include "control/internal.h"

#include <inttypes.h>
#include <string.h>

static const char *peer_name(const struct fs_peer_config *peers, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (peers[i].id == id)
			return peers[i].name;
	return "";
}

void fs__control_status_render(struct fs_control *c, struct out *o, int json)
{
	struct fs_member_status st;
	fs_member_status(c->member, &st);
	struct fs_peer_config peers[FS_MAX_MEMBERS];
	int np = fs_member_peers(c->member, peers, FS_MAX_MEMBERS);
	uint64_t corrupt_by = 0, backlog = 0, dropped = 0;
	int corrupt = fs_kv_corrupt(c->store, &corrupt_by), nospace = store_alarm_nospace(c->store);
	if (c->replay_counts)
		c->replay_counts(c->replay_arg, &backlog, &dropped);
	const char *security = fs_member_peer_security(c->member);
	if (json) {
		fs__control_out_printf(o, "{\"member\":");
		fs__control_out_json_str(o, c->cfg->name, strlen(c->cfg->name));
		fs__control_out_printf(o, ",\"member_id\":\"%016" PRIx64
					  "\",\"cluster_id\":\"%016" PRIx64 "\",\"leader\":",
				       st.id, st.cluster_id);
		const char *ln = peer_name(peers, np, st.leader);
		if (st.leader)
			fs__control_out_json_str(o, ln, strlen(ln));
		else
			fs__control_out_printf(o, "null"); /* an election is on */
		fs__control_out_printf(o, ",\"leader_id\":\"%016" PRIx64 "\",\"term\":%" PRIu64
					  ",\"raft_index\":%" PRIu64 ",\"commit_index\":%" PRIu64
					  ",\"applied_index\":%" PRIu64 ",\"revision\":%" PRId64
					  ",\"compact_revision\":%" PRId64
					  ",\"session_lease\":%" PRId64
					  ",\"remote_inotify\":%s,\"replay_backlog\":%" PRIu64
					  ",\"replay_dropped\":%" PRIu64
					  ",\"peer_tls\":%s,\"peer_traffic\":",
				       st.leader, st.term, st.last_index, st.commit, st.applied,
				       store_rev(c->store), store_compact_rev(c->store), c->session,
				       c->replay_counts ? "true" : "false", backlog, dropped,
				       strcmp(security, "plaintext") ? "true" : "false");
		fs__control_out_json_str(o, security, strlen(security));
		fs__control_out_printf(o, ",\"members\":[");
		for (int i = 0; i < np; i++) {
			int learner = 0;
			for (int j = 0; j < st.n_learners; j++)
				learner |= st.learners[j] == peers[i].id;
			fs__control_out_printf(o, "%s{\"id\":\"%016" PRIx64 "\",\"name\":",
					       i ? "," : "", peers[i].id);
			fs__control_out_json_str(o, peers[i].name, strlen(peers[i].name));
			fs__control_out_printf(o, ",\"peer\":");
			fs__control_out_json_str(o, peers[i].addr, strlen(peers[i].addr));
			fs__control_out_printf(o,
					       ",\"role\":\"%s\",\"is_leader\":%s,\"certificate\":",
					       learner ? "learner" : "voter",
					       peers[i].id == st.leader ? "true" : "false");
			char subject[256];
			if (peers[i].id != st.id &&
			    fs_member_peer_subject(c->member, peers[i].id, subject,
						   sizeof subject) == 0)
				fs__control_out_json_str(o, subject, strlen(subject));
			else /* plaintext, not connected, or this member */
				fs__control_out_printf(o, "null");
			fs__control_out_printf(o, "}");
		}
		fs__control_out_printf(o, "],\"alarms\":[");
		if (nospace)
			fs__control_out_printf(o, "\"NOSPACE\"");
		if (corrupt)
			fs__control_out_printf(o, "%s\"CORRUPT\"", nospace ? "," : "");
		fs__control_out_printf(o, "]}\n");
		return;
	}
	fs__control_out_printf(o, "member           %s (%016" PRIx64 ")\n", c->cfg->name, st.id);
	fs__control_out_printf(o, "cluster          %016" PRIx64 "\n", st.cluster_id);
	if (st.leader)
		fs__control_out_printf(o, "leader           %s (%016" PRIx64 ")\n",
				       peer_name(peers, np, st.leader), st.leader);
	else
		fs__control_out_printf(o, "leader           none\n");
	fs__control_out_printf(o, "term             %" PRIu64 "\n", st.term);
	fs__control_out_printf(o, "raft index       %" PRIu64 " (commit %" PRIu64
				  ", applied %" PRIu64 ")\n",
			       st.last_index, st.commit, st.applied);
	fs__control_out_printf(o, "revision         %" PRId64 " (compacted at %" PRId64 ")\n",
			       store_rev(c->store), store_compact_rev(c->store));
	fs__control_out_printf(o, "alarms           %s%s%s\n", nospace ? "NOSPACE " : "",
			       corrupt ? "CORRUPT" : "", nospace || corrupt ? "" : "none");
	if (c->session)
		fs__control_out_printf(o, "session lease    %" PRId64 "\n", c->session);
	if (c->replay_counts)
		fs__control_out_printf(o, "inotify replay   %" PRIu64 " changes to replay (%" PRIu64
					  " dropped)\n",
				       backlog, dropped);
	else
		fs__control_out_printf(o, "inotify replay   off (-o no_remote_inotify)\n");
	fs__control_out_printf(o, "peer traffic     %s\n", security);
	fs__control_out_printf(o, "members\n  %-16s  %-16s  %-21s  %s\n", "ID", "NAME", "PEER",
			       "ROLE");
	for (int i = 0; i < np; i++) {
		int learner = 0;
		for (int j = 0; j < st.n_learners; j++)
			learner |= st.learners[j] == peers[i].id;
		fs__control_out_printf(o, "  %016" PRIx64 "  %-16s  %-21s  %s%s\n", peers[i].id,
				       peers[i].name, peers[i].addr, learner ? "learner" : "voter",
				       peers[i].id == st.leader ? " (leader)" : "");
	}
	if (!strcmp(security, "plaintext"))
		return;
	fs__control_out_printf(o, "peer certificates (subjects, as connected now)\n");
	for (int i = 0; i < np; i++) {
		char subject[256];
		if (peers[i].id == st.id)
			continue;
		int rc = fs_member_peer_subject(c->member, peers[i].id, subject, sizeof subject);
		fs__control_out_printf(o, "  %-16s  %s\n", peers[i].name,
				       rc == 0 ? (subject[0] ? subject : "(no certificate)")
					       : "(not connected)");
	}
}
