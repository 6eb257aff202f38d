/*
 * member.c: the member's server loop (see member/member.h): recovery from the data dir, the
 * raft Ready cycle with the WAL on a worker thread, apply, wait table, snapshots, membership.
 *
 * While a Ready is being persisted on the worker thread, the raft core is left alone: messages,
 * proposals, ticks and transport reports that arrive meanwhile wait in the member's inbox and are
 * fed to raft together once the Ready is advanced. They then form the next Ready, so one fdatasync
 * covers everything that arrived during the previous one (group commit), and the worker never
 * reads memory the core could change under it.
 *
 * Snapshots are taken in a forked child, as redis saves in the background, unless the last one
 * was under SMALL_SNAPSHOT_BYTES: a fork costs milliseconds and copy-on-write faults afterwards,
 * more than writing a small image on the loop. The fork is a
 * copy-on-write image of the state machine at the applied index, which the child serializes,
 * compresses and writes (fsync, rename) while the loop goes on. Once it exits, a worker thread
 * appends the WAL's snapshot record and purges, and the loop hands the snapshot to raft's storage
 * without its data and compacts the log. Only if fork fails is the snapshot taken on the loop.
 *
 * A follower behind the log gets a snapshot built when it needs one, as etcd's merged snapshot:
 * raft's MsgSnap only says so (its content may predate the follower's addition, which the
 * follower's raft refuses). The member streams its newest snapshot file when that is at or after
 * its applied index and names the follower, and otherwise takes one at the applied index first;
 * the log is not compacted past a snapshot in flight, a leader that steps down drops the ones not
 * streaming yet, and a failed one is sent again only after a backoff and a line saying why.
 *
 * Entry payloads are envelopes: an 8-byte little-endian request id, then the state machine's
 * request. Snapshot data is an envelope too: the membership with addresses, then the state
 * machine's image; a snapshot file holds the raft snapshot metadata before it.
 */
#include "member/member.h"
#include "member/wait.h"

#include "common/common.h"
#include "raft.h"
#include "member/transport.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define META_MAGIC "RFSM"
#define SNAP_MAGIC "RFSS"
#define ENVELOPE_ID_BYTES 8
#define SMALL_SNAPSHOT_BYTES (64 * 1024) /* after a snapshot this small, the next is on the loop */

/* A member of the cluster as this member knows it: id, name and peer address. */
struct member_peer {
	uint64_t id;
	char name[FS_NAME_MAX + 1];
	char addr[FS_ADDR_MAX + 1];
};

/* Something that arrived while a Ready was being persisted, fed to raft afterwards. */
struct inbox_item {
	struct inbox_item *next;
	enum { IN_MESSAGE, IN_PROPOSAL, IN_CONF_CHANGE, IN_UNREACHABLE, IN_SNAP_STATUS } kind;
	uint64_t peer;            /* IN_UNREACHABLE, IN_SNAP_STATUS */
	int ok;                   /* IN_SNAP_STATUS */
	struct raft_message msg;  /* IN_MESSAGE: decoded, freed with raft_message_free_decoded */
	uint8_t *snap_data;       /* IN_MESSAGE of a streamed snapshot: its data, owned */
	struct raft_conf_change cc; /* IN_CONF_CHANGE; context points into data */
	size_t len;               /* IN_PROPOSAL, IN_CONF_CHANGE: bytes of data */
	uint8_t data[];           /* IN_PROPOSAL: the envelope; IN_CONF_CHANGE: the context */
};

/*
 * A linearizable read waiting for its read index, then for apply to reach it. Reads share
 * ReadIndex requests as etcd's linearizable read loop does: one request is in flight at a time,
 * and every read that arrives meanwhile waits for the next one, sent once the first is answered
 * (an index learned before a read arrived would not cover writes completed before it began).
 */
struct read_wait {
	struct read_wait *next;
	uint64_t ctx;      /* the id of the ReadIndex request it waits for; 0: the next one */
	uint64_t index;    /* the read index once known, else 0 */
	uint64_t deadline; /* uv_now ms */
	fs_wait_cb cb;
	void *arg;
};

/*
 * A snapshot a follower needs (etcd's merged snapshot). raft's MsgSnap only says that the follower
 * is behind the log; its content, the storage's snapshot, may predate the follower's addition,
 * and the follower's raft refuses a snapshot whose membership does not name it. So the member
 * streams the newest snapshot file once it is at or after the applied index of raft's request
 * and names the follower, and otherwise takes one at the applied index first (see snap_pump).
 */
enum snap_peer_state {
	SP_IDLE,      /* nothing asked */
	SP_WANT,      /* raft asked: a file to read, a snapshot to take, or a backoff to wait out */
	SP_BUILDING,  /* waits for the snapshot being taken */
	SP_READING,   /* its file is read on a worker thread */
	SP_STREAMING, /* the transport streams it */
};

struct snap_peer {
	struct fs_member *m;
	uint64_t id;                  /* the follower; 0: a free slot */
	enum snap_peer_state state;
	uint64_t want_index;          /* the applied index when raft asked */
	uint64_t lead_term;           /* the term of raft's MsgSnap */
	uint64_t index, term;         /* the snapshot read or streamed */
	uint64_t retry_at;            /* uv_now ms: no new attempt before, after a failure */
	uint64_t failed_index, failed_term; /* the last snapshot whose send failed; 0: none */
	int failed_reason;            /* why (enum fs_snap_reason) */
	unsigned attempts;            /* failed sends of that snapshot in a row */
	uv_work_t read;               /* reads the newest file (SP_READING) */
	int reading;                  /* read is queued or running */
	int read_rc;
	void *file;                   /* what it read: the whole file, owned */
	size_t flen;
	struct raft_snapshot snap;    /* parsed from file (data points into it) */
};

struct fs_member {
	uv_loop_t *loop;
	struct fs_member_config cfg;  /* a copy; peers are the flags' initial cluster */
	struct fs_member_options opt;
	struct fs_state_machine sm;
	uint64_t id, cluster_id;
	char wal_dir[4200], snap_dir[4200], incoming_dir[4200];
	int lock_fd;
	struct wal *wal;
	struct raft_memory_storage *ms;
	struct raft_storage st;
	struct raft *raft;
	struct fs_transport *tr;
	struct fs_wait wait;
	struct fs_reqid reqid;

	struct member_peer peers[FS_MAX_MEMBERS]; /* every member with its address */
	int n_peers;
	struct raft_conf_state conf;  /* the applied membership */

	uint64_t applied;             /* last applied index */
	uint64_t recovered_commit;    /* the commit index the WAL held at start */
	uint64_t written_commit;      /* the commit index of the last hard state written */
	uint64_t synced_commit;       /* the highest commit index known durable in the WAL */
	uint64_t snap_index, snap_term; /* the newest snapshot */
	uint64_t lead;                /* the leader known, or 0 */
	int raft_state;

	uv_timer_t ticker;
	uv_check_t check;             /* runs the Ready cycle once per loop iteration */
	uv_work_t work;
	int persisting;               /* a Ready is on the worker thread */
	struct raft_ready rd;         /* that Ready */
	struct wal_entry *went;       /* its entries, copied for the worker */
	uint8_t *went_data;
	struct wal_hard_state whs;
	int sync;                     /* that Ready is fsynced: must_sync, or it applies entries
				       * past synced_commit */
	int save_rc;                  /* the worker's result */
	char save_msg[1024];          /* and its wal_errmsg (thread-local there) */
	int sent_early;               /* the leader sent that Ready's messages before persisting */

	struct inbox_item *in_head, *in_tail; /* arrived during a persist */
	int pending_ticks;
	struct inbox_item *waiting_leader; /* proposals refused for want of a leader, retried
					    * before the next Ready once one is known */
	struct read_wait *reads;
	uint64_t read_seq;
	uint64_t read_round;          /* the ctx of the ReadIndex request in flight, 0: none */

	int stopping;                 /* fs_member_stop was called: no new work */
	int transferring;             /* stopping waits for leadership to move, until stop_deadline */
	uint64_t stop_deadline;
	int closing;                  /* handles are being closed */
	int removed;                  /* concluded (and said once): this member was removed */
	uint64_t removed_at;          /* our removal applied at this index; not conclusive while a
				       * later entry may add us back (removal_settle) */
	uint64_t leader_commit;       /* the highest commit index a leader's append announced */
	int joining;                  /* bootstrapped to join a running cluster: not ready to serve
				       * before it applied what the leader had committed (join_target) */
	uint64_t join_target;         /* the first commit index a leader announced, 0: none yet */
	uint64_t heard_ms;            /* when a leader's append, heartbeat or snapshot came last */
	int was_member;               /* an applied membership included this member */
	uint64_t refused_by[FS_MAX_MEMBERS]; /* peers that no longer know this member */
	int n_refused;
	int open_handles;
	/* A snapshot being taken in the background (see the top of this file). */
	pid_t snap_pid;               /* the child writing it, or 0 */
	struct raft_snapshot_meta snap_meta; /* what it is writing */
	uint64_t snap_started;        /* uv_hrtime at the fork */
	uint64_t snap_fork_ns;        /* how long fork held the loop */
	double snap_child_cpu_ms;     /* the CPU time the child took (user and system) */
	int snap_small;               /* the last snapshot was under SMALL_SNAPSHOT_BYTES */
	uv_work_t snap_work;          /* after the child: WAL record, purge */
	int snap_working;
	int snap_rc;                  /* the worker's result */
	char snap_msg[1024];          /* and its wal_errmsg (thread-local there) */
	uint64_t snap_file_index;     /* the newest snapshot file when the child's was done */
	uint64_t snap_file_bytes;     /* and its size */
	struct snap_peer snap_peers[FS_MAX_MEMBERS]; /* snapshots for followers (leader only) */
	int snap_reads;               /* their reads queued or running on worker threads */
	uint64_t snapshots_sent, snapshot_bytes_sent; /* streams started, and their bytes */
	unsigned snap_segs, snap_snaps; /* purged */
	void (*done)(void *arg);
	void *done_arg;
};

/* ---- small encoders ------------------------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A byte writer that counts when buf is NULL. */
struct wbuf {
	uint8_t *p;
	size_t n;
};

static void w_bytes(struct wbuf *w, const void *src, size_t len)
{
	if (w->p)
		memcpy(w->p + w->n, src, len);
	w->n += len;
}

static void w_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	w_bytes(w, b, 8);
}

static void w_str(struct wbuf *w, const char *s)
{
	uint8_t len = (uint8_t)strlen(s);
	w_bytes(w, &len, 1);
	w_bytes(w, s, len);
}

struct rbuf {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static const uint8_t *r_bytes(struct rbuf *r, size_t len)
{
	if (r->bad || r->n - r->off < len) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += len;
	return p;
}

static uint64_t r_u64(struct rbuf *r)
{
	const uint8_t *p = r_bytes(r, 8);
	return p ? get_u64(p) : 0;
}

static void r_str(struct rbuf *r, char *dst, size_t cap)
{
	const uint8_t *lp = r_bytes(r, 1);
	size_t len = lp ? *lp : 0;
	const uint8_t *p = r_bytes(r, len);
	if (!p || len >= cap) {
		r->bad = 1;
		dst[0] = '\0';
		return;
	}
	memcpy(dst, p, len);
	dst[len] = '\0';
}

/* The peer table: count, then id, name, address of each. */
static void w_peers(struct wbuf *w, const struct member_peer *peers, int n)
{
	w_u64(w, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		w_u64(w, peers[i].id);
		w_str(w, peers[i].name);
		w_str(w, peers[i].addr);
	}
}

static int r_peers(struct rbuf *r, struct member_peer *peers, int *n)
{
	uint64_t count = r_u64(r);
	if (r->bad || count > FS_MAX_MEMBERS)
		return -EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		peers[i].id = r_u64(r);
		r_str(r, peers[i].name, sizeof peers[i].name);
		r_str(r, peers[i].addr, sizeof peers[i].addr);
	}
	*n = (int)count;
	return r->bad ? -EINVAL : 0;
}

/* ---- membership table ------------------------------------------------------------------------ */

