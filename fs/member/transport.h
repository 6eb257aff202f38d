/*
 * member/transport.h: the peer transport of a member: raft messages between members over TCP
 * (in TLS when configured), on the member's libuv loop.
 *
 * Each member dials every peer once for what it sends (an outbound connection per peer) and
 * accepts the peers' connections for what it receives. A connection opens with a handshake naming
 * the cluster id and both member ids; a member of another cluster, or an id this member does not
 * know, is refused with a log line naming both. Frames are length-prefixed: a 4-byte little-endian
 * body length, a kind byte, the body. Sending copies the message into the peer's bounded queue;
 * when the queue is full the message is dropped and the peer reported unreachable (as etcd does),
 * and raft retransmits later. A dropped connection is redialed with exponential backoff.
 *
 * Snapshots travel on a connection of their own, so a large one never blocks messages: a head
 * frame with the raft message, the data in 1 MiB chunks written one at a time, an end frame with
 * length and CRC-32C. The receiver writes the chunks to a temp file in its snap_dir and hands the
 * file to the member only when it is whole and fsynced; the sender learns the outcome (raft's
 * ReportSnapshot) from the receiver's answer, or a failure if the stream breaks.
 *
 * With cfg.tls every connection is TLS 1.3 (member/tls.c, OpenSSL on memory BIOs: nothing here
 * blocks): the dialer is the client and presents its certificate, the acceptor requires and
 * verifies it when client certificate auth is on, and the HELLO is sent only once the handshake
 * is complete; the frames inside are the same. A TLS member and a plaintext one refuse each other
 * with a log line naming the address and "protocol mismatch"; a failed handshake is one log line
 * with the reason (no certificate, unknown CA, CN not allowed, expired, or the peer's alert).
 *
 * All functions must be called on the loop's thread.
 */
#ifndef RAFTFS_FS_MEMBER_TRANSPORT_H
#define RAFTFS_FS_MEMBER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct fs_transport;

/*
 * Why a snapshot was not taken: the reason byte of the receiver's SNAPACK (a peer that sends a
 * one-byte SNAPACK gives none), or FS_SNAP_STREAM when no answer came.
 */
enum fs_snap_reason {
	FS_SNAP_NO_REASON = 0,  /* the receiver gave none */
	FS_SNAP_IO = 1,         /* the receiver could not store or read it */
	FS_SNAP_NOT_MEMBER = 2, /* its membership does not name the receiver */
	FS_SNAP_STALE_TERM = 3, /* its sender's term is older than the receiver's */
	FS_SNAP_BAD = 4,        /* its raft message does not decode */
	FS_SNAP_STREAM = 5,     /* the stream broke before the receiver answered */
};

/* A phrase for reason (a static string). */
const char *fs_snap_reason_text(int reason);

/* The receiver's verdict on a snapshot it refuses (filled by on_snapshot). */
struct fs_snap_verdict {
	int reason;     /* an enum fs_snap_reason, sent back to the sender */
	char why[512];  /* the receiver's log line says this; "" for the reason's phrase */
};

struct fs_transport_callbacks {
	/* A message from member `from`; buf is valid only during the call. */
	void (*on_message)(void *ud, uint64_t from, const uint8_t *buf, size_t len);
	/* A message to member `to` was dropped, or the connection to it failed. */
	void (*on_unreachable)(void *ud, uint64_t to);
	/*
	 * A whole snapshot from `from`: msg[0..msglen) is its raft message, path a fsynced file in
	 * snap_dir holding its data, which the callee now owns (renames or unlinks it). Returns 0
	 * when applied or accepted for applying, or a negative error after filling *v (zeroed by
	 * the transport), which logs one line with v->why and tells the sender v->reason.
	 */
	int (*on_snapshot)(void *ud, uint64_t from, const uint8_t *msg, size_t msglen,
			   const char *path, struct fs_snap_verdict *v);
	/*
	 * The snapshot sent to `to` was received whole and accepted (ok = 1), or not (ok = 0,
	 * reason an enum fs_snap_reason; the transport has logged it).
	 */
	void (*on_snapshot_sent)(void *ud, uint64_t to, int ok, int reason);
	/* Started with cluster_id 0 (joining), the cluster's id was learned from a peer. */
	void (*on_cluster_id)(void *ud, uint64_t cluster_id);
	/* Peer `from`, of our own cluster, refused us as a member it does not know (removed?). */
	void (*on_refused_unknown)(void *ud, uint64_t from);
};

/*
 * Peer TLS, in etcd's flags. Every connection, message and snapshot stream alike, is TLS 1.3:
 * the dialer is the client and presents its certificate, the acceptor the server. With ca_file
 * both sides verify the other's certificate against it (the dialer also checks that it names
 * the address dialed); with client_cert_auth the acceptor refuses a dialer without a valid
 * certificate; with allowed_cn both refuse a certificate whose CN differs. Without ca_file (or
 * with auto_dir) traffic is encrypted but nobody is authenticated.
 */