static struct member_peer *peer_by_id(struct fs_member *m, uint64_t id)
{
	for (int i = 0; i < m->n_peers; i++)
		if (m->peers[i].id == id)
			return &m->peers[i];
	return NULL;
}

static void peer_set(struct fs_member *m, uint64_t id, const char *name, const char *addr)
{
	struct member_peer *p = peer_by_id(m, id);
	if (!p) {
		if (m->n_peers == FS_MAX_MEMBERS) {
			FS_ERROR("member %016" PRIx64 " not added: the table holds %d members", id,
				 FS_MAX_MEMBERS);
			return;
		}
		p = &m->peers[m->n_peers++];
		p->id = id;
	}
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	if (id != m->id && m->tr && fs_transport_add_peer(m->tr, id, addr) != 0)
		FS_ERROR("member %s (%016" PRIx64 "): bad peer address %s", name, id, addr);
}

static void peer_remove(struct fs_member *m, uint64_t id)
{
	struct member_peer *p = peer_by_id(m, id);
	if (!p)
		return;
	*p = m->peers[--m->n_peers];
	/*
	 * A member joining replays the cluster's whole history, old removals of members that are
	 * back since included: it keeps talking to every peer it knows of until it has caught up
	 * (join_settle), or it could neither hear the leader nor answer it.
	 */
	if (id != m->id && m->tr && !m->joining)
		fs_transport_remove_peer(m->tr, id);
}

/* Makes the transport's peers those of the table. */
static void peers_connect(struct fs_member *m)
{
	for (int i = 0; i < m->n_peers; i++)
		if (m->peers[i].id != m->id &&
		    fs_transport_add_peer(m->tr, m->peers[i].id, m->peers[i].addr) != 0)
			FS_ERROR("member %s (%016" PRIx64 "): bad peer address %s", m->peers[i].name,
				 m->peers[i].id, m->peers[i].addr);
}

/* ---- snapshots -------------------------------------------------------------------------------- */

/*
 * Snapshot data: magic, the peers with their addresses, the image's length, then the state
 * machine's image. This is all of it but the image (malloc'd into *out).
 */
static int snapshot_data_header(struct fs_member *m, size_t image_len, uint8_t **out, size_t *len)
{
	struct wbuf w = {0};
	for (int pass = 0; pass < 2; pass++) {
		w.n = 0;
		w_bytes(&w, SNAP_MAGIC, 4);
		w_peers(&w, m->peers, m->n_peers);
		w_u64(&w, image_len);
		if (pass == 0 && !(w.p = malloc(w.n)))
			return -ENOMEM;
	}
	*out = w.p;
	*len = w.n;
	return 0;
}

/* Snapshot data in one buffer (malloc'd into *out): the header, then a copy of the image. */
static int snapshot_data_encode(struct fs_member *m, const uint8_t *image, size_t image_len,
				uint8_t **out, size_t *len)
{
	uint8_t *hdr;
	size_t hl;
	int rc = snapshot_data_header(m, image_len, &hdr, &hl);
	if (rc != 0)
		return rc;
	uint8_t *p = malloc(hl + image_len);
	if (p) {
		memcpy(p, hdr, hl);
		if (image_len)
			memcpy(p + hl, image, image_len);
	}
	free(hdr);
	if (!p)
		return -ENOMEM;
	*out = p;
	*len = hl + image_len;
	return 0;
}

static int snapshot_data_build(struct fs_member *m, uint8_t **out, size_t *len)
{
	uint8_t *image = NULL;
	size_t image_len = 0;
	int rc = m->sm.snapshot(m->sm.ud, &image, &image_len);
	if (rc == 0)
		rc = snapshot_data_encode(m, image, image_len, out, len);
	free(image);
	return rc;
}

/* Restores the peers and the state machine from snapshot data. */
static int snapshot_data_restore(struct fs_member *m, const uint8_t *data, size_t len)
{
	struct rbuf r = {data, len, 0, 0};
	const uint8_t *magic = r_bytes(&r, 4);
	struct member_peer peers[FS_MAX_MEMBERS];
	int n = 0;
	if (!magic || memcmp(magic, SNAP_MAGIC, 4) != 0 || r_peers(&r, peers, &n) != 0)
		return -EINVAL;
	uint64_t image_len = r_u64(&r);
	const uint8_t *image = r_bytes(&r, image_len);
	if (!image && image_len)
		return -EINVAL;
	int rc = m->sm.restore(m->sm.ud, image, image_len);
	if (rc != 0)
		return rc;
	/* Peers: drop those gone, add or readdress the rest. */
	for (int i = m->n_peers - 1; i >= 0; i--) {
		int keep = 0;
		for (int j = 0; j < n; j++)
			keep |= peers[j].id == m->peers[i].id;
		if (!keep)
			peer_remove(m, m->peers[i].id);
	}
	for (int j = 0; j < n; j++)
		peer_set(m, peers[j].id, peers[j].name, peers[j].addr);
	return 0;
}

/*
 * A failed fsync or fdatasync (wal_set_fatal): what is on disk is unknown, so nothing more may be
 * persisted or acknowledged, and the fsync is never tried again (after a failed one the kernel
 * may have dropped the dirty pages and report the next as a success). The member stops at once,
 * on whichever thread met it: _exit, since exit handlers would race the other threads. Its
 * mount's guard then aborts the FUSE connection.
 */
static void wal_fatal(const char *msg)
{
	FS_FATAL("%s", msg);
	_exit(1);
}

/*
 * The snapshot child's: it must not log (see maybe_snapshot), so it leaves the message in
 * snap_child_msg, shared with the parent, and exits with SNAP_CHILD_FATAL; the parent says it and
 * stops (snap_child_poll).
 */
#define SNAP_CHILD_FATAL 3
static char *snap_child_msg; /* a shared anonymous page, made before the first fork */

static void snap_child_fatal(const char *msg)
{
	if (snap_child_msg)
		snprintf(snap_child_msg, 1024, "%s", msg);
	_exit(SNAP_CHILD_FATAL);
}

/*
 * A snapshot file: u64 meta length, raftpb.SnapshotMetadata, then the snapshot data, here in n
 * pieces (1 or 2) written where they lie.
 */
static int snapshot_file_writev(struct fs_member *m, const struct raft_snapshot_meta *meta,
				const struct iovec *data, int n)
{
	if (n < 1 || n > 2)
		return -EINVAL;
	size_t ml = raft_snapshot_meta_encoded_size(meta);
	uint8_t *hdr = malloc(8 + ml);
	if (!hdr)
		return -ENOMEM;
	put_u64(hdr, ml);
	raft_snapshot_meta_encode(meta, hdr + 8);
	struct iovec iov[3] = {{hdr, 8 + ml}, data[0], n > 1 ? data[1] : (struct iovec){0}};
	int rc = wal_snap_savev(m->snap_dir, meta->term, meta->index, iov, 1 + n);
	free(hdr);
	return rc;
}

static int snapshot_file_write(struct fs_member *m, const struct raft_snapshot *snap)
{
	return snapshot_file_writev(m, &snap->meta, &(struct iovec){snap->data, snap->len}, 1);
}

/*
 * The forked child's snapshot: the image, and the file written from it and the header without
 * putting them together in memory (a copy of a big image is page faults in fresh memory).
 */
static int snapshot_file_build(struct fs_member *m, const struct raft_snapshot_meta *meta)
{
	uint8_t *image = NULL, *hdr = NULL;
	size_t image_len = 0, hl = 0;
	int rc = m->sm.snapshot(m->sm.ud, &image, &image_len);
	if (rc == 0)
		rc = snapshot_data_header(m, image_len, &hdr, &hl);
	if (rc == 0)
		rc = snapshot_file_writev(m, meta,
					  (struct iovec[]){{hdr, hl}, {image, image_len}}, 2);
	free(hdr);
	free(image);
	return rc;
}

/* The snapshot file, then its record in the WAL. */
static int snapshot_file_save(struct fs_member *m, const struct raft_snapshot *snap)
{
	int rc = snapshot_file_write(m, snap);
	if (rc == 0)
		rc = wal_save_snapshot(m->wal, (struct wal_snapshot_ref){snap->meta.index,
									 snap->meta.term});
	return rc;
}

static int snapshot_file_parse(const uint8_t *buf, size_t len, struct raft_snapshot *snap)
{
	if (len < 8)
		return -EINVAL;
	uint64_t ml = get_u64(buf);
	if (ml > len - 8 || raft_snapshot_meta_decode(buf + 8, ml, &snap->meta) != 0)
		return -EINVAL;
	snap->data = (uint8_t *)buf + 8 + ml;
	snap->len = len - 8 - ml;
	return 0;
}

/*
 * raft's storage asks for the data of a snapshot adopted without it (snapshot_taken) when a
 * follower needs one. The member never streams raft's snapshot content (snap_pump builds what it
 * sends), so raft gets empty data: it needs only the snapshot's metadata to decide on a MsgSnap.
 */
static int snapshot_data_none(void *arg, const struct raft_snapshot_meta *meta, uint8_t **data,
			      size_t *len)
{
	*data = NULL;
	*len = 0;
	return 0;
}

/*
 * Snapshots first, then the WAL only up to the oldest snapshot kept: if the newest one rots,
 * restart falls back to an older one and needs the log from there. Thread-safe (files only).
 */
static void snapshot_purge(struct fs_member *m, unsigned *segs, unsigned *snaps)
{
	*segs = *snaps = 0;
	wal_snap_purge(m->snap_dir, 0, snaps);
	struct wal_snap_info *kept = NULL;
	size_t n_kept = 0;
	if (wal_snap_list(m->snap_dir, &kept, &n_kept) == 0 && n_kept > 0)
		wal_purge(m->wal_dir, kept[n_kept - 1].index, 0, segs);
	free(kept);
}

/*
 * The lowest snapshot index a follower's snapshot in flight may have (UINT64_MAX: none in
 * flight), and that follower: the log must keep the entries after it, or the follower would need
 * yet another snapshot once it has this one (etcd skips compaction while a snapshot is in flight).
 */
static uint64_t snap_in_flight_floor(const struct fs_member *m, uint64_t *peer)
{
	uint64_t floor = UINT64_MAX;
	for (int i = 0; i < FS_MAX_MEMBERS; i++) {
		const struct snap_peer *sp = &m->snap_peers[i];
		if (!sp->id || sp->state == SP_IDLE)
			continue;
		uint64_t at = sp->state >= SP_READING ? sp->index : sp->want_index;
		if (at < floor) {
			floor = at;
			*peer = sp->id;
		}
	}
	return floor;
}

/*
 * A snapshot at meta->index is on disk with its WAL record (bytes in its file): raft's storage
 * takes it, data and all (snap->data: malloc'd, the storage's from here on, freed here when
 * refused; NULL: not in memory, snapshot_data_none).
 */
static void snapshot_taken(struct fs_member *m, const struct raft_snapshot *snap, size_t bytes,
			   double total_ms, double loop_ms, unsigned segs, unsigned snaps)
{
	int rc = raft_memory_storage_adopt_snapshot(m->ms, snap->meta.index, &snap->meta.conf,
						    snap->data, snap->len);
	if (rc != 0) {
		FS_ERROR("snapshot at index %" PRIu64 " not taken by raft's storage: %s",
			 snap->meta.index, raft_strerror(rc));
		free(snap->data);
		return;
	}
	m->snap_index = snap->meta.index;
	m->snap_term = snap->meta.term;
	m->snap_small = bytes < SMALL_SNAPSHOT_BYTES;
	uint64_t first = 0;
	m->st.first_index(m->st.data, &first);
	uint64_t keep = m->opt.catchup_entries, peer = 0;
	uint64_t to = m->snap_index > keep ? m->snap_index - keep : 0;
	uint64_t floor = snap_in_flight_floor(m, &peer);
	if (floor < to) {
		FS_INFO("log compacted to index %" PRIu64 ", not %" PRIu64 ": a snapshot at index %"
			PRIu64 " or later is on its way to %016" PRIx64, floor, to, floor, peer);
		to = floor;
	}
	if (to > first)
		raft_memory_storage_compact(m->ms, to);
	if (loop_ms < total_ms)
		FS_INFO("snapshot at index %" PRIu64 " term %" PRIu64 ": %zu bytes in %.1f ms, %.1f ms "
			"of it on the loop, %.1f ms of CPU in its child process; purged %u WAL segments "
			"and %u snapshots", snap->meta.index, snap->meta.term, bytes, total_ms,
			loop_ms, m->snap_child_cpu_ms, segs, snaps);
	else
		FS_INFO("snapshot at index %" PRIu64 " term %" PRIu64 ": %zu bytes in %.1f ms on the "
			"loop; purged %u WAL segments and %u snapshots", snap->meta.index,
			snap->meta.term, bytes, total_ms, segs, snaps);
}

/* On the loop, when fork is not possible: image, file, WAL record, all at once. */
static void snapshot_on_loop(struct fs_member *m, const struct raft_snapshot_meta *meta)
{
	struct raft_snapshot snap = {.meta = *meta};
	uint64_t t0 = uv_hrtime();
	int rc = snapshot_data_build(m, &snap.data, &snap.len);
	if (rc == 0)
		rc = snapshot_file_save(m, &snap);
	if (rc != 0) {
		FS_ERROR("snapshot at index %" PRIu64 " failed: %s (%s)", meta->index,
			 raft_strerror(rc), wal_errmsg());
		free(snap.data);
		return;
	}
	unsigned segs, snaps;
	snapshot_purge(m, &segs, &snaps);
	double ms = (double)(uv_hrtime() - t0) / 1e6;
	snapshot_taken(m, &snap, snap.len, ms, ms, segs, snaps);
}

/*
 * Takes a snapshot at the applied index when snapshot_count entries were applied since the last,
 * or, with force (a follower needs one: snap_pump), when anything was applied since the last.
 */
static void maybe_snapshot(struct fs_member *m, int force)
{
	uint64_t due = m->snap_index + (force ? 1 : m->cfg.snapshot_count);
	if (m->applied < due || m->stopping || m->snap_pid || m->snap_working)
		return;
	struct raft_snapshot_meta meta = {.index = m->applied, .conf = m->conf};
	int rc = m->st.term(m->st.data, m->applied, &meta.term);
	if (rc != 0) {
		FS_ERROR("snapshot at index %" PRIu64 " failed: %s", m->applied, raft_strerror(rc));
		return;
	}
	if (m->snap_small && !m->opt.snapshot_fork) {
		snapshot_on_loop(m, &meta);
		return;
	}
	if (!snap_child_msg) {
		void *p = mmap(NULL, 1024, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		snap_child_msg = p == MAP_FAILED ? NULL : p;
	}
	if (snap_child_msg)
		snap_child_msg[0] = 0;
	fflush(NULL); /* nothing buffered is written twice */
	uint64_t t0 = uv_hrtime();
	pid_t pid = fork();
	if (pid == 0) {
		/* The child: no locks of the parent's threads are taken here (no logging). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		wal_set_fatal(snap_child_fatal);
		_exit(snapshot_file_build(m, &meta) == 0 ? 0 : 1);
	}
	if (pid < 0) {
		FS_WARN("snapshot at index %" PRIu64 ": fork failed (%s), taking it on the loop",
			m->applied, strerror(errno));
		snapshot_on_loop(m, &meta);
		return;
	}
	m->snap_pid = pid;
	m->snap_meta = meta;
	m->snap_started = t0;
	m->snap_fork_ns = uv_hrtime() - t0;
}

/*
 * The child wrote the file: its WAL record, and the purge. The file is not read back: snap_pump
 * reads it when a follower needs it, which most snapshots never see, and a restart checks its crc
 * before using it (falling back to an older one).
 */
static void snap_finish_work(uv_work_t *req)
{
	struct fs_member *m = req->data;
	struct wal_snap_info *v = NULL;
	size_t n = 0;
	m->snap_rc = wal_snap_list(m->snap_dir, &v, &n);
	m->snap_file_index = n ? v[0].index : 0;
	m->snap_file_bytes = n ? v[0].bytes : 0;
	free(v);
	if (m->snap_rc == 0 && m->snap_file_index == m->snap_meta.index)
		m->snap_rc = wal_save_snapshot(m->wal, (struct wal_snapshot_ref){m->snap_meta.index,
										 m->snap_meta.term});
	if (m->snap_rc == 0 && m->snap_file_index == m->snap_meta.index)
		snapshot_purge(m, &m->snap_segs, &m->snap_snaps);
	if (m->snap_rc != 0)
		snprintf(m->snap_msg, sizeof m->snap_msg, "%s", wal_errmsg());
}

static void handles_closed_maybe_done(struct fs_member *m);
static void snap_pump(struct fs_member *m);
static void snap_builds_failed(struct fs_member *m);

static void snap_finish_done(uv_work_t *req, int status)
{
	struct fs_member *m = req->data;
	m->snap_working = 0;
	double ms = (double)(uv_hrtime() - m->snap_started) / 1e6;
	if (m->snap_rc != 0) {
		FS_ERROR("snapshot at index %" PRIu64 " failed: %s (%s)", m->snap_meta.index,
			 strerror(-m->snap_rc), m->snap_msg);
		snap_builds_failed(m);
	} else if (m->snap_file_index != m->snap_meta.index) {
		FS_WARN("snapshot at index %" PRIu64 " superseded by the one at index %" PRIu64,
			m->snap_meta.index, m->snap_file_index);
	} else if (m->snap_meta.index > m->snap_index && !m->closing) {
		snapshot_taken(m, &(struct raft_snapshot){.meta = m->snap_meta}, m->snap_file_bytes, ms,
			       (double)m->snap_fork_ns / 1e6, m->snap_segs, m->snap_snaps);
	}
	if (m->closing)
		handles_closed_maybe_done(m);
	else
		snap_pump(m);
}

/* The snapshot child has exited: the rest of the work goes to a worker thread. */
static void snap_child_poll(struct fs_member *m)
{
	int st = 0;
	struct rusage ru;
	if (!m->snap_pid || wait4(m->snap_pid, &st, WNOHANG, &ru) != m->snap_pid)
		return;
	m->snap_pid = 0;
	m->snap_child_cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
			       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	if (WIFEXITED(st) && WEXITSTATUS(st) == SNAP_CHILD_FATAL) {
		FS_FATAL("snapshot at index %" PRIu64 ": %s; stopping", m->snap_meta.index,
			 snap_child_msg && snap_child_msg[0] ? snap_child_msg :
			 "an fsync failed in its child process");
		_exit(1);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		FS_ERROR("snapshot at index %" PRIu64 " failed in its child process (status %d)",
			 m->snap_meta.index, st);
		snap_builds_failed(m);
		return;
	}
	m->snap_working = 1;
	m->snap_work.data = m;
	uv_queue_work(m->loop, &m->snap_work, snap_finish_work, snap_finish_done);
}

/* ---- apply ----------------------------------------------------------------------------------- */

static void member_begin_stop(struct fs_member *m);

/* Remembers that this member has been part of the cluster (see on_peer_refused_unknown). */
static void note_membership(struct fs_member *m)
{
	for (size_t i = 0; i < m->conf.n_voters; i++)
		m->was_member |= m->conf.voters[i] == m->id;
	for (size_t i = 0; i < m->conf.n_learners; i++)
		m->was_member |= m->conf.learners[i] == m->id;
}

static void apply_conf_change(struct fs_member *m, const struct raft_entry *e)
{
	struct raft_conf_change cc;
	if (raft_conf_change_decode(e->data, e->len, &cc) != 0) {
		FS_ERROR("entry %" PRIu64 ": undecodable conf change, skipped", e->index);
		return;
	}
	int rc = raft_apply_conf_change(m->raft, &cc, &m->conf);
	if (rc == 0)
		note_membership(m);
	if (rc == 0) {
		char name[FS_NAME_MAX + 1] = "", addr[FS_ADDR_MAX + 1] = "";
		/* context: "name=host:port" */
		const char *eq = cc.context ? memchr(cc.context, '=', cc.context_len) : NULL;
		if (eq) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - (char *)cc.context),
				 (char *)cc.context);
			snprintf(addr, sizeof addr, "%.*s",
				 (int)(cc.context_len - (size_t)(eq - (char *)cc.context) - 1),
				 eq + 1);
		}
		switch (cc.type) {
		case RAFT_CONF_ADD_NODE:
		case RAFT_CONF_ADD_LEARNER_NODE:
			if (addr[0])
				peer_set(m, cc.node_id, name, addr);
			else if (peer_by_id(m, cc.node_id)) /* a founder, from the bootstrap entries */
				snprintf(name, sizeof name, "%s", peer_by_id(m, cc.node_id)->name);
			FS_INFO("member %s (%016" PRIx64 ") added as %s at index %" PRIu64, name,
				cc.node_id, cc.type == RAFT_CONF_ADD_NODE ? "voter" : "learner",
				e->index);
			if (cc.node_id == m->id && m->removed_at) {
				FS_INFO("this member, removed at index %" PRIu64 ", was added back at "
					"index %" PRIu64, m->removed_at, e->index);
				m->removed_at = 0;
			}
			break;
		case RAFT_CONF_REMOVE_NODE:
			FS_INFO("member %016" PRIx64 " removed at index %" PRIu64, cc.node_id,
				e->index);
			if (cc.node_id == m->id) {
				m->removed_at = e->index;
			} else {
				peer_remove(m, cc.node_id);
			}
			break;
		default:
			break;
		}
	}
	fs_wait_trigger(&m->wait, cc.id, rc, NULL, 0);
	free(cc.context);
}

static void apply_entries(struct fs_member *m, const struct raft_entry *ents, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct raft_entry *e = &ents[i];
		if (e->index <= m->applied)
			continue; /* already in the snapshot the state machine was restored from */
		if (e->type == RAFT_ENTRY_CONF_CHANGE) {
			apply_conf_change(m, e);
		} else if (e->len >= ENVELOPE_ID_BYTES) {
			uint64_t id = get_u64(e->data);
			void *result = NULL;
			size_t rlen = 0;
			int status = m->sm.apply(m->sm.ud, e->index, e->data + ENVELOPE_ID_BYTES,
						 e->len - ENVELOPE_ID_BYTES, &result, &rlen);
			fs_wait_trigger(&m->wait, id, status, result, rlen);
			free(result);
		} else if (e->len != 0) {
			FS_ERROR("entry %" PRIu64 ": %zu bytes, too short for a request, skipped",
				 e->index, e->len);
		}
		m->applied = e->index;
	}
}

/* Answers the reads whose index has been applied, and those past their deadline. */
static void reads_settle(struct fs_member *m, uint64_t now)
{
	struct read_wait **pp = &m->reads;
	while (*pp) {
		struct read_wait *r = *pp;
		int status = 1;
		if (r->index && m->applied >= r->index)
			status = 0;
		else if (now >= r->deadline || m->stopping)
			status = m->stopping ? FS_ESTOPPING : -ETIMEDOUT;
		if (status == 1) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->cb(r->arg, 0, status, NULL, 0);
		free(r);
	}
}

/*
 * Sends the ReadIndex request of the reads waiting for the next one, unless one is in flight (or
 * this member persists a Ready, or knows no leader: on_tick tries again). A request in flight
 * that no read waits for any more (they timed out) is forgotten.
 */
static void reads_round(struct fs_member *m)
{
	int waiting = 0, in_flight = 0;
	for (struct read_wait *r = m->reads; r; r = r->next) {
		waiting |= !r->ctx;
		in_flight |= m->read_round && r->ctx == m->read_round && !r->index;
	}
	if (!in_flight)
		m->read_round = 0;
	if (m->read_round || !waiting || m->persisting || !m->lead)
		return;
	m->read_round = ++m->read_seq;
	for (struct read_wait *r = m->reads; r; r = r->next)
		if (!r->ctx)
			r->ctx = m->read_round;
	uint8_t ctx[8];
	put_u64(ctx, m->read_round);
	raft_read_index(m->raft, ctx, sizeof ctx);
}

/* A line of the raft core's (raft_config.logger) in this member's log. */
static void raft_said(void *arg, int level, const char *msg)
{
	(void)arg;
	FS_LOG(level == RAFT_LOG_ERROR  ? FS_LOG_ERROR
	       : level == RAFT_LOG_WARN ? FS_LOG_WARN
	       : level == RAFT_LOG_INFO ? FS_LOG_INFO
					: FS_LOG_DEBUG,
	       "raft: %s", msg);
}