struct fs_transport_tls {
	const char *cert_file;  /* --peer-cert-file: PEM certificate (chain) */
	const char *key_file;   /* --peer-key-file: PEM key, readable by its owner only */
	const char *ca_file;    /* --peer-trusted-ca-file, or NULL */
	int client_cert_auth;   /* --peer-client-cert-auth: require and verify client certs */
	const char *allowed_cn; /* --peer-cert-allowed-cn, or NULL */
	const char *auto_dir;   /* --peer-auto-tls: where the self-signed pair is kept (its parent
				 * is made too), or NULL */
	const char *auto_host;  /* the host the automatic certificate names (an IP or a name);
				 * NULL: listen_addr's */
	const char *auto_cn;    /* its CN (the member's name) */
};

struct fs_transport_config {
	uint64_t cluster_id;      /* sent and checked in every handshake; 0 while joining a
				   * cluster whose id is learned from the first peer that accepts */
	uint64_t self_id;         /* this member's id */
	const char *listen_addr;  /* host:port to accept peers on */
	size_t max_queue_bytes;   /* per-peer outbound bound; 0: 64 MiB */
	size_t max_queue_frames;  /* per-peer outbound bound; 0: 4096 */
	uint32_t max_frame_bytes; /* larger incoming frames close the connection; 0: 256 MiB */
	unsigned backoff_min_ms;  /* first redial delay; 0: 25 */
	unsigned backoff_max_ms;  /* longest redial delay; 0: 1000 */
	const char *snap_dir;     /* where incoming snapshots are written; NULL: refuse them */
	const struct fs_transport_tls *tls; /* NULL: plaintext; copied at start */
};

/*
 * Starts listening. On success *out is a transport owned by the caller until fs_transport_close.
 * With cfg->tls, first loads the certificates (a failure is logged, -EKEYREJECTED).
 * Ignores SIGPIPE process-wide when it still has its default action (writes to a reset peer then
 * fail with EPIPE instead of killing the process).
 * cfg is copied (listen_addr too); cb and ud must stay valid until the close callback.
 * Returns -EINVAL for a bad address, or the libuv error of bind/listen (e.g. -EADDRINUSE).
 */
int fs_transport_start(struct fs_transport **out, uv_loop_t *loop,
		       const struct fs_transport_config *cfg, const struct fs_transport_callbacks *cb,
		       void *ud);

/* The port actually bound (useful with port 0 in tests). */
int fs_transport_port(const struct fs_transport *t);

/* Adds (or readdresses) peer id at host:port; -EINVAL for a bad address, -ENOMEM. */
int fs_transport_add_peer(struct fs_transport *t, uint64_t id, const char *addr);

/* Forgets peer id: drops its queue and connections. -ENOENT when unknown. */
int fs_transport_remove_peer(struct fs_transport *t, uint64_t id);

/*
 * Queues a copy of buf[0..len) for member `to`. Returns 0, -ENOENT for an unknown peer, or
 * -ENOBUFS when the peer's queue is full (the message is dropped and on_unreachable called).
 */
int fs_transport_send(struct fs_transport *t, uint64_t to, const void *buf, size_t len);

/*
 * Streams a snapshot to `to` on a connection of its own: msg[0..msglen) is the raft message
 * (copied), data[0..len) the snapshot's data, borrowed until release(arg) is called — once, after
 * on_snapshot_sent. Returns 0, -ENOENT for an unknown peer, -ENOMEM; on an error neither callback
 * runs and data stays the caller's.
 */
int fs_transport_send_snapshot(struct fs_transport *t, uint64_t to, const void *msg, size_t msglen,
			       const void *data, size_t len, void (*release)(void *arg), void *arg);

/* Whether the outbound connection to `to` is up and past its handshake. */
int fs_transport_connected(const struct fs_transport *t, uint64_t to);

/*
 * Re-reads the TLS certificate, key and CA files (SIGHUP): new connections use them, open ones
 * keep theirs. 0, -EINVAL (logged; the old ones stay), or -ENOTSUP without TLS.
 */
int fs_transport_reload_tls(struct fs_transport *t);

/* What peer traffic is ("plaintext", "TLS 1.3, ..."): a static string. */
const char *fs_transport_security(const struct fs_transport *t);

/*
 * The subject of the certificate of peer `id` on an open connection (the one dialed first, else
 * one it dialed to us) into buf[0..cap): 0, -ENOTCONN when none is open, -ENOTSUP without TLS.
 */
int fs_transport_peer_subject(const struct fs_transport *t, uint64_t id, char *buf, size_t cap);

/*
 * Test-only fault hook: while `blocked` is set, messages to and from `peer` are silently dropped
 * (a partition that keeps the TCP connections up).
 */
void fs_transport_block(struct fs_transport *t, uint64_t peer, int blocked);

/* Closes every handle; `done(arg)` runs on the loop once all are closed and t is freed. */
void fs_transport_close(struct fs_transport *t, void (*done)(void *arg), void *arg);

#endif