/* ---- the Ready cycle ------------------------------------------------------------------------- */

static void inbox_push(struct fs_member *m, struct inbox_item *it)
{
	it->next = NULL;
	if (m->in_tail)
		m->in_tail->next = it;
	else
		m->in_head = it;
	m->in_tail = it;
}

static int propose_now(struct fs_member *m, struct inbox_item *it)
{
	if (it->kind == IN_CONF_CHANGE)
		return raft_propose_conf_change(m->raft, &it->cc);
	return raft_propose(m->raft, it->data, it->len);
}

static uint64_t item_request_id(const struct inbox_item *it)
{
	return it->kind == IN_CONF_CHANGE ? it->cc.id : get_u64(it->data);
}

/*
 * Proposes it and frees it, unless no leader is known: then it waits in waiting_leader for the
 * next try. A proposal whose proposer gave up (timed out) is dropped; one raft refuses for good
 * (a conf change while another is pending) is answered with raft's error.
 */
static void propose_item(struct fs_member *m, struct inbox_item *it)
{
	uint64_t id = item_request_id(it);
	if (!fs_wait_is_registered(&m->wait, id)) {
		free(it);
		return;
	}
	int rc = propose_now(m, it);
	if (rc == RAFT_EPROPOSALDROPPED) {
		it->next = m->waiting_leader;
		m->waiting_leader = it;
		return;
	}
	if (rc != 0) {
		FS_DEBUG("request %016" PRIx64 " refused by raft: %s", id, raft_strerror(rc));
		fs_wait_trigger(&m->wait, id, rc, NULL, 0);
	}
	free(it);
}

/* Feeds what arrived during the last persist to raft. */
static void inbox_drain(struct fs_member *m)
{
	for (; m->pending_ticks > 0; m->pending_ticks--)
		raft_tick(m->raft);
	while (m->in_head) {
		struct inbox_item *it = m->in_head;
		m->in_head = it->next;
		if (!m->in_head)
			m->in_tail = NULL;
		switch (it->kind) {
		case IN_MESSAGE:
			if (it->msg.type == RAFT_MSG_APP || it->msg.type == RAFT_MSG_HEARTBEAT ||
			    it->msg.type == RAFT_MSG_SNAP) {
				/* a leader replicates to its configuration's members only: peers
				 * that refused us so far were behind (on_peer_refused_unknown) */
				m->n_refused = 0;
				m->heard_ms = uv_now(m->loop);
				if (it->msg.type == RAFT_MSG_APP && it->msg.commit > m->leader_commit)
					m->leader_commit = it->msg.commit;
				if (!m->join_target && m->leader_commit)
					m->join_target = m->leader_commit;
			}
			raft_step(m->raft, &it->msg);
			raft_message_free_decoded(&it->msg);
			free(it->snap_data);
			free(it);
			break;
		case IN_PROPOSAL:
		case IN_CONF_CHANGE:
			propose_item(m, it);
			break;
		case IN_UNREACHABLE:
			raft_report_unreachable(m->raft, it->peer);
			free(it);
			break;
		case IN_SNAP_STATUS:
			raft_report_snapshot(m->raft, it->peer, it->ok);
			free(it);
			break;
		}
	}
}

/* Proposals that waited for a leader: propose them again. */
static void retry_waiting_for_leader(struct fs_member *m)
{
	struct inbox_item *list = m->waiting_leader;
	m->waiting_leader = NULL;
	while (list) {
		struct inbox_item *it = list;
		list = it->next;
		propose_item(m, it);
	}
}

/* ---- snapshots for followers (struct snap_peer) ----------------------------------------------- */

#define SNAP_RETRY_MIN_MS 100   /* the first wait before a failed snapshot is sent again */
#define SNAP_RETRY_MAX_MS 10000 /* the longest */

/* Tells raft how the snapshot for `to` went, through the inbox (the core may be persisting). */
static void snap_report(struct fs_member *m, uint64_t to, int ok)
{
	struct inbox_item *it = calloc(1, sizeof *it);
	if (!it)
		return; /* raft's progress for `to` stays paused until the next leader change */
	it->kind = IN_SNAP_STATUS;
	it->peer = to;
	it->ok = ok;
	inbox_push(m, it);
}

/* The slot of follower id; with add, a new one (reusing a former member's) when there is none. */
static struct snap_peer *snap_peer_get(struct fs_member *m, uint64_t id, int add)
{
	struct snap_peer *spare = NULL;
	for (int i = 0; i < FS_MAX_MEMBERS; i++) {
		struct snap_peer *sp = &m->snap_peers[i];
		if (sp->id == id)
			return sp;
		if (!spare && sp->state == SP_IDLE && !sp->reading &&
		    (!sp->id || !raft_conf_has(&m->conf, sp->id)))
			spare = sp;
	}
	if (!add || !spare)
		return NULL;
	*spare = (struct snap_peer){.m = m, .id = id};
	return spare;
}

/*
 * A snapshot for sp was not sent (not built, not read, refused, the stream broke): raft hears of
 * it and asks again; the next attempt waits SNAP_RETRY_MIN_MS doubled at each failure in a row.
 */
static void snap_failed(struct fs_member *m, struct snap_peer *sp, int reason)
{
	if (sp->index && sp->index == sp->failed_index && sp->term == sp->failed_term) {
		sp->attempts++;
	} else {
		sp->failed_index = sp->index;
		sp->failed_term = sp->term;
		sp->attempts = 1;
	}
	sp->failed_reason = reason;
	uint64_t wait = SNAP_RETRY_MIN_MS;
	for (unsigned k = 1; k < sp->attempts && wait < SNAP_RETRY_MAX_MS; k++)
		wait *= 2;
	sp->retry_at = uv_now(m->loop) + (wait < SNAP_RETRY_MAX_MS ? wait : SNAP_RETRY_MAX_MS);
	sp->state = SP_IDLE;
	snap_report(m, sp->id, 0);
}

/* Snapshots not streaming yet are dropped (this member stopped leading): one line each. */
static void snap_cancel(struct fs_member *m, const char *why)
{
	for (int i = 0; i < FS_MAX_MEMBERS; i++) {
		struct snap_peer *sp = &m->snap_peers[i];
		if (!sp->id || sp->state == SP_IDLE || sp->state == SP_STREAMING)
			continue;
		FS_INFO("snapshot for %016" PRIx64 " not sent: %s", sp->id, why);
		sp->state = SP_IDLE;
	}
}

/* The snapshot being taken failed: the followers that waited for it hear so. */
static void snap_builds_failed(struct fs_member *m)
{
	for (int i = 0; i < FS_MAX_MEMBERS; i++) {
		struct snap_peer *sp = &m->snap_peers[i];
		if (!sp->id || sp->state != SP_BUILDING)
			continue;
		FS_WARN("snapshot for %016" PRIx64 " not sent: the snapshot at index %" PRIu64
			" failed", sp->id, m->snap_meta.index);
		sp->index = 0;
		snap_failed(m, sp, FS_SNAP_NO_REASON);
	}
}

/* On a worker thread: the newest valid snapshot file, whole. */
static void snap_read_work(uv_work_t *req)
{
	struct snap_peer *sp = req->data;
	uint64_t term, index;
	sp->file = NULL;
	sp->flen = 0;
	sp->read_rc = wal_snap_load(sp->m->snap_dir, &sp->file, &sp->flen, &term, &index);
	if (sp->read_rc == 0 && snapshot_file_parse(sp->file, sp->flen, &sp->snap) != 0)
		sp->read_rc = -EINVAL;
}

/* The file is read: stream it, the raft message saying what it holds. */
static void snap_read_done(uv_work_t *req, int status)
{
	struct snap_peer *sp = req->data;
	struct fs_member *m = sp->m;
	void *file = sp->file;
	sp->file = NULL;
	sp->reading = 0;
	m->snap_reads--;
	if (m->closing || sp->state != SP_READING) {
		free(file);
		if (m->closing)
			handles_closed_maybe_done(m);
		return;
	}
	const struct raft_snapshot_meta *meta = &sp->snap.meta;
	if (sp->read_rc != 0 || meta->index < sp->want_index ||
	    !raft_conf_has(&meta->conf, sp->id)) {
		if (sp->read_rc != 0)
			FS_WARN("snapshot for %016" PRIx64 " not sent: cannot read the newest "
				"snapshot file in %s: %s", sp->id, m->snap_dir, strerror(-sp->read_rc));
		else
			FS_WARN("snapshot for %016" PRIx64 " not sent: the newest valid snapshot file "
				"in %s is at index %" PRIu64 "%s (applied index %" PRIu64 " when asked)",
				sp->id, m->snap_dir, meta->index,
				raft_conf_has(&meta->conf, sp->id) ? "" : " and does not include it",
				sp->want_index);
		free(file);
		snap_failed(m, sp, FS_SNAP_IO);
		return;
	}
	sp->index = meta->index;
	sp->term = meta->term;
	struct raft_message head = {.type = RAFT_MSG_SNAP, .to = sp->id, .from = m->id,
				    .term = sp->lead_term, .has_snapshot = 1,
				    .snapshot = {.meta = *meta}};
	size_t hl = raft_message_encoded_size(&head);
	uint8_t *hb = malloc(hl ? hl : 1);
	int rc = -ENOMEM;
	if (hb) {
		raft_message_encode(&head, hb);
		rc = fs_transport_send_snapshot(m->tr, sp->id, hb, hl, sp->snap.data,
						sp->snap.len, free, file);
	}
	free(hb);
	if (rc != 0) {
		FS_WARN("snapshot to %016" PRIx64 ": the one at index %" PRIu64 " not sent: %s",
			sp->id, sp->index, fs_strerror(rc));
		free(file);
		snap_failed(m, sp, FS_SNAP_STREAM);
		return;
	}
	sp->state = SP_STREAMING;
	m->snapshots_sent++;
	m->snapshot_bytes_sent += sp->snap.len;
	FS_INFO("snapshot to %016" PRIx64 ": streaming the one at index %" PRIu64 " term %" PRIu64
		" (%zu bytes; applied index %" PRIu64 " when asked)", sp->id, sp->index, sp->term,
		sp->snap.len, sp->want_index);
}

/*
 * Moves every follower's snapshot on: the newest snapshot when it is at or after the applied
 * index raft's request saw and names the follower (read, then streamed), else a snapshot taken
 * now at the applied index (one child serves every follower waiting), and never while one is
 * being taken. Called after apply, when a snapshot is taken, and at each tick (backoffs).
 */
static void snap_pump(struct fs_member *m)
{
	uint64_t now = uv_now(m->loop);
	for (int i = 0; i < FS_MAX_MEMBERS && !m->closing; i++) {
		struct snap_peer *sp = &m->snap_peers[i];
		if (!sp->id || (sp->state != SP_WANT && sp->state != SP_BUILDING))
			continue;
		if (!raft_conf_has(&m->conf, sp->id)) {
			FS_INFO("snapshot for %016" PRIx64 " not sent: no longer a member", sp->id);
			sp->state = SP_IDLE;
			continue;
		}
		if (now < sp->retry_at || sp->reading)
			continue;
		const struct raft_snapshot *newest = NULL;
		int usable = m->snap_index >= sp->want_index &&
			     m->st.snapshot(m->st.data, &newest) == 0 &&
			     raft_conf_has(&newest->meta.conf, sp->id);
		int again = usable && m->snap_index == sp->failed_index &&
			    m->snap_term == sp->failed_term;
		if (again && sp->failed_reason == FS_SNAP_NOT_MEMBER && m->applied > m->snap_index)
			usable = 0; /* the receiver said no to that one: take another */
		if (usable) {
			if (again)
				FS_WARN("snapshot to %016" PRIx64 ": resending the snapshot at index %"
					PRIu64 " term %" PRIu64 " (attempt %u): the last send failed: %s",
					sp->id, m->snap_index, m->snap_term, sp->attempts + 1,
					fs_snap_reason_text(sp->failed_reason));
			sp->state = SP_READING;
			sp->index = m->snap_index;
			sp->term = m->snap_term;
			sp->reading = 1;
			m->snap_reads++;
			sp->read.data = sp;
			uv_queue_work(m->loop, &sp->read, snap_read_work, snap_read_done);
			continue;
		}
		if (sp->state == SP_BUILDING && (m->snap_pid || m->snap_working))
			continue;
		uint64_t before = m->snap_index;
		if (!m->snap_pid && !m->snap_working)
			maybe_snapshot(m, 1);
		if (m->snap_pid || m->snap_working) {
			FS_INFO("snapshot for %016" PRIx64 ": waiting for the one at index %" PRIu64
				" (the newest, at index %" PRIu64 ", is older than applied index %"
				PRIu64 " when asked or does not include it)", sp->id,
				m->snap_meta.index, before, sp->want_index);
			sp->state = SP_BUILDING;
		} else if (m->snap_index > before) {
			i--; /* taken on the loop: look again */
		} else {
			FS_WARN("snapshot for %016" PRIx64 " not sent: none can be taken at applied "
				"index %" PRIu64 " now (the newest is at index %" PRIu64 ")", sp->id,
				m->applied, m->snap_index);
			sp->index = 0;
			snap_failed(m, sp, FS_SNAP_NO_REASON);
		}
	}
}

/*
 * Sends msg. A MsgSnap only records that its follower needs a snapshot (snap_pump builds and
 * streams it): raft's content may be a snapshot from before the follower joined.
 */
static void send_message(struct fs_member *m, const struct raft_message *msg)
{
	if (msg->type == RAFT_MSG_SNAP) {
		struct snap_peer *sp = snap_peer_get(m, msg->to, 1);
		if (!sp) {
			FS_WARN("snapshot for %016" PRIx64 " not sent: %d followers already wait for "
				"one", msg->to, FS_MAX_MEMBERS);
			snap_report(m, msg->to, 0);
			return;
		}
		if (sp->state != SP_IDLE) {
			FS_DEBUG("snapshot for %016" PRIx64 " asked again at term %" PRIu64 ": one is "
				 "under way", msg->to, msg->term);
			sp->lead_term = msg->term;
			return;
		}
		sp->state = SP_WANT;
		sp->want_index = m->applied;
		sp->lead_term = msg->term;
		sp->index = sp->term = 0;
		FS_INFO("snapshot for %016" PRIx64 " needed: it is behind the log, which starts "
			"after index %" PRIu64 "; applied index %" PRIu64, msg->to,
			msg->snapshot.meta.index, m->applied);
		return;
	}
	uint8_t stackbuf[4096];
	size_t len = raft_message_encoded_size(msg);
	uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
	if (!buf)
		return; /* raft retransmits */
	raft_message_encode(msg, buf);
	fs_transport_send(m->tr, msg->to, buf, len);
	if (buf != stackbuf)
		free(buf);
}

static void process_ready(struct fs_member *m);

static void persist_work(uv_work_t *req)
{
	struct fs_member *m = req->data;
	m->save_rc = 0;
	if (m->rd.has_snapshot)
		m->save_rc = snapshot_file_save(m, &m->rd.snapshot);
	if (m->save_rc == 0 && (m->rd.has_hard_state || m->rd.n_entries))
		m->save_rc = wal_save(m->wal, m->rd.has_hard_state ? &m->whs : NULL, m->went,
				      m->rd.n_entries, m->sync);
	else if (m->save_rc == 0 && m->sync)
		m->save_rc = wal_sync(m->wal); /* a commit index written by an earlier Ready */
	if (m->save_rc != 0)
		snprintf(m->save_msg, sizeof m->save_msg, "%s", wal_errmsg());
}

static void handles_closed_maybe_done(struct fs_member *m);

static void persist_done(uv_work_t *req, int status)
{
	struct fs_member *m = req->data;
	struct raft_ready *rd = &m->rd;
	free(m->went);
	free(m->went_data);
	m->went = NULL;
	m->went_data = NULL;
	if (m->save_rc != 0) {
		/*
		 * Nothing unpersisted may be acknowledged: a member that cannot write stops, at once
		 * (_exit: exit handlers can wait on threads that wait on this loop, and did, for
		 * minutes).
		 */
		FS_FATAL("WAL save failed: %s (%s); stopping", strerror(-m->save_rc), m->save_msg);
		_exit(1);
	}
	if (rd->has_snapshot) {
		raft_memory_storage_apply_snapshot(m->ms, &rd->snapshot);
		if (snapshot_data_restore(m, rd->snapshot.data, rd->snapshot.len) != 0) {
			FS_FATAL("snapshot at index %" PRIu64 " from the leader cannot be restored; "
				 "stopping", rd->snapshot.meta.index);
			_exit(1);
		}
		m->applied = rd->snapshot.meta.index;
		m->snap_index = rd->snapshot.meta.index;
		m->snap_term = rd->snapshot.meta.term;
		m->conf = rd->snapshot.meta.conf;
		note_membership(m);
		FS_INFO("restored the snapshot at index %" PRIu64 " term %" PRIu64 " from the leader",
			m->snap_index, m->snap_term);
	}
	if (rd->has_hard_state) {
		raft_memory_storage_set_hard_state(m->ms, &rd->hard_state);
		m->written_commit = rd->hard_state.commit;
	}
	if (m->sync)
		m->synced_commit = m->written_commit;
	if (rd->n_entries)
		raft_memory_storage_append(m->ms, rd->entries, rd->n_entries);
	for (size_t i = 0; i < rd->n_messages && m->tr && !m->sent_early; i++)
		send_message(m, &rd->messages[i]);
	apply_entries(m, rd->committed_entries, rd->n_committed_entries);
	if ((rd->n_committed_entries || rd->has_snapshot) && m->opt.on_applied)
		m->opt.on_applied(m->opt.arg);
	for (size_t i = 0; i < rd->n_read_states; i++) {
		if (rd->read_states[i].context_len != 8)
			continue;
		uint64_t ctx = get_u64(rd->read_states[i].context);
		for (struct read_wait *r = m->reads; r; r = r->next)
			if (r->ctx == ctx && !r->index)
				r->index = rd->read_states[i].index;
		if (ctx == m->read_round)
			m->read_round = 0;
	}
	raft_advance(m->raft, rd);
	m->persisting = 0;
	reads_settle(m, uv_now(m->loop));
	reads_round(m);
	maybe_snapshot(m, 0);
	snap_pump(m);
	if (m->closing)
		handles_closed_maybe_done(m);
	else
		process_ready(m);
}

static void process_ready(struct fs_member *m)
{
	if (m->persisting || m->closing)
		return;
	inbox_drain(m);
	if (m->lead && m->waiting_leader)
		retry_waiting_for_leader(m);
	if (!raft_has_ready(m->raft))
		return;
	struct raft_ready *rd = &m->rd;
	raft_ready(m->raft, rd);
	if (rd->has_soft_state) {
		uint64_t old = m->lead;
		m->lead = rd->soft_state.lead;
		m->raft_state = rd->soft_state.state;
		if (m->raft_state != RAFT_LEADER)
			snap_cancel(m, "no longer the leader");
		if (old != m->lead) {
			struct raft_status st;
			raft_status(m->raft, &st);
			if (m->lead)
				FS_INFO("leader is %016" PRIx64 "%s at term %" PRIu64, m->lead,
					m->lead == m->id ? " (this member)" : "", st.hard_state.term);
			else
				FS_INFO("no leader at term %" PRIu64, st.hard_state.term);
		}
	}
	/* Copy what the worker reads, so the core's memory is not shared across threads. */
	size_t bytes = 0;
	for (size_t i = 0; i < rd->n_entries; i++)
		bytes += rd->entries[i].len;
	m->went = calloc(rd->n_entries ? rd->n_entries : 1, sizeof *m->went);
	m->went_data = malloc(bytes ? bytes : 1);
	if (!m->went || !m->went_data) {
		FS_FATAL("out of memory persisting %zu entries; stopping", rd->n_entries);
		_exit(1);
	}
	size_t off = 0;
	for (size_t i = 0; i < rd->n_entries; i++) {
		const struct raft_entry *e = &rd->entries[i];
		if (e->len)
			memcpy(m->went_data + off, e->data, e->len);
		m->went[i] = (struct wal_entry){e->term, e->index, e->type, m->went_data + off,
						e->len};
		off += e->len;
	}
	m->whs = (struct wal_hard_state){rd->hard_state.term, rd->hard_state.vote,
					 rd->hard_state.commit};
	/*
	 * A leader sends before its own write is durable (Raft thesis 10.2.1, and etcd's raft):
	 * followers persist in parallel, and an entry only commits once a quorum has it on disk,
	 * so the leader's fdatasync and the followers' overlap. Everyone else persists first.
	 */
	m->sent_early = m->raft_state == RAFT_LEADER && !rd->has_snapshot;
	if (m->sent_early)
		for (size_t i = 0; i < rd->n_messages; i++)
			send_message(m, &rd->messages[i]);
	/*
	 * An entry is applied (shown to readers, its proposer answered) only once its commit is
	 * durable here: a restart replays up to the commit index on disk before it serves
	 * (recovered_commit), and after a power cut it must not serve less than it showed.
	 */
	uint64_t last_committed = rd->n_committed_entries ?
		rd->committed_entries[rd->n_committed_entries - 1].index : 0;
	m->sync = rd->must_sync || last_committed > m->synced_commit;
	m->persisting = 1;
	m->work.data = m;
	if (!m->sync && !rd->has_snapshot) {
		/* Nothing to fsync (a commit index already durable, say): a plain write, no thread
		 * hop. */
		persist_work(&m->work);
		persist_done(&m->work, 0);
		return;
	}
	uv_queue_work(m->loop, &m->work, persist_work, persist_done);
	if (m->opt.on_sync)
		m->opt.on_sync(m->opt.arg);
}

static void on_check(uv_check_t *h)
{
	process_ready(h->data);
}

/*
 * Whether the removal of this member that it applied (removed_at) stands. The log it applies may
 * hold an old removal of its own id followed by an addition of it again: a member removed, then
 * added back under the same name and address (the same id) on an empty data dir, replays the
 * whole history from the leader. So the removal is concluded, on the loop's tick, only once this
 * member has applied everything a leader announced as committed without being added back, or
 * when no leader has sent it anything for two election timeouts (a leader that removed it stops
 * sending; one that added it back goes on). A member that concludes it says so once and stops
 * (opt.on_removed).
 */
static void removal_settle(struct fs_member *m, uint64_t now)
{
	if (!m->removed_at || m->removed || m->joining)
		return; /* a joining member replays history: its own old removals are in it */
	int caught_up = m->applied >= m->leader_commit;
	int quiet = now - m->heard_ms >= 2 * (uint64_t)m->cfg.election_ms;
	if (!caught_up && !quiet)
		return;
	m->removed = 1;
	FS_ERROR("this member (%016" PRIx64 ") was removed from the cluster at index %" PRIu64,
		 m->id, m->removed_at);
	if (m->opt.on_removed)
		m->opt.on_removed(m->opt.arg);
}

/*
 * A joining member that has applied what the leader had committed when it first heard from it
 * has joined: it serves (fs_member_replayed) and drops the peers its replay removed.
 */
static void join_settle(struct fs_member *m)
{
	if (!m->joining || !m->join_target || m->applied < m->join_target)
		return;
	m->joining = 0;
	FS_INFO("joined: caught up with the cluster at index %" PRIu64, m->applied);
	for (int i = 0; i < m->cfg.n_peers; i++)
		if (m->cfg.peers[i].id != m->id && !peer_by_id(m, m->cfg.peers[i].id))
			fs_transport_remove_peer(m->tr, m->cfg.peers[i].id);
}

static void on_tick(uv_timer_t *t)
{
	struct fs_member *m = t->data;
	uint64_t now = uv_now(m->loop);
	if (m->persisting)
		m->pending_ticks++;
	else
		raft_tick(m->raft);
	fs_wait_expire(&m->wait, now);
	snap_child_poll(m);
	/* The request in flight is asked again: the leader may have changed, or dropped it. */
	if (m->read_round && !m->persisting && m->lead) {
		uint8_t ctx[8];
		put_u64(ctx, m->read_round);
		raft_read_index(m->raft, ctx, sizeof ctx);
	}
	reads_settle(m, now);
	reads_round(m);
	snap_pump(m);
	if (m->transferring && (m->lead != m->id || now >= m->stop_deadline)) {
		m->transferring = 0;
		member_begin_stop(m);
	}
	join_settle(m);
	removal_settle(m, now);
	process_ready(m);
}

/* ---- transport callbacks --------------------------------------------------------------------- */

/* An item with room for extra bytes of data; the header zeroed, the data not (it is written). */
static struct inbox_item *item_new(size_t extra)
{
	struct inbox_item *it = malloc(sizeof(struct inbox_item) + extra);
	if (it)
		memset(it, 0, sizeof *it);
	return it;
}

static void on_peer_message(void *ud, uint64_t from, const uint8_t *buf, size_t len)
{
	struct fs_member *m = ud;
	struct inbox_item *it = item_new(0);
	if (!it)
		return;
	it->kind = IN_MESSAGE;
	int rc = raft_message_decode(buf, len, &it->msg);
	/*
	 * A message names its sender, who must be the peer it came from; but a leadership transfer
	 * that a follower forwards to its leader names the transferee there, as raft's
	 * MsgTransferLeader does (it asks for no more than any peer may ask for itself).
	 */
	int forwarded = rc == 0 && it->msg.type == RAFT_MSG_TRANSFER_LEADER;
	if (rc != 0 || (it->msg.from != from && !forwarded)) {
		FS_WARN("peer %016" PRIx64 ": %s message of %zu bytes dropped", from,
			rc ? "undecodable" : "misattributed", len);
		if (rc == 0)
			raft_message_free_decoded(&it->msg);
		free(it);
		return;
	}
	inbox_push(m, it);
}

static void on_peer_unreachable(void *ud, uint64_t to)
{
	struct inbox_item *it = item_new(0);
	if (!it)
		return;
	it->kind = IN_UNREACHABLE;
	it->peer = to;
	inbox_push(ud, it);
}

/* "voters a,b; learners c" (or "-" for none) into buf. */
static void conf_text(const struct raft_conf_state *cs, char *buf, size_t cap)
{
	size_t n = 0;
	const uint64_t *ids[2] = {cs->voters, cs->learners};
	size_t counts[2] = {cs->n_voters, cs->n_learners};
	buf[0] = '\0';
	for (int k = 0; k < 2; k++) {
		n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, "%s%s",
				      k ? "; learners " : "voters ", counts[k] ? "" : "-");
		for (size_t i = 0; i < counts[k]; i++)
			n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0,
					      "%s%016" PRIx64, i ? "," : "", ids[k][i]);
	}
}

/*
 * Whether this member takes the snapshot whose raft message is msg, decoded into *out (freed here
 * when refused): raft restores only a snapshot whose membership names this member, and a sender
 * of an older term is no longer the leader. Returns 0, or a negative error with v filled.
 */
static int snapshot_check(struct fs_member *m, uint64_t from, const uint8_t *msg, size_t msglen,
			  struct raft_message *out, struct fs_snap_verdict *v)
{
	if (raft_message_decode(msg, msglen, out) != 0) {
		v->reason = FS_SNAP_BAD;
		return -EINVAL;
	}
	const struct raft_snapshot_meta *meta = &out->snapshot.meta;
	struct raft_hard_state hs;
	raft_hard_state(m->raft, &hs);
	if (out->type != RAFT_MSG_SNAP || out->from != from) {
		v->reason = FS_SNAP_BAD;
		snprintf(v->why, sizeof v->why, "its raft message is of type %d from %016" PRIx64,
			 out->type, out->from);
	} else if (!raft_conf_has(&meta->conf, m->id)) {
		char conf[400];
		conf_text(&meta->conf, conf, sizeof conf);
		v->reason = FS_SNAP_NOT_MEMBER;
		snprintf(v->why, sizeof v->why, "the snapshot at index %" PRIu64 " term %" PRIu64
			 ": its membership (%s) does not include this member (%016" PRIx64 ")",
			 meta->index, meta->term, conf, m->id);
	} else if (out->term < hs.term) {
		v->reason = FS_SNAP_STALE_TERM;
		snprintf(v->why, sizeof v->why, "the snapshot at index %" PRIu64 " comes from term %"
			 PRIu64 ", this member is at term %" PRIu64, meta->index, out->term,
			 hs.term);
	} else {
		if (meta->index <= m->applied)
			FS_DEBUG("snapshot from %016" PRIx64 " at index %" PRIu64 ": applied index %"
				 PRIu64 " already covers it", from, meta->index, m->applied);
		return 0;
	}
	raft_message_free_decoded(out);
	return -EINVAL;
}

static int on_peer_snapshot(void *ud, uint64_t from, const uint8_t *msg, size_t msglen,
			    const char *path, struct fs_snap_verdict *v)
{
	struct fs_member *m = ud;
	struct inbox_item *it = item_new(0);
	int rc = it ? snapshot_check(m, from, msg, msglen, &it->msg, v) : -ENOMEM;
	int fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (rc == 0) {
		rc = -EIO;
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    (it->snap_data = malloc((size_t)st.st_size + 1))) {
			size_t got = 0;
			while (got < (size_t)st.st_size) {
				ssize_t n = read(fd, it->snap_data + got, (size_t)st.st_size - got);
				if (n <= 0)
					break;
				got += (size_t)n;
			}
			if (got == (size_t)st.st_size) {
				it->kind = IN_MESSAGE;
				it->msg.has_snapshot = 1;
				it->msg.snapshot.data = it->snap_data;
				it->msg.snapshot.len = got;
				inbox_push(m, it);
				it = NULL;
				rc = 0;
			}
		}
		if (it) {
			raft_message_free_decoded(&it->msg);
			v->reason = FS_SNAP_IO;
			snprintf(v->why, sizeof v->why, "cannot read %s", path);
		}
	}
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (it) {
		free(it->snap_data);
		free(it);
	}
	return rc;
}

static void on_peer_snapshot_sent(void *ud, uint64_t to, int ok, int reason)
{
	struct fs_member *m = ud;
	struct snap_peer *sp = snap_peer_get(m, to, 0);
	if (!sp || sp->state != SP_STREAMING || m->closing) {
		snap_report(m, to, ok);
		return;
	}
	if (!ok) {
		snap_failed(m, sp, reason);
		return;
	}
	sp->state = SP_IDLE;
	sp->failed_index = sp->failed_term = 0;
	sp->attempts = 0;
	sp->retry_at = 0;
	snap_report(m, to, 1);
}

/*
 * A removed member may never receive the entry that removes it: the leader stops replicating to
 * it. As etcd's peers answer a removed member "gone", ours refuse it as unknown; once a majority of
 * the other members do, and this member had been part of the cluster, it concludes it was removed.
 * A peer that is behind (one that joins and replays the log, where this member was added later,
 * or removed and added back) refuses it too: so refusals count only since a leader last sent this
 * member anything, which a leader does only to the members of its configuration.
 */
static void on_peer_refused_unknown(void *ud, uint64_t from)
{
	struct fs_member *m = ud;
	if (!m->was_member || m->removed || m->joining)
		return;
	for (int i = 0; i < m->n_refused; i++)
		if (m->refused_by[i] == from)
			return;
	if (m->n_refused < FS_MAX_MEMBERS)
		m->refused_by[m->n_refused++] = from;
	int others = m->n_peers - (peer_by_id(m, m->id) ? 1 : 0);
	if (m->n_refused < others / 2 + 1)
		return;
	FS_ERROR("%d of %d peers no longer know this member (%016" PRIx64 "): it was removed from "
		 "the cluster", m->n_refused, others, m->id);
	m->removed = 1;
	if (m->opt.on_removed)
		m->opt.on_removed(m->opt.arg);
}

static void on_peer_cluster_id(void *ud, uint64_t cluster_id)
{
	((struct fs_member *)ud)->cluster_id = cluster_id;
}

static const struct fs_transport_callbacks transport_cb = {
	on_peer_message, on_peer_unreachable, on_peer_snapshot, on_peer_snapshot_sent,
	on_peer_cluster_id, on_peer_refused_unknown};

/* ---- start -------------------------------------------------------------------------------------- */

/* Makes directory buf if missing; a new one's name is made durable (its parent fsynced). */
static int mkdir_durable(char *buf)
{
	if (mkdir(buf, 0700) != 0)
		return errno == EEXIST ? 0 : -errno;
	char *slash = strrchr(buf, '/');
	const char *parent = slash == buf ? "/" : slash ? buf : ".";
	if (slash && slash != buf)
		*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) != 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (slash && slash != buf)
		*slash = '/';
	return rc;
}

/*
 * mkdir -p, each directory it makes fsynced into its parent: a member whose data dir lost its
 * member/ directory after a power cut would start again as a new member under the same identity,
 * having forgotten its votes and its log.
 */
static int mkdir_p(const char *path)
{
	char buf[4200];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir_durable(buf);
		if (rc)
			return rc;
		*p = '/';
	}
	return mkdir_durable(buf);
}

static void wal_log_line(void *arg, const char *line)
{
	FS_WARN("%s", line);
}

/* WAL metadata: magic, cluster id, member id, the initial peers. */
static int metadata_build(struct fs_member *m, uint8_t **out, size_t *len)
{
	struct wbuf w = {0};
	for (int pass = 0; pass < 2; pass++) {
		w.n = 0;
		w_bytes(&w, META_MAGIC, 4);
		w_u64(&w, m->cluster_id);
		w_u64(&w, m->id);
		w_peers(&w, m->peers, m->n_peers);
		if (pass == 0 && !(w.p = malloc(w.n)))
			return -ENOMEM;
	}
	*out = w.p;
	*len = w.n;
	return 0;
}

/* Fresh data dir: the WAL is made with the initial cluster as metadata. */
static int bootstrap(struct fs_member *m)
{
	for (int i = 0; i < m->cfg.n_peers; i++)
		peer_set(m, m->cfg.peers[i].id, m->cfg.peers[i].name, m->cfg.peers[i].addr);
	struct raft_conf_state initial = {0};
	if (m->cfg.existing) {
		/* Joining: the cluster's id comes from the first member that accepts us, the
		 * membership from the leader's log or snapshot. */
		m->cluster_id = 0;
	} else {
		/* A new cluster: every initial member is a voter. */
		for (int i = 0; i < m->n_peers; i++)
			initial.voters[initial.n_voters++] = m->peers[i].id;
	}
	uint8_t *meta;
	size_t len;
	int rc = metadata_build(m, &meta, &len);
	if (rc != 0)
		return rc;
	rc = wal_create(m->wal_dir, meta, len, NULL, &m->wal);
	free(meta);
	if (rc != 0) {
		FS_ERROR("cannot create the WAL in %s: %s", m->wal_dir, wal_errmsg());
		return rc;
	}
	if (!m->cfg.existing) {
		/*
		 * The membership goes into the log as committed conf entries at term 1, on disk
		 * before anything else: a member that joins later learns it from the log (with only
		 * a conf state, it would learn just its own addition and could elect itself).
		 */
		rc = raft_memory_storage_bootstrap(m->ms, &initial);
		const struct raft_entry *ents = NULL;
		size_t n = 0;
		struct raft_hard_state hs;
		struct raft_conf_state cs;
		if (rc == 0)
			rc = m->st.entries(m->st.data, 1, initial.n_voters + 1, UINT64_MAX, &ents, &n);
		if (rc == 0)
			rc = m->st.initial_state(m->st.data, &hs, &cs);
		struct wal_entry went[FS_MAX_MEMBERS];
		for (size_t i = 0; rc == 0 && i < n && i < FS_MAX_MEMBERS; i++)
			went[i] = (struct wal_entry){ents[i].term, ents[i].index, ents[i].type,
						     ents[i].data, ents[i].len};
		if (rc == 0)
			rc = wal_save(m->wal, &(struct wal_hard_state){hs.term, hs.vote, hs.commit},
				      went, n, 1);
		if (rc != 0) {
			FS_ERROR("cannot bootstrap the log in %s: %s", m->wal_dir,
				 fs_err_is_errno(rc) ? wal_errmsg() : fs_strerror(rc));
			return rc;
		}
		m->recovered_commit = hs.commit; /* applied before the member serves */
		m->written_commit = m->synced_commit = hs.commit;
	} else {
		m->joining = 1;
	}
	FS_INFO("bootstrapped member %s (%016" PRIx64 ") of cluster %016" PRIx64 " with %d "
		"members (%s) in %s", m->cfg.name, m->id, m->cluster_id, m->n_peers,
		m->cfg.existing ? "joining an existing cluster" : "a new cluster", m->cfg.data_dir);
	return 0;
}

/* A data dir holding a member: snapshot, then WAL. */
static int recover(struct fs_member *m)
{
	void *file = NULL;
	size_t flen = 0;
	uint64_t term = 0, index = 0;
	struct raft_snapshot snap = {0};
	int rc;
	for (int tries = 0;; tries++) {
		rc = wal_snap_load(m->snap_dir, &file, &flen, &term, &index);
		if (rc == -ENOENT) {
			term = index = 0;
		} else if (rc != 0) {
			FS_ERROR("cannot read snapshots in %s: %s", m->snap_dir, wal_errmsg());
			return rc;
		}
		rc = wal_open(m->wal_dir, (struct wal_snapshot_ref){index, term}, NULL, &m->wal);
		if (rc != -ENOENT || !index || tries == 16)
			break;
		/*
		 * The snapshot file was saved, but the member stopped before the WAL recorded it:
		 * the log still holds everything since the snapshot before, so that one is used.
		 */
		char path[4300], aside[4320];
		snprintf(path, sizeof path, "%s/%016" PRIx64 "-%016" PRIx64 ".snap", m->snap_dir,
			 term, index);
		snprintf(aside, sizeof aside, "%s.unrecorded", path);
		FS_WARN("snapshot %s has no record in the WAL (stopped while it was taken): set "
			"aside as %s, recovering from the one before", path, aside);
		free(file);
		file = NULL;
		if (rename(path, aside) != 0) {
			rc = -errno;
			FS_ERROR("cannot set %s aside: %s", path, strerror(errno));
			return rc;
		}
	}
	if (rc == 0 && index) {
		if (snapshot_file_parse(file, flen, &snap) != 0 ||
		    snapshot_data_restore(m, snap.data, snap.len) != 0) {
			FS_ERROR("snapshot %s/%016" PRIx64 "-%016" PRIx64 ".snap cannot be restored",
				 m->snap_dir, term, index);
			free(file);
			return -EINVAL;
		}
		raft_memory_storage_apply_snapshot(m->ms, &snap);
		m->applied = m->snap_index = index;
		m->snap_term = term;
		m->conf = snap.meta.conf;
	}
	free(file);
	struct wal_read_result res = {0};
	if (rc == 0)
		rc = wal_read_all(m->wal, &res);
	if (rc != 0) {
		FS_ERROR("cannot open the WAL in %s: %s", m->wal_dir, wal_errmsg());
		return rc;
	}
	struct rbuf r = {res.metadata, res.metadata_len, 0, 0};
	const uint8_t *magic = r_bytes(&r, 4);
	uint64_t cluster = r_u64(&r), self = r_u64(&r);
	struct member_peer initial[FS_MAX_MEMBERS];
	int n_initial = 0;
	if (!magic || memcmp(magic, META_MAGIC, 4) != 0 || r_peers(&r, initial, &n_initial) != 0) {
		FS_ERROR("the WAL in %s has metadata raftfs does not know", m->wal_dir);
		wal_read_result_free(&res);
		return -EINVAL;
	}
	FS_INFO("data dir %s holds member %016" PRIx64 " of cluster %016" PRIx64
		": the --initial-cluster flags are not used", m->cfg.data_dir, self, cluster);
	m->id = self;
	m->cluster_id = cluster;
	if (!snap.meta.index) {
		/* addresses from the metadata; the membership comes back as the log is replayed */
		for (int i = 0; i < n_initial; i++)
			peer_set(m, initial[i].id, initial[i].name, initial[i].addr);
	}
	raft_memory_storage_set_conf_state(m->ms, &m->conf);
	m->recovered_commit = res.has_hard ? res.hard.commit : 0;
	m->written_commit = m->synced_commit = m->recovered_commit;
	if (res.has_hard)
		raft_memory_storage_set_hard_state(
			m->ms, &(struct raft_hard_state){res.hard.term, res.hard.vote, res.hard.commit});
	if (res.n_entries) {
		struct raft_entry *ents = calloc(res.n_entries, sizeof *ents);
		if (!ents) {
			wal_read_result_free(&res);
			return -ENOMEM;
		}
		for (size_t i = 0; i < res.n_entries; i++)
			ents[i] = (struct raft_entry){res.entries[i].term, res.entries[i].index,
						      res.entries[i].type,
						      (uint8_t *)res.entries[i].data,
						      res.entries[i].len};
		rc = raft_memory_storage_append(m->ms, ents, res.n_entries);
		free(ents);
	}
	FS_INFO("recovered member %016" PRIx64 " of cluster %016" PRIx64 ": snapshot at index %"
		PRIu64 ", %zu WAL entries, commit %" PRIu64, m->id, m->cluster_id, m->snap_index,
		res.n_entries, res.has_hard ? res.hard.commit : 0);
	wal_read_result_free(&res);
	return rc;
}

static void member_free(struct fs_member *m)
{
	if (m->raft)
		raft_free(m->raft);
	if (m->ms)
		raft_memory_storage_free(m->ms);
	if (m->wal)
		wal_close(m->wal);
	if (m->lock_fd >= 0)
		wal_dir_unlock(m->lock_fd);
	while (m->in_head) {
		struct inbox_item *it = m->in_head;
		m->in_head = it->next;
		if (it->kind == IN_MESSAGE) {
			raft_message_free_decoded(&it->msg);
			free(it->snap_data);
		}
		free(it);
	}
	while (m->waiting_leader) {
		struct inbox_item *it = m->waiting_leader;
		m->waiting_leader = it->next;
		free(it);
	}
	free(m);
}

/* Locks cfg's data dir (made when missing) and prepares the raft storage: bootstrap or recover. */
static int member_open_dir(struct fs_member *m, const struct fs_member_config *cfg)
{
	m->cfg = *cfg;
	m->id = cfg->self_id;
	m->cluster_id = cfg->cluster_id;
	m->lock_fd = -1;
	fs_wait_init(&m->wait);
	snprintf(m->wal_dir, sizeof m->wal_dir, "%s/member/wal", cfg->data_dir);
	snprintf(m->snap_dir, sizeof m->snap_dir, "%s/member/snap", cfg->data_dir);
	snprintf(m->incoming_dir, sizeof m->incoming_dir, "%s/member/incoming", cfg->data_dir);
	wal_set_log(wal_log_line, m);
	wal_set_fatal(wal_fatal);

	int rc = mkdir_p(cfg->data_dir);
	if (rc != 0) {
		FS_ERROR("cannot create data dir %s: %s", cfg->data_dir, strerror(-rc));
		return rc;
	}
	rc = wal_dir_lock(cfg->data_dir, &m->lock_fd);
	if (rc != 0) {
		FS_ERROR("%s", wal_errmsg());
		return rc;
	}
	if ((rc = mkdir_p(m->snap_dir)) != 0 || (rc = mkdir_p(m->incoming_dir)) != 0) {
		FS_ERROR("cannot create %s: %s", m->snap_dir, strerror(-rc));
		return rc;
	}
	m->ms = raft_memory_storage_new();
	if (!m->ms)
		return -ENOMEM;
	raft_memory_storage_bind(m->ms, &m->st);
	raft_memory_storage_set_loader(m->ms, snapshot_data_none, m);
	return 0;
}

int fs_member_start(struct fs_member **out, uv_loop_t *loop, const struct fs_member_config *cfg,
		    const struct fs_member_options *opt, const struct fs_state_machine *sm)
{
	struct fs_member *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->loop = loop;
	if (opt)
		m->opt = *opt;
	if (!m->opt.request_timeout_ms)
		m->opt.request_timeout_ms = 7000;
	if (!m->opt.catchup_entries)
		m->opt.catchup_entries = cfg->snapshot_catchup_entries;
	if (!m->opt.catchup_entries)
		m->opt.catchup_entries = FS_SNAPSHOT_CATCHUP_ENTRIES;
	m->sm = *sm;
	struct stat st;
	int rc = member_open_dir(m, cfg);
	if (rc == 0)
		rc = stat(m->wal_dir, &st) == 0 ? recover(m) : bootstrap(m);
	if (rc != 0)
		goto err;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	fs_reqid_init(&m->reqid, m->id, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);

	struct raft_config rc_cfg = {
		.id = m->id,
		.election_tick = (int)(cfg->election_ms / cfg->heartbeat_ms),
		.heartbeat_tick = 1,
		.applied = m->applied,
		.max_size_per_msg = 1 << 20,
		.max_inflight_msgs = 256,
		.check_quorum = 1,
		.pre_vote = 1,
		.seed = m->id ^ (uint64_t)ts.tv_nsec,
		.logger = raft_said,
	};
	rc = raft_new(&rc_cfg, &m->st, &m->raft);
	if (rc != 0) {
		FS_ERROR("cannot start raft: %s", raft_strerror(rc));
		goto err;
	}
	/* the address the cluster knows this member by, whatever the flags of this start say */
	const struct member_peer *self = peer_by_id(m, m->id);
	const char *listen = self && self->addr[0] ? self->addr : cfg->listen_peer;
	if (strcmp(listen, cfg->listen_peer) != 0)
		FS_INFO("listening for peers on %s, the address the cluster knows this member by "
			"(not %s)", listen, cfg->listen_peer);
	/* etcd keeps its self-signed peer pair in DATA_DIR/fixtures/peer */
	char auto_dir[4200];
	snprintf(auto_dir, sizeof auto_dir, "%.4096s/fixtures/peer", cfg->data_dir);
	if (cfg->peer_auto_tls && cfg->peer_cert[0])
		FS_INFO("--peer-auto-tls ignored: --peer-cert-file is given");
	struct fs_transport_tls tls = {.cert_file = cfg->peer_cert,
				       .key_file = cfg->peer_key,
				       .ca_file = cfg->peer_ca,
				       .client_cert_auth = cfg->peer_client_cert_auth > 0,
				       .allowed_cn = cfg->peer_allowed_cn,
				       .auto_dir = cfg->peer_auto_tls ? auto_dir : NULL,
				       .auto_cn = cfg->name};
	struct fs_transport_config tc = {.cluster_id = m->cluster_id,
					 .self_id = m->id,
					 .listen_addr = listen,
					 .max_queue_frames = m->opt.max_queue_frames,
					 .snap_dir = m->incoming_dir,
					 .tls = cfg->peer_cert[0] || cfg->peer_auto_tls ? &tls : NULL};
	rc = fs_transport_start(&m->tr, loop, &tc, &transport_cb, m);
	if (rc != 0) {
		if (rc != -EKEYREJECTED) /* a TLS failure was logged with its reason */
			FS_ERROR("cannot listen for peers on %s: %s", tc.listen_addr,
				 uv_strerror(rc));
		m->tr = NULL;
		goto err;
	}
	peers_connect(m);
	uv_timer_init(loop, &m->ticker);
	m->ticker.data = m;
	uv_timer_start(&m->ticker, on_tick, cfg->heartbeat_ms, cfg->heartbeat_ms);
	uv_check_init(loop, &m->check);
	m->check.data = m;
	uv_check_start(&m->check, on_check);
	/* Apply the membership in the log first: nothing campaigns before it knows its voters. */
	process_ready(m);
	for (int i = 0; i < 1000 && m->persisting; i++)
		uv_run(loop, UV_RUN_ONCE);
	if (m->conf.n_voters == 1 && m->conf.voters[0] == m->id) {
		raft_campaign(m->raft); /* alone: no need to wait an election timeout */
		process_ready(m);
	}
	*out = m;
	return 0;
err:
	if (m->tr) {
		fs_transport_close(m->tr, NULL, NULL);
		m->tr = NULL;
	}
	member_free(m);
	return rc;
}

int fs_member_restore(const struct fs_member_config *cfg, const uint8_t *image, size_t len)
{
	struct fs_member *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	struct stat st;
	int rc = member_open_dir(m, cfg);
	if (rc != 0) { /* it said why */
		member_free(m);
		return rc;
	}
	if (stat(m->wal_dir, &st) == 0) {
		FS_ERROR("data dir %s holds a member already: restore makes a new one", cfg->data_dir);
		rc = -EEXIST;
	}
	if (rc == 0 && cfg->existing) {
		FS_ERROR("restore makes a new cluster: --initial-cluster-state existing does not apply");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = bootstrap(m);
	/* the image becomes the state at the bootstrap's last entry, as if applied there */
	uint64_t index = m->recovered_commit, term = 0;
	struct raft_snapshot snap = {0};
	if (rc == 0)
		rc = m->st.term(m->st.data, index, &term);
	if (rc == 0)
		rc = snapshot_data_encode(m, image, len, &snap.data, &snap.len);
	for (int i = 0; rc == 0 && i < m->n_peers; i++)
		m->conf.voters[m->conf.n_voters++] = m->peers[i].id;
	snap.meta.index = index;
	snap.meta.term = term;
	snap.meta.conf = m->conf;
	if (rc == 0)
		rc = raft_memory_storage_create_snapshot(m->ms, index, &m->conf, snap.data, snap.len);
	if (rc == 0)
		rc = snapshot_file_save(m, &snap);
	if (rc == 0)
		rc = wal_sync(m->wal);
	if (rc == 0)
		FS_INFO("restored a store image of %zu bytes into %s as member %s (%016" PRIx64 ") of "
			"a new cluster %016" PRIx64, len, cfg->data_dir, cfg->name, m->id,
			m->cluster_id);
	else if (rc != -EEXIST && rc != -EINVAL)
		FS_ERROR("restore into %s failed: %s", cfg->data_dir,
			 fs_err_is_errno(rc) ? wal_errmsg() : fs_strerror(rc));
	free(snap.data);
	member_free(m);
	return rc;
}

/* ---- API ---------------------------------------------------------------------------------------- */

static int backlog_too_large(struct fs_member *m)
{
	struct raft_hard_state hs;
	raft_hard_state(m->raft, &hs);
	return hs.commit > m->applied + FS_MAX_APPLY_BACKLOG;
}

int fs_member_propose_encoded(struct fs_member *m, size_t len,
			      void (*encode)(const void *src, uint8_t *buf), const void *src,
			      fs_wait_cb cb, void *arg)
{
	if (m->stopping || m->removed) {
		cb(arg, 0, m->removed ? FS_EREMOVED : FS_ESTOPPING, NULL, 0);
		return 0;
	}
	if (backlog_too_large(m)) {
		cb(arg, 0, FS_ETOOMANYREQUESTS, NULL, 0);
		return 0;
	}
	struct inbox_item *it = item_new(ENVELOPE_ID_BYTES + len);
	if (!it)
		return -ENOMEM;
	uint64_t id = fs_reqid_next(&m->reqid);
	it->kind = IN_PROPOSAL;
	it->len = ENVELOPE_ID_BYTES + len;
	put_u64(it->data, id);
	encode(src, it->data + ENVELOPE_ID_BYTES);
	int rc = fs_wait_register(&m->wait, id, uv_now(m->loop) + m->opt.request_timeout_ms, cb,
				  arg);
	if (rc != 0) {
		free(it);
		return rc;
	}
	inbox_push(m, it);
	return 0;
}

/* fs_member_propose's encoder: the request as given. */
static void encode_copy(const void *src, uint8_t *buf)
{
	const struct { const void *p; size_t n; } *r = src;
	memcpy(buf, r->p, r->n);
}

int fs_member_propose(struct fs_member *m, const void *req, size_t len, fs_wait_cb cb, void *arg)
{
	const struct { const void *p; size_t n; } r = {req, len};
	return fs_member_propose_encoded(m, len, encode_copy, &r, cb, arg);
}

int fs_member_change(struct fs_member *m, enum fs_member_change_type type, uint64_t node_id,
		     const char *name, const char *addr, fs_wait_cb cb, void *arg)
{
	char context[FS_NAME_MAX + FS_ADDR_MAX + 2] = "";
	if (type != FS_MEMBER_REMOVE) {
		/* as etcd's member add: a name=host:port that parses, a name no other member has */
		struct fs_peer_config pc;
		int n = 0;
		if (!name || !addr || !name[0] || strlen(name) > FS_NAME_MAX ||
		    strlen(addr) > FS_ADDR_MAX || strchr(name, '=') || strchr(name, ','))
			return -EINVAL;
		snprintf(context, sizeof context, "%s=%s", name, addr);
		FILE *devnull = fopen("/dev/null", "w");
		int bad = !devnull || fs_config_parse_cluster(context, &pc, 1, &n, devnull) != 0;
		if (devnull)
			fclose(devnull);
		if (bad)
			return -EINVAL;
		for (int i = 0; i < m->n_peers; i++)
			if (!strcmp(m->peers[i].name, name) && m->peers[i].id != node_id)
				return -EEXIST;
	}
	if (m->stopping || m->removed) {
		cb(arg, 0, m->removed ? FS_EREMOVED : FS_ESTOPPING, NULL, 0);
		return 0;
	}
	size_t clen = strlen(context);
	struct inbox_item *it = item_new(clen);
	if (!it)
		return -ENOMEM;
	it->kind = IN_CONF_CHANGE;
	memcpy(it->data, context, clen);
	it->len = clen;
	it->cc.type = type == FS_MEMBER_ADD_VOTER     ? RAFT_CONF_ADD_NODE
		      : type == FS_MEMBER_ADD_LEARNER ? RAFT_CONF_ADD_LEARNER_NODE
						      : RAFT_CONF_REMOVE_NODE;
	it->cc.node_id = node_id;
	it->cc.id = fs_reqid_next(&m->reqid);
	it->cc.context = clen ? it->data : NULL;
	it->cc.context_len = clen;
	int rc = fs_wait_register(&m->wait, it->cc.id, uv_now(m->loop) + m->opt.request_timeout_ms,
				  cb, arg);
	if (rc != 0) {
		free(it);
		return rc;
	}
	inbox_push(m, it);
	return 0;
}

int fs_member_transfer_leader(struct fs_member *m, uint64_t to)
{
	if (m->stopping || m->removed)
		return FS_ESTOPPING;
	int voter = 0;
	for (size_t i = 0; i < m->conf.n_voters; i++)
		voter |= m->conf.voters[i] == to;
	if (!voter)
		return -ENOENT;
	if (m->lead == to)
		return -EALREADY;
	if (m->lead == 0)
		return -EAGAIN;
	int rc = raft_transfer_leader(m->raft, to);
	if (rc != 0)
		return rc == RAFT_EPROPOSALDROPPED ? -EAGAIN : -EIO;
	FS_INFO("asked to hand leadership from %016" PRIx64 " to %016" PRIx64, m->lead, to);
	process_ready(m);
	return 0;
}

int fs_member_read_barrier(struct fs_member *m, fs_wait_cb cb, void *arg)
{
	if (m->stopping) {
		cb(arg, 0, FS_ESTOPPING, NULL, 0);
		return 0;
	}
	struct read_wait *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->deadline = uv_now(m->loop) + m->opt.request_timeout_ms;
	r->cb = cb;
	r->arg = arg;
	r->next = m->reads;
	m->reads = r;
	reads_round(m);
	return 0;
}

void fs_member_status(struct fs_member *m, struct fs_member_status *out)
{
	struct raft_status st;
	raft_status(m->raft, &st);
	memset(out, 0, sizeof *out);
	out->id = m->id;
	out->cluster_id = m->cluster_id;
	out->leader = m->lead;
	out->is_leader = m->lead == m->id;
	out->term = st.hard_state.term;
	out->commit = st.hard_state.commit;
	out->applied = m->applied;
	out->last_index = st.last_index;
	out->snapshot_index = m->snap_index;
	out->snapshots_sent = m->snapshots_sent;
	out->snapshot_bytes_sent = m->snapshot_bytes_sent;
	out->joining = m->joining;
	out->n_voters = (int)m->conf.n_voters;
	out->n_learners = (int)m->conf.n_learners;
	memcpy(out->voters, m->conf.voters, m->conf.n_voters * sizeof m->conf.voters[0]);
	memcpy(out->learners, m->conf.learners, m->conf.n_learners * sizeof m->conf.learners[0]);
}

int fs_member_peers(struct fs_member *m, struct fs_peer_config *out, int max)
{
	int n = 0;
	for (int i = 0; i < m->n_peers && n < max; i++, n++) {
		memset(&out[n], 0, sizeof out[n]);
		out[n].id = m->peers[i].id;
		snprintf(out[n].name, sizeof out[n].name, "%s", m->peers[i].name);
		snprintf(out[n].addr, sizeof out[n].addr, "%s", m->peers[i].addr);
	}
	return n;
}

int fs_member_replayed(struct fs_member *m)
{
	join_settle(m);
	return !m->joining && m->applied >= m->recovered_commit;
}

const char *fs_member_peer_security(struct fs_member *m)
{
	return fs_transport_security(m->tr);
}

int fs_member_peer_subject(struct fs_member *m, uint64_t id, char *buf, size_t cap)
{
	return fs_transport_peer_subject(m->tr, id, buf, cap);
}

int fs_member_reload_tls(struct fs_member *m)
{
	return fs_transport_reload_tls(m->tr);
}

void fs_member_block_peer(struct fs_member *m, uint64_t peer, int blocked)
{
	fs_transport_block(m->tr, peer, blocked);
}

/* ---- stop --------------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	struct fs_member *m = h->data;
	m->open_handles--;
	handles_closed_maybe_done(m);
}

static void on_transport_closed(void *arg)
{
	struct fs_member *m = arg;
	m->tr = NULL;
	m->open_handles--;
	handles_closed_maybe_done(m);
}

static void handles_closed_maybe_done(struct fs_member *m)
{
	if (!m->closing || m->open_handles > 0 || m->persisting || m->snap_working || m->snap_reads)
		return;
	void (*done)(void *) = m->done;
	void *arg = m->done_arg;
	FS_INFO("member %016" PRIx64 " stopped at applied index %" PRIu64, m->id, m->applied);
	member_free(m);
	if (done)
		done(arg);
}

/* Leadership has moved (or the wait is over): fail what waits, close everything. */
static void member_begin_stop(struct fs_member *m)
{
	if (m->closing)
		return;
	m->stopping = 1;
	m->closing = 1;
	if (m->snap_pid) {
		/* an unfinished snapshot is only a .tmp file: the next start ignores it */
		kill(m->snap_pid, SIGKILL);
		waitpid(m->snap_pid, NULL, 0);
		m->snap_pid = 0;
	}
	fs_wait_fail_all(&m->wait, FS_ESTOPPING);
	reads_settle(m, uv_now(m->loop));
	m->open_handles = 3;
	uv_timer_stop(&m->ticker);
	uv_close((uv_handle_t *)&m->ticker, on_handle_closed);
	uv_close((uv_handle_t *)&m->check, on_handle_closed);
	fs_transport_close(m->tr, on_transport_closed, m);
}

void fs_member_stop(struct fs_member *m, void (*done)(void *arg), void *arg)
{
	m->done = done;
	m->done_arg = arg;
	if (m->closing || m->transferring)
		return;
	m->stopping = 1;
	struct raft_status st;
	raft_status(m->raft, &st);
	uint64_t best = 0, best_match = 0;
	if (m->lead == m->id) {
		for (size_t i = 0; i < st.n_progress; i++) {
			const struct raft_status_progress *p = &st.progress[i];
			if (p->id != m->id && !p->is_learner && p->match >= best_match) {
				best = p->id;
				best_match = p->match;
			}
		}
	}
	if (best && !m->removed) {
		FS_INFO("handing leadership to %016" PRIx64 " before stopping", best);
		raft_transfer_leader(m->raft, best);
		m->transferring = 1;
		m->stop_deadline = uv_now(m->loop) + m->cfg.election_ms;
		process_ready(m);
		return; /* on_tick finishes the stop once the leader moved */
	}
	member_begin_stop(m);
}
