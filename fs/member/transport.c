/*
 * transport.c: raft messages between members over TCP on the member's libuv loop (see
 * member/transport.h for the contract).
 *
 * Frame: u32 little-endian body length, u8 kind, body. Kinds:
 *   HELLO   body = "RAFTFS01", u64 cluster id, u64 sender id, u64 receiver id (all LE)
 *   WELCOME body = u64 cluster id: the handshake was accepted
 * A member joining an existing cluster does not know the cluster id yet: it says 0, is accepted by
 * members that know its id (the cluster added it), and adopts the id their WELCOME carries.
 *   REFUSE  body = u8 reason, u64 cluster id, u64 member id of the refusing side
 *   MSG     body = one encoded raft message
 *   SNAPHELLO, as HELLO, opens a snapshot stream; then
 *   SNAPHEAD body = the raft message; SNAPCHUNK body = data; SNAPEND body = u64 length, u32 crc32c
 *   SNAPACK body = u8 ok, u8 reason (enum fs_snap_reason), from the receiver once it has the
 *           whole snapshot (or has given up); a one-byte SNAPACK, from an older peer, gives none
 * The dialing side sends HELLO and waits for WELCOME before sending MSG frames; the accepting side
 * answers HELLO with WELCOME or REFUSE and closes after a REFUSE.
 *
 * Lifetimes: connections and peers are freed only in libuv close callbacks, so a callback into the
 * member that removes a peer while one of its frames is being handled is safe: the connection is
 * marked closing and the frame loop stops.
 */
#include "member/transport.h"

#include "common/common.h"
#include "member/tls.h"
#include "wal.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FS_ADDR_MAX_LEN 64 /* host:port, NUL included */
#define FRAME_HEADER 5
#define HELLO_MAGIC "RAFTFS01"
#define HELLO_BYTES (8 + 3 * 8)
#define WRITE_BATCH 64 /* frames per uv_write */

#define SNAP_CHUNK (1u << 20)
#define TLS_READ 65536 /* ciphertext read from the socket at a time */
#define REFUSAL_QUIET_MS 60000 /* an inbound refusal repeated within this is logged at debug */

enum frame_kind {
	KIND_HELLO = 1,
	KIND_WELCOME = 2,
	KIND_REFUSE = 3,
	KIND_MSG = 4,
	KIND_SNAPHELLO = 5,
	KIND_SNAPHEAD = 6,
	KIND_SNAPCHUNK = 7,
	KIND_SNAPEND = 8,
	KIND_SNAPACK = 9,
};
enum refuse_reason {
	REFUSE_MAGIC = 1,
	REFUSE_CLUSTER = 2,
	REFUSE_UNKNOWN = 3,
	REFUSE_TARGET = 4,
	REFUSE_NOSNAP = 5,
	REFUSE_NEEDS_TLS = 6, /* a plaintext HELLO reached a member that speaks only TLS */
	REFUSE_NO_TLS = 7,    /* a TLS ClientHello reached a member that speaks plaintext */
};
enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_READY, CONN_CLOSING };

struct frame {
	struct frame *next; /* queue link */
	size_t len;         /* bytes in data: header and body */
	uint8_t data[];     /* FRAME_HEADER bytes of header, then the body */
};

struct peer;

/* The sending side of a snapshot stream. */
struct snap_out {
	uint64_t to;
	uint8_t *msg;               /* the raft message, owned */
	size_t msglen;
	const uint8_t *data;        /* borrowed until release */
	size_t len, off;            /* data length, bytes handed to writes so far */
	uint32_t crc;               /* running CRC-32C of data[0..off) */
	void (*release)(void *arg);
	void *arg;
	int done;                   /* the outcome was reported */
};

/* The receiving side of a snapshot stream. */
struct snap_in {
	int fd;                     /* the temp file, -1 when closed */
	char path[4200];            /* its name, "" once handed over or removed */
	uint8_t *msg;               /* the raft message from SNAPHEAD, owned */
	size_t msglen;
	uint64_t got;               /* data bytes written */
	uint32_t crc;               /* running CRC-32C of them */
};

struct conn {
	uv_tcp_t tcp;           /* the socket; its data points back here */
	struct fs_transport *t; /* owner */
	struct peer *peer;      /* outbound: the peer dialed, NULL once detached; inbound: NULL */
	int outbound;           /* dialed by us (sends MSG) or accepted (receives MSG) */
	enum conn_state state;
	uint64_t remote_id;     /* inbound: the sender named in its HELLO, once accepted */
	uint8_t *rbuf;          /* bytes read and not yet parsed: rbuf[0..rlen) of rcap */
	size_t rlen, rcap;
	uv_connect_t creq;      /* outbound dial */
	uv_write_t wreq;        /* the MSG batch in flight */
	struct frame *inflight; /* frames of that batch, freed when it completes */
	int writing;            /* a MSG batch is in flight */
	int refused;            /* inbound: refused, closing once the REFUSE is written */
	struct snap_out *so;    /* a snapshot stream we send, or NULL */
	struct snap_in *si;     /* a snapshot stream we receive, or NULL */
	struct fs_tls_conn *tls; /* with TLS: the session the socket's bytes pass through */
	int tls_up;             /* its handshake is complete */
	int got_bytes;          /* something was read from the socket */
	uint8_t *nbuf;          /* with TLS: where the socket's ciphertext is read, TLS_READ bytes */
	uint8_t *wcipher;       /* with TLS: the ciphertext of the MSG batch in flight */
	char addr[FS_ADDR_MAX_LEN]; /* the remote address, for logs */
	struct conn *next;      /* in t->conns */
};

struct peer {
	uint64_t id;
	char addr[FS_ADDR_MAX_LEN];
	struct sockaddr_storage sa; /* resolved addr */
	struct fs_transport *t;
	struct conn *conn;          /* the current outbound connection, or NULL */
	struct frame *head, *tail;  /* queued MSG frames not yet handed to a write */
	size_t q_bytes, q_frames;
	uv_timer_t redial;          /* redial timer, closed with the peer */
	unsigned backoff_ms;        /* the next redial delay */
	int blocked;                /* fault hook: drop everything to and from this peer */
	int refusal_logged;         /* a refusal by this peer was logged since the last success */
	int removed;                /* removed: freed when its timer has closed */
	struct peer *next;          /* in t->peers */
};

struct fs_transport {
	uv_loop_t *loop;
	struct fs_transport_config cfg; /* copied; listen_addr points at listen_addr_buf */
	char listen_addr_buf[FS_ADDR_MAX_LEN];
	char snap_dir_buf[4096];
	struct fs_transport_callbacks cb;
	void *ud;
	uv_tcp_t listener;
	struct peer *peers;
	struct conn *conns;
	struct fs_tls *tls; /* peer TLS, or NULL: plaintext */
	char refusal[384];  /* the last inbound refusal logged: host and reason */
	uint64_t refusal_ms; /* when (uv_now) */
	int closing;      /* fs_transport_close was called */
	int open_handles; /* handles not yet closed, while closing */
	void (*done)(void *arg);
	void *done_arg;
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static struct frame *frame_new(enum frame_kind kind, const void *body, size_t len)
{
	struct frame *f = malloc(sizeof *f + FRAME_HEADER + len);
	if (!f)
		return NULL;
	f->next = NULL;
	f->len = FRAME_HEADER + len;
	put_le32(f->data, (uint32_t)len);
	f->data[4] = (uint8_t)kind;
	if (len)
		memcpy(f->data + FRAME_HEADER, body, len);
	return f;
}

static void frames_free(struct frame *f)
{
	while (f) {
		struct frame *next = f->next;
		free(f);
		f = next;
	}
}

/* The host of host:port into host[FS_ADDR_MAX_LEN] ([::1]:7001 gives ::1); the port, or NULL. */
static const char *split_host(const char *addr, char *host)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= FS_ADDR_MAX_LEN)
		return NULL;
	size_t n = (size_t)(colon - addr);
	if (addr[0] == '[' && addr[n - 1] == ']' && n >= 2) {
		memcpy(host, addr + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		memcpy(host, addr, n);
		host[n] = '\0';
	}
	return colon + 1;
}

/* Resolves host:port (numeric or a name) into sa. */
static int resolve(const char *addr, struct sockaddr_storage *sa)
{
	char h[FS_ADDR_MAX_LEN];
	const char *port = split_host(addr, h);
	if (!port)
		return -EINVAL;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	if (getaddrinfo(h, port, &hints, &res) != 0 || !res)
		return -EINVAL;
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* ---- handle bookkeeping ---------------------------------------------------------------- */

static void transport_maybe_done(struct fs_transport *t);

static void conn_unlink(struct conn *c)
{
	struct conn **pp = &c->t->conns;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
}

static void snapout_finish(struct conn *c, int ok, int reason);
static void snapin_discard(struct snap_in *si);

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct fs_transport *t = c->t;
	conn_unlink(c);
	if (c->so) {
		snapout_finish(c, 0, FS_SNAP_STREAM); /* no-op when already reported */
		free(c->so->msg);
		free(c->so);
	}
	if (c->si) {
		snapin_discard(c->si);
		free(c->si->msg);
		free(c->si);
	}
	frames_free(c->inflight);
	free(c->rbuf);
	free(c->nbuf);
	free(c->wcipher);
	fs_tls_conn_free(c->tls);
	free(c);
	if (t->closing) {
		t->open_handles--;
		transport_maybe_done(t);
	}
}

static void conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->peer && c->peer->conn == c)
		c->peer->conn = NULL;
	c->peer = NULL;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static struct conn *conn_new(struct fs_transport *t, int outbound)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->t = t;
	c->outbound = outbound;
	c->state = outbound ? CONN_CONNECTING : CONN_HANDSHAKE;
	if (uv_tcp_init(t->loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, 10); /* notice a peer host that vanished without a FIN */
	c->next = t->conns;
	t->conns = c;
	return c;
}

static struct peer *peer_find(const struct fs_transport *t, uint64_t id)
{
	for (struct peer *p = t->peers; p; p = p->next)
		if (p->id == id && !p->removed)
			return p;
	return NULL;
}

/* ---- writes ------------------------------------------------------------------------------ */

/* What to do once a frame written outside the MSG queue is out. */
enum raw_then {
	RAW_KEEP,        /* nothing */
	RAW_CLOSE_AFTER, /* close the connection (after a REFUSE or SNAPACK) */
	RAW_PUMP,        /* write the next snapshot chunk */
};

struct raw_write {
	uv_write_t req;
	enum raw_then then;
	void *buf; /* what is written, freed once written */
};

static void snapout_pump(struct conn *c);

static void on_raw_written(uv_write_t *req, int status)
{
	struct raw_write *w = (struct raw_write *)req;
	struct conn *c = req->handle->data;
	if (w->then == RAW_CLOSE_AFTER || status < 0)
		conn_close(c);
	else if (w->then == RAW_PUMP && c->state != CONN_CLOSING && c->so)
		snapout_pump(c);
	free(w->buf);
	free(w);
}

/*
 * Writes data[0..len) in order with other writes and frees owner (which holds data) once it is
 * out; owner NULL (nothing to write) with RAW_CLOSE_AFTER closes at once.
 */
static void conn_write_bytes(struct conn *c, void *owner, const void *data, size_t len,
			     enum raw_then then)
{
	if (!owner) {
		if (then == RAW_CLOSE_AFTER)
			conn_close(c);
		return;
	}
	struct raw_write *w = malloc(sizeof *w);
	if (!w) {
		free(owner);
		conn_close(c);
		return;
	}
	w->then = then;
	w->buf = owner;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_raw_written) != 0) {
		free(owner);
		free(w);
		conn_close(c);
	}
}

/* With TLS: writes the ciphertext the session has ready (handshake records, alerts), if any. */
static void tls_flush(struct conn *c, enum raw_then then)
{
	size_t n = 0;
	uint8_t *cipher = c->tls ? fs_tls_conn_take(c->tls, &n) : NULL;
	if (!cipher && n) {
		conn_close(c); /* out of memory */
		return;
	}
	conn_write_bytes(c, cipher, cipher, n, then);
}

/*
 * Writes a frame outside the MSG queue, in order with other writes (encrypted with TLS); takes
 * ownership of f.
 */
static void conn_write_raw(struct conn *c, struct frame *f, enum raw_then then)
{
	if (!f) {
		conn_close(c);
		return;
	}
	if (!c->tls) {
		conn_write_bytes(c, f, f->data, f->len, then);
		return;
	}
	int rc = fs_tls_conn_write(c->tls, f->data, f->len);
	free(f);
	if (rc != 0) {
		conn_close(c);
		return;
	}
	tls_flush(c, then);
}

static void peer_drop_queue(struct peer *p)
{
	frames_free(p->head);
	p->head = p->tail = NULL;
	p->q_bytes = p->q_frames = 0;
}

static void peer_flush(struct peer *p);

static void on_batch_written(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;
	frames_free(c->inflight);
	c->inflight = NULL;
	free(c->wcipher);
	c->wcipher = NULL;
	c->writing = 0;
	if (status < 0) {
		struct peer *p = c->peer;
		if (p)
			FS_WARN("peer %016" PRIx64 " at %s: write failed: %s", p->id, p->addr,
				uv_strerror(status));
		conn_close(c);
		return;
	}
	if (c->peer && c->state == CONN_READY)
		peer_flush(c->peer);
}

/* Hands up to WRITE_BATCH queued frames to one uv_write on the peer's ready connection. */
static void peer_flush(struct peer *p)
{
	struct conn *c = p->conn;
	if (!c || c->state != CONN_READY || c->writing || !p->head)
		return;
	uv_buf_t bufs[WRITE_BATCH];
	unsigned n = 0;
	struct frame *first = p->head, *last = NULL;
	for (struct frame *f = p->head; f && n < WRITE_BATCH; f = f->next) {
		bufs[n++] = uv_buf_init((char *)f->data, (unsigned)f->len);
		p->q_bytes -= f->len;
		p->q_frames--;
		last = f;
	}
	p->head = last->next;
	if (!p->head)
		p->tail = NULL;
	last->next = NULL;
	if (c->tls) {
		/*
		 * One buffer of ciphertext for the batch, from one SSL_write of the frames put
		 * together: a record costs OpenSSL more than copying a frame does.
		 */
		size_t total = 0;
		for (unsigned i = 0; i < n; i++)
			total += bufs[i].len;
		uint8_t *plain = n > 1 ? malloc(total) : NULL;
		int rc = n > 1 && !plain ? -ENOMEM : 0;
		if (plain) {
			size_t off = 0;
			for (unsigned i = 0; i < n; i++) {
				memcpy(plain + off, bufs[i].base, bufs[i].len);
				off += bufs[i].len;
			}
		}
		if (rc == 0)
			rc = fs_tls_conn_write(c->tls, plain ? plain : (uint8_t *)bufs[0].base, total);
		free(plain);
		frames_free(first);
		first = NULL;
		size_t len = 0;
		c->wcipher = rc == 0 ? fs_tls_conn_take(c->tls, &len) : NULL;
		if (!c->wcipher) {
			conn_close(c);
			return;
		}
		bufs[0] = uv_buf_init((char *)c->wcipher, (unsigned)len);
		n = 1;
	}
	c->inflight = first;
	c->writing = 1;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, on_batch_written) != 0) {
		c->writing = 0;
		conn_close(c);
	}
}

/* ---- outbound connections ------------------------------------------------------------------ */

static void peer_dial(struct peer *p);
static void conn_open(struct conn *c);

static void on_redial(uv_timer_t *timer)
{
	peer_dial(timer->data);
}

/* The outbound connection failed or was refused: drop what was queued, redial later. */
static void peer_failed(struct peer *p, unsigned delay_ms)
{
	struct fs_transport *t = p->t;
	if (p->conn)
		conn_close(p->conn);
	int had_queue = p->q_frames > 0;
	peer_drop_queue(p);
	if (t->closing || p->removed)
		return;
	uv_timer_start(&p->redial, on_redial, delay_ms ? delay_ms : p->backoff_ms, 0);
	p->backoff_ms = p->backoff_ms * 2 > t->cfg.backoff_max_ms ? t->cfg.backoff_max_ms
								  : p->backoff_ms * 2;
	if (had_queue && t->cb.on_unreachable)
		t->cb.on_unreachable(t->ud, p->id);
}

/* Room for at least 64 KiB more in c->rbuf; -ENOMEM. */
static int rbuf_reserve(struct conn *c)
{
	if (c->rcap - c->rlen >= 65536)
		return 0;
	size_t cap = c->rcap ? c->rcap * 2 : 131072;
	while (cap - c->rlen < 65536)
		cap *= 2;
	uint8_t *nb = realloc(c->rbuf, cap);
	if (!nb)
		return -ENOMEM;
	c->rbuf = nb;
	c->rcap = cap;
	return 0;
}

/* Plaintext goes straight into rbuf; with TLS the ciphertext into nbuf, decrypted from there. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	if (c->tls) {
		if (!c->nbuf)
			c->nbuf = malloc(TLS_READ);
		*buf = uv_buf_init((char *)c->nbuf, c->nbuf ? TLS_READ : 0);
		return;
	}
	if (rbuf_reserve(c) != 0) {
		*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to the read callback */
		return;
	}
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void transport_adopt_cluster(struct fs_transport *t, uint64_t cluster);

static const char *refuse_reason_text(int reason)
{
	switch (reason) {
	case REFUSE_MAGIC:
		return "not a raftfs peer handshake";
	case REFUSE_CLUSTER:
		return "member of another cluster";
	case REFUSE_UNKNOWN:
		return "unknown member id";
	case REFUSE_TARGET:
		return "handshake addressed to another member";
	case REFUSE_NOSNAP:
		return "snapshots not accepted here";
	case REFUSE_NEEDS_TLS:
		return "protocol mismatch: it takes TLS peers only and this member speaks plaintext";
	case REFUSE_NO_TLS:
		return "protocol mismatch: it speaks TLS and this member plaintext (no "
		       "--peer-cert-file)";
	default:
		return "unknown reason";
	}
}

/* A frame on an outbound connection: the answer to our HELLO. */
static void outbound_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len)
{
	struct peer *p = c->peer;
	struct fs_transport *t = c->t;
	if (!p) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_HANDSHAKE && kind == KIND_WELCOME) {
		if (len >= 8 && t->cfg.cluster_id == 0 && get_le64(body) != 0)
			transport_adopt_cluster(t, get_le64(body));
		c->state = CONN_READY;
		p->backoff_ms = t->cfg.backoff_min_ms;
		if (p->refusal_logged)
			FS_INFO("peer %016" PRIx64 " at %s: accepted us now", p->id, p->addr);
		p->refusal_logged = 0;
		FS_DEBUG("peer %016" PRIx64 " at %s: connected", p->id, p->addr);
		peer_flush(p);
		return;
	}
	if (c->state == CONN_HANDSHAKE && kind == KIND_REFUSE && len >= 17 &&
	    body[0] == REFUSE_NEEDS_TLS) {
		if (!p->refusal_logged)
			FS_WARN("peer %016" PRIx64 " at %s refused us: %s", p->id, p->addr,
				refuse_reason_text(body[0]));
		p->refusal_logged = 1;
		peer_failed(p, t->cfg.backoff_max_ms);
		return;
	}
	if (c->state == CONN_HANDSHAKE && kind == KIND_REFUSE && len >= 17) {
		if (!p->refusal_logged)
			FS_WARN("peer %016" PRIx64 " at %s refused us (cluster %016" PRIx64
				", member %016" PRIx64 "): %s; it is member %016" PRIx64
				" of cluster %016" PRIx64,
				p->id, p->addr, t->cfg.cluster_id, t->cfg.self_id,
				refuse_reason_text(body[0]), get_le64(body + 9), get_le64(body + 1));
		p->refusal_logged = 1;
		uint64_t id = p->id;
		int unknown = body[0] == REFUSE_UNKNOWN && get_le64(body + 1) == t->cfg.cluster_id;
		peer_failed(p, t->cfg.backoff_max_ms);
		if (unknown && t->cb.on_refused_unknown)
			t->cb.on_refused_unknown(t->ud, id);
		return;
	}
	FS_WARN("peer %016" PRIx64 " at %s: unexpected frame kind %d, closing", p->id, p->addr,
		kind);
	peer_failed(p, 0);
}

/* A joining member learns the cluster's id from the first member that accepts it. */
static void transport_adopt_cluster(struct fs_transport *t, uint64_t cluster)
{
	t->cfg.cluster_id = cluster;
	FS_INFO("joined cluster %016" PRIx64, cluster);
	if (t->cb.on_cluster_id)
		t->cb.on_cluster_id(t->ud, cluster);
}

/* ---- inbound connections ------------------------------------------------------------------- */

static void snapin_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len);

/*
 * Logs the refusal of an inbound connection: one line naming who (its address when nothing more
 * is known) and why. The same line from the same host again within REFUSAL_QUIET_MS (a peer
 * redialing) is logged at debug.
 */
static void inbound_log(struct conn *c, const char *who, const char *why)
{
	struct fs_transport *t = c->t;
	char host[FS_ADDR_MAX_LEN], key[sizeof t->refusal];
	if (!split_host(c->addr, host))
		strcpy(host, c->addr);
	snprintf(key, sizeof key, "%s %s %s", host, who ? who : "", why);
	uint64_t now = uv_now(t->loop);
	int quiet = !strcmp(key, t->refusal) && now - t->refusal_ms < REFUSAL_QUIET_MS;
	if (!quiet) {
		strcpy(t->refusal, key);
		t->refusal_ms = now;
	}
	if (who)
		FS_LOG(quiet ? FS_LOG_DEBUG : FS_LOG_WARN, "refused peer connection from %s: %s, "
		       "dialed from %s", who, why, c->addr);
	else
		FS_LOG(quiet ? FS_LOG_DEBUG : FS_LOG_WARN, "refused peer connection from %s: %s",
		       c->addr, why);
}

static void inbound_refuse(struct conn *c, int reason, uint64_t their_cluster, uint64_t their_id)
{
	struct fs_transport *t = c->t;
	char who[64], why[200];
	if (reason == REFUSE_MAGIC || reason == REFUSE_NO_TLS) {
		inbound_log(c, NULL, refuse_reason_text(reason));
	} else if (reason == REFUSE_NEEDS_TLS) {
		inbound_log(c, NULL, "protocol mismatch: plaintext, and this member takes TLS peers "
				     "only");
	} else {
		snprintf(who, sizeof who, "member %016" PRIx64 " of cluster %016" PRIx64, their_id,
			 their_cluster);
		snprintf(why, sizeof why, "%s (this is member %016" PRIx64 " of cluster %016" PRIx64
			 ")", refuse_reason_text(reason), t->cfg.self_id, t->cfg.cluster_id);
		inbound_log(c, who, why);
	}
	uint8_t body[17] = {(uint8_t)reason};
	if (reason != REFUSE_NEEDS_TLS && reason != REFUSE_NO_TLS) { /* nothing about us for a
								       * peer of the other kind */
		put_le64(body + 1, t->cfg.cluster_id);
		put_le64(body + 9, t->cfg.self_id);
	}
	c->refused = 1; /* no more frames are read from it */
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_write_raw(c, frame_new(KIND_REFUSE, body, sizeof body), RAW_CLOSE_AFTER);
}

static void inbound_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len)
{
	struct fs_transport *t = c->t;
	if (c->state == CONN_HANDSHAKE) {
		if ((kind != KIND_HELLO && kind != KIND_SNAPHELLO) || len != HELLO_BYTES ||
		    memcmp(body, HELLO_MAGIC, 8) != 0) {
			inbound_refuse(c, REFUSE_MAGIC, 0, 0);
			return;
		}
		uint64_t cluster = get_le64(body + 8), from = get_le64(body + 16),
			 to = get_le64(body + 24);
		if (cluster != t->cfg.cluster_id && cluster != 0 && t->cfg.cluster_id != 0)
			inbound_refuse(c, REFUSE_CLUSTER, cluster, from);
		else if (to != t->cfg.self_id)
			inbound_refuse(c, REFUSE_TARGET, cluster, from);
		else if (!peer_find(t, from))
			inbound_refuse(c, REFUSE_UNKNOWN, cluster, from);
		else if (kind == KIND_SNAPHELLO && !t->snap_dir_buf[0])
			inbound_refuse(c, REFUSE_NOSNAP, cluster, from);
		else if (kind == KIND_SNAPHELLO && !(c->si = calloc(1, sizeof *c->si)))
			conn_close(c);
		else {
			if (c->si)
				c->si->fd = -1;
			c->remote_id = from;
			c->state = CONN_READY;
			if (t->cfg.cluster_id == 0 && cluster != 0)
				transport_adopt_cluster(t, cluster);
			uint8_t id[8];
			put_le64(id, t->cfg.cluster_id);
			conn_write_raw(c, frame_new(KIND_WELCOME, id, sizeof id), RAW_KEEP);
		}
		return;
	}
	if (c->si) {
		snapin_frame(c, kind, body, len);
		return;
	}
	if (kind != KIND_MSG) {
		FS_WARN("peer %016" PRIx64 ": unexpected frame kind %d on its connection, closing",
			c->remote_id, kind);
		conn_close(c);
		return;
	}
	struct peer *p = peer_find(t, c->remote_id);
	if (!p) { /* removed since the handshake */
		conn_close(c);
		return;
	}
	if (p->blocked)
		return;
	if (t->cb.on_message)
		t->cb.on_message(t->ud, c->remote_id, body, len);
}

static void snapout_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len);

/* Hands every whole frame in c->rbuf to its handler; keeps the rest. */
static void conn_parse(struct conn *c)
{
	struct fs_transport *t = c->t;
	size_t off = 0;
	while (c->state != CONN_CLOSING && !c->refused && c->rlen - off >= FRAME_HEADER) {
		uint32_t len = get_le32(c->rbuf + off);
		if (!c->outbound && c->state == CONN_HANDSHAKE && len != HELLO_BYTES) {
			inbound_refuse(c, REFUSE_MAGIC, 0, 0);
			return;
		}
		if (len > t->cfg.max_frame_bytes) {
			FS_WARN("peer %016" PRIx64 ": frame of %" PRIu32 " bytes exceeds the limit of "
				"%" PRIu32 ", closing", c->outbound && c->peer ? c->peer->id
									    : c->remote_id,
				len, t->cfg.max_frame_bytes);
			if (c->outbound && c->peer)
				peer_failed(c->peer, 0);
			else
				conn_close(c);
			return;
		}
		if (c->rlen - off < FRAME_HEADER + (size_t)len)
			break;
		const uint8_t *frame = c->rbuf + off;
		off += FRAME_HEADER + (size_t)len;
		if (c->so)
			snapout_frame(c, frame[4], frame + FRAME_HEADER, len);
		else if (c->outbound)
			outbound_frame(c, frame[4], frame + FRAME_HEADER, len);
		else
			inbound_frame(c, frame[4], frame + FRAME_HEADER, len);
	}
	if (c->state == CONN_CLOSING)
		return; /* buffers go with the connection */
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
}

/* The connection ends: an outbound one is redialed later, others are closed. */
static void conn_lost(struct conn *c)
{
	if (c->outbound && c->peer)
		peer_failed(c->peer, 0);
	else
		conn_close(c);
}

/*
 * TLS failed on c (handshake refused either way, a bad record, a protocol mismatch): one log line
 * naming the peer and why, the ciphertext still waiting (the alert telling the peer) written, then
 * the connection closed. An outbound peer logs it once until a connection succeeds again.
 */
static void conn_tls_failed(struct conn *c, const char *why)
{
	struct peer *p = c->peer;
	if (c->so) {
		FS_WARN("snapshot to %016" PRIx64 " at %s: TLS: %s", c->so->to, c->addr, why);
	} else if (c->outbound && p) {
		if (!p->refusal_logged)
			FS_WARN("peer %016" PRIx64 " at %s: TLS: %s", p->id, p->addr, why);
		else
			FS_DEBUG("peer %016" PRIx64 " at %s: TLS: %s", p->id, p->addr, why);
		p->refusal_logged = 1;
	} else if (c->outbound) {
		FS_DEBUG("peer at %s: TLS: %s", c->addr, why);
	} else if (c->tls_up && c->state == CONN_READY) {
		FS_WARN("peer %016" PRIx64 " dialed from %s: TLS: %s, closing", c->remote_id, c->addr,
			why);
	} else {
		inbound_log(c, NULL, why);
	}
	/* detached first: the peer redials on a new connection while this one says goodbye */
	if (p && p->conn == c)
		p->conn = NULL;
	c->peer = NULL;
	c->refused = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	tls_flush(c, RAW_CLOSE_AFTER);
	if (p)
		peer_failed(p, c->t->cfg.backoff_max_ms);
}

static void conn_hello(struct conn *c);

/*
 * Ciphertext from the socket: a first byte that cannot open a TLS record is a plaintext peer;
 * then the handshake (the dialer sends its HELLO once it is complete), then the plaintext, which
 * goes into rbuf for conn_parse. Returns 0 when there may be frames to parse, -1 when not (the
 * handshake goes on, or the connection is closing).
 */
static int tls_in(struct conn *c, const uint8_t *data, size_t len)
{
	char why[320];
	if (!c->got_bytes) {
		c->got_bytes = 1;
		/* 22 opens a handshake record; 21 an alert (a server refusing us) */
		if (!c->outbound && data[0] != 22) {
			/* a plaintext member's HELLO: refused in plaintext, which it reads */
			fs_tls_conn_free(c->tls);
			c->tls = NULL;
			inbound_refuse(c, REFUSE_NEEDS_TLS, 0, 0);
			return -1;
		}
		if (c->outbound && data[0] != 22 && data[0] != 21) {
			conn_tls_failed(c, "protocol mismatch: it answered in plaintext, not TLS (a "
					   "member without TLS?)");
			return -1;
		}
	}
	if (fs_tls_conn_feed(c->tls, data, len) != 0) {
		conn_lost(c);
		return -1;
	}
	if (!c->tls_up) {
		int r = fs_tls_conn_handshake(c->tls, why, sizeof why);
		if (r < 0) {
			conn_tls_failed(c, why);
			return -1;
		}
		tls_flush(c, RAW_KEEP);
		if (r == 0 || c->state == CONN_CLOSING)
			return -1;
		c->tls_up = 1;
		if (c->outbound)
			conn_hello(c);
	}
	for (;;) {
		if (rbuf_reserve(c) != 0) {
			conn_lost(c);
			return -1;
		}
		ssize_t n = fs_tls_conn_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen, why,
					     sizeof why);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		/* what came before the bad record or the close is still handled */
		conn_parse(c);
		if (c->state == CONN_CLOSING)
			return -1;
		if (n == -EPIPE)
			conn_lost(c);
		else
			conn_tls_failed(c, why);
		return -1;
	}
	tls_flush(c, RAW_KEEP); /* what reading produced (none in TLS 1.3 without key updates) */
	return c->state == CONN_CLOSING ? -1 : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		if (c->outbound && c->peer)
			FS_DEBUG("peer %016" PRIx64 " at %s: connection lost: %s", c->peer->id,
				 c->peer->addr, uv_strerror((int)nread));
		conn_lost(c);
		return;
	}
	if (nread == 0)
		return;
	if (c->tls) {
		if (tls_in(c, (const uint8_t *)buf->base, (size_t)nread) == 0)
			conn_parse(c);
		return;
	}
	/* 22, 3: a TLS record opening a handshake, from a member that speaks TLS */
	if (!c->got_bytes && c->state == CONN_HANDSHAKE && nread >= 2 && buf->base[0] == 22 &&
	    buf->base[1] == 3) {
		c->got_bytes = 1;
		if (c->outbound) /* a TLS member refusing us would answer in plaintext: rare */
			conn_tls_failed(c, "protocol mismatch: it answered with TLS and this member "
					   "speaks plaintext (no --peer-cert-file)");
		else /* answered in plaintext, which a TLS dialer takes for a protocol mismatch */
			inbound_refuse(c, REFUSE_NO_TLS, 0, 0);
		return;
	}
	c->got_bytes = 1;
	c->rlen += (size_t)nread;
	conn_parse(c);
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;
	struct peer *p = c->peer;
	if (c->state == CONN_CLOSING)
		return;
	if (!p) {
		conn_close(c);
		return;
	}
	if (status < 0) {
		FS_DEBUG("peer %016" PRIx64 " at %s: dial failed: %s", p->id, p->addr,
			 uv_strerror(status));
		peer_failed(p, 0);
		return;
	}
	c->state = CONN_HANDSHAKE;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		peer_failed(p, 0);
		return;
	}
	conn_open(c);
}

/* Sends the HELLO (or SNAPHELLO) that opens a dialed connection, once TLS is up if it is used. */
static void conn_hello(struct conn *c)
{
	struct fs_transport *t = c->t;
	uint8_t hello[HELLO_BYTES];
	memcpy(hello, HELLO_MAGIC, 8);
	put_le64(hello + 8, t->cfg.cluster_id);
	put_le64(hello + 16, t->cfg.self_id);
	put_le64(hello + 24, c->so ? c->so->to : c->peer ? c->peer->id : 0);
	conn_write_raw(c, frame_new(c->so ? KIND_SNAPHELLO : KIND_HELLO, hello, sizeof hello),
		       RAW_KEEP);
}

/* A connection is up: with TLS its session starts (the dialer's ClientHello), else the HELLO. */
static void conn_open(struct conn *c)
{
	struct fs_transport *t = c->t;
	if (!t->tls) {
		if (c->outbound)
			conn_hello(c);
		return;
	}
	char host[FS_ADDR_MAX_LEN];
	if (!split_host(c->addr, host))
		host[0] = '\0';
	c->tls = fs_tls_conn_new(t->tls, c->outbound, c->outbound ? host : NULL);
	if (!c->tls) {
		conn_lost(c);
		return;
	}
	if (c->outbound) {
		char why[320];
		if (fs_tls_conn_handshake(c->tls, why, sizeof why) < 0)
			conn_tls_failed(c, why);
		else
			tls_flush(c, RAW_KEEP);
	}
}

static void peer_dial(struct peer *p)
{
	struct fs_transport *t = p->t;
	if (t->closing || p->removed || p->conn)
		return;
	struct conn *c = conn_new(t, 1);
	if (!c) {
		peer_failed(p, 0);
		return;
	}
	c->peer = p;
	p->conn = c;
	strcpy(c->addr, p->addr);
	int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->sa, on_connected);
	if (rc != 0) {
		FS_WARN("peer %016" PRIx64 " at %s: cannot dial: %s", p->id, p->addr, uv_strerror(rc));
		peer_failed(p, 0);
	}
}

/* ---- snapshot streams ------------------------------------------------------------------------ */

const char *fs_snap_reason_text(int reason)
{
	switch (reason) {
	case FS_SNAP_IO:
		return "the receiver could not store it";
	case FS_SNAP_NOT_MEMBER:
		return "its membership does not include the receiver";
	case FS_SNAP_STALE_TERM:
		return "the receiver knows a newer term";
	case FS_SNAP_BAD:
		return "its raft message does not decode";
	case FS_SNAP_STREAM:
		return "the stream broke";
	default:
		return "no reason given";
	}
}

static void snapout_finish(struct conn *c, int ok, int reason)
{
	struct snap_out *so = c->so;
	struct fs_transport *t = c->t;
	if (!so || so->done)
		return;
	so->done = 1;
	if (ok)
		FS_INFO("snapshot to %016" PRIx64 ": sent %zu bytes", so->to, so->len);
	else if (reason == FS_SNAP_STREAM)
		FS_WARN("snapshot to %016" PRIx64 ": failed after %zu of %zu bytes", so->to,
			so->off < so->len ? so->off : so->len, so->len);
	else
		FS_WARN("snapshot to %016" PRIx64 ": %zu bytes refused by the receiver: %s", so->to,
			so->len, fs_snap_reason_text(reason));
	if (t->cb.on_snapshot_sent)
		t->cb.on_snapshot_sent(t->ud, so->to, ok, reason);
	if (so->release)
		so->release(so->arg);
}

/* Writes the next chunk, or the end frame after the last one; one write in flight at a time. */
static void snapout_pump(struct conn *c)
{
	struct snap_out *so = c->so;
	struct frame *f;
	if (so->off < so->len) {
		size_t n = so->len - so->off < SNAP_CHUNK ? so->len - so->off : SNAP_CHUNK;
		f = frame_new(KIND_SNAPCHUNK, so->data + so->off, n);
		so->crc = wal_crc32c(so->crc, so->data + so->off, n);
		so->off += n;
		conn_write_raw(c, f, RAW_PUMP);
	} else if (so->off == so->len) {
		uint8_t end[12];
		put_le64(end, so->len);
		put_le32(end + 8, so->crc);
		so->off++; /* past the end: the end frame is written, the answer awaited */
		conn_write_raw(c, frame_new(KIND_SNAPEND, end, sizeof end), RAW_KEEP);
	}
}

static void snapout_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len)
{
	struct snap_out *so = c->so;
	if (c->state == CONN_HANDSHAKE && kind == KIND_WELCOME) {
		c->state = CONN_READY;
		conn_write_raw(c, frame_new(KIND_SNAPHEAD, so->msg, so->msglen), RAW_KEEP);
		snapout_pump(c);
		return;
	}
	if (c->state == CONN_HANDSHAKE && kind == KIND_REFUSE && len >= 17)
		FS_WARN("snapshot to %016" PRIx64 ": refused: %s", so->to,
			refuse_reason_text(body[0]));
	else if (c->state == CONN_READY && kind == KIND_SNAPACK && len >= 1)
		snapout_finish(c, body[0] == 1, len >= 2 ? body[1] : FS_SNAP_NO_REASON);
	else
		FS_WARN("snapshot to %016" PRIx64 ": unexpected frame kind %d", so->to, kind);
	conn_close(c); /* reports failure unless finished above */
}

static void on_snap_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(c);
		return;
	}
	c->state = CONN_HANDSHAKE;
	conn_open(c);
}

static void snapin_discard(struct snap_in *si)
{
	if (si->fd >= 0)
		close(si->fd);
	si->fd = -1;
	if (si->path[0])
		unlink(si->path);
	si->path[0] = '\0';
}

/* Answers the sender and closes once the answer is out; reads nothing more. */
static void snapin_answer(struct conn *c, int ok, int reason)
{
	uint8_t b[2] = {(uint8_t)(ok ? 1 : 0), (uint8_t)(ok ? 0 : reason)};
	c->refused = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_write_raw(c, frame_new(KIND_SNAPACK, b, sizeof b), RAW_CLOSE_AFTER);
}

static void snapin_frame(struct conn *c, int kind, const uint8_t *body, uint32_t len)
{
	struct snap_in *si = c->si;
	struct fs_transport *t = c->t;
	uint64_t from = c->remote_id;
	if (kind == KIND_SNAPHEAD && !si->msg) {
		si->msg = malloc(len ? len : 1);
		if (!si->msg) {
			snapin_answer(c, 0, FS_SNAP_IO);
			return;
		}
		memcpy(si->msg, body, len);
		si->msglen = len;
		snprintf(si->path, sizeof si->path, "%s/.incoming-%016" PRIx64 "-XXXXXX",
			 t->snap_dir_buf, from);
		si->fd = mkstemp(si->path);
		if (si->fd < 0) {
			FS_WARN("snapshot from %016" PRIx64 ": cannot create %s: %s", from, si->path,
				strerror(errno));
			si->path[0] = '\0';
			snapin_answer(c, 0, FS_SNAP_IO);
		}
		return;
	}
	if (kind == KIND_SNAPCHUNK && si->fd >= 0) {
		size_t done = 0;
		while (done < len) {
			ssize_t w = write(si->fd, body + done, len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				FS_WARN("snapshot from %016" PRIx64 ": writing %s at offset %" PRIu64
					": %s", from, si->path, si->got + done, strerror(errno));
				snapin_discard(si);
				snapin_answer(c, 0, FS_SNAP_IO);
				return;
			}
			done += (size_t)w;
		}
		si->crc = wal_crc32c(si->crc, body, len);
		si->got += len;
		return;
	}
	if (kind == KIND_SNAPEND && len == 12 && si->fd >= 0) {
		uint64_t total = get_le64(body);
		uint32_t crc = get_le32(body + 8);
		if (total != si->got || crc != si->crc) {
			FS_WARN("snapshot from %016" PRIx64 ": %s holds %" PRIu64 " bytes with crc "
				"%08" PRIx32 ", the sender says %" PRIu64 " with crc %08" PRIx32
				"; discarded", from, si->path, si->got, si->crc, total, crc);
			snapin_discard(si);
			snapin_answer(c, 0, FS_SNAP_IO);
			return;
		}
		if (fdatasync(si->fd) != 0) {
			FS_WARN("snapshot from %016" PRIx64 ": fdatasync %s: %s", from, si->path,
				strerror(errno));
			snapin_discard(si);
			snapin_answer(c, 0, FS_SNAP_IO);
			return;
		}
		close(si->fd);
		si->fd = -1;
		char path[sizeof si->path];
		strcpy(path, si->path);
		si->path[0] = '\0'; /* the callee owns the file now */
		int rc = -ENOSYS;
		struct fs_snap_verdict v = {FS_SNAP_IO, ""};
		if (t->cb.on_snapshot)
			rc = t->cb.on_snapshot(t->ud, from, si->msg, si->msglen, path, &v);
		else
			unlink(path);
		if (rc == 0)
			FS_INFO("snapshot from %016" PRIx64 ": received %" PRIu64 " bytes, accepted",
				from, si->got);
		else
			FS_WARN("snapshot from %016" PRIx64 ": received %" PRIu64 " bytes, refused: %s",
				from, si->got, v.why[0] ? v.why : fs_snap_reason_text(v.reason));
		snapin_answer(c, rc == 0, v.reason);
		return;
	}
	FS_WARN("snapshot from %016" PRIx64 ": unexpected frame kind %d, discarded", from, kind);
	snapin_discard(si);
	conn_close(c);
}

/* ---- listener -------------------------------------------------------------------------------- */

static void on_accept(uv_stream_t *server, int status)
{
	struct fs_transport *t = server->data;
	if (status < 0 || t->closing)
		return;
	struct conn *c = conn_new(t, 0);
	if (!c)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	struct sockaddr_storage sa = {.ss_family = AF_INET};
	int salen = sizeof sa;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
		if (sa.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof host);
			port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof host);
			port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		}
	}
	snprintf(c->addr, sizeof c->addr, sa.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
		 port);
	conn_open(c);
	if (c->state != CONN_CLOSING &&
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		conn_close(c);
}

/* ---- API ------------------------------------------------------------------------------------- */

static void transport_maybe_done(struct fs_transport *t)
{
	if (t->open_handles > 0)
		return;
	void (*done)(void *) = t->done;
	void *arg = t->done_arg;
	fs_tls_free(t->tls);
	free(t);
	if (done)
		done(arg);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct fs_transport *t = h->data;
	t->open_handles--;
	transport_maybe_done(t);
}


int fs_transport_start(struct fs_transport **out, uv_loop_t *loop,
		       const struct fs_transport_config *cfg, const struct fs_transport_callbacks *cb,
		       void *ud)
{
	struct sockaddr_storage sa;
	if (!cfg->listen_addr || strlen(cfg->listen_addr) >= FS_ADDR_MAX_LEN ||
	    resolve(cfg->listen_addr, &sa) != 0)
		return -EINVAL;
	/*
	 * A write to a peer that reset its connection (it crashed, restarted) must fail with EPIPE
	 * and be retried on a new connection, not kill the member: SIGPIPE is ignored process-wide,
	 * as network daemons do, unless the application installed a handler of its own. (It killed
	 * the member test once, the peer restarted mid-write.)
	 */
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	struct fs_transport *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->cfg = *cfg;
	strcpy(t->listen_addr_buf, cfg->listen_addr);
	t->cfg.listen_addr = t->listen_addr_buf;
	if (cfg->snap_dir && strlen(cfg->snap_dir) < sizeof t->snap_dir_buf)
		strcpy(t->snap_dir_buf, cfg->snap_dir);
	t->cfg.snap_dir = t->snap_dir_buf;
	if (!t->cfg.max_queue_bytes)
		t->cfg.max_queue_bytes = 64u << 20;
	if (!t->cfg.max_queue_frames)
		t->cfg.max_queue_frames = 4096;
	if (!t->cfg.max_frame_bytes)
		t->cfg.max_frame_bytes = 256u << 20;
	if (!t->cfg.backoff_min_ms)
		t->cfg.backoff_min_ms = 25;
	if (!t->cfg.backoff_max_ms)
		t->cfg.backoff_max_ms = 1000;
	t->cb = *cb;
	t->ud = ud;
	t->cfg.tls = NULL; /* not kept: t->tls holds what it says */
	if (cfg->tls) {
		char why[512], host[FS_ADDR_MAX_LEN];
		struct fs_transport_tls tls = *cfg->tls;
		if (!tls.auto_host && split_host(cfg->listen_addr, host))
			tls.auto_host = host;
		int rc = fs_tls_new(&t->tls, &tls, why, sizeof why);
		if (rc != 0) {
			FS_ERROR("peer TLS: %s", why);
			free(t);
			return -EKEYREJECTED;
		}
		FS_INFO("peer traffic: %s", fs_tls_mode(t->tls));
		if (cfg->tls->auto_dir && !(cfg->tls->cert_file && cfg->tls->cert_file[0]))
			FS_WARN("peer TLS with a self-signed certificate (--peer-auto-tls, in %s): "
				"peer traffic is encrypted but members are not authenticated",
				cfg->tls->auto_dir);
	}
	int rc = uv_tcp_init(loop, &t->listener);
	if (rc != 0) {
		fs_tls_free(t->tls);
		free(t);
		return rc;
	}
	t->listener.data = t;
	rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&t->listener, 128, on_accept);
	if (rc != 0) {
		/* The handle must close before t is freed: that happens on the caller's loop. */
		t->closing = 1;
		t->open_handles = 1;
		uv_close((uv_handle_t *)&t->listener, on_listener_closed);
		return rc;
	}
	*out = t;
	return 0;
}

int fs_transport_port(const struct fs_transport *t)
{
	struct sockaddr_storage sa;
	int len = sizeof sa;
	if (uv_tcp_getsockname(&t->listener, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

int fs_transport_add_peer(struct fs_transport *t, uint64_t id, const char *addr)
{
	struct sockaddr_storage sa;
	if (strlen(addr) >= FS_ADDR_MAX_LEN || resolve(addr, &sa) != 0)
		return -EINVAL;
	struct peer *p = peer_find(t, id);
	if (p) {
		strcpy(p->addr, addr);
		p->sa = sa;
		if (p->conn)
			peer_failed(p, 1); /* redial the new address */
		return 0;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->id = id;
	strcpy(p->addr, addr);
	p->sa = sa;
	p->t = t;
	p->backoff_ms = t->cfg.backoff_min_ms;
	uv_timer_init(t->loop, &p->redial);
	p->redial.data = p;
	p->next = t->peers;
	t->peers = p;
	peer_dial(p);
	return 0;
}

static void on_peer_timer_closed(uv_handle_t *h)
{
	struct peer *p = h->data;
	struct fs_transport *t = p->t;
	struct peer **pp = &t->peers;
	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
	free(p);
	if (t->closing) {
		t->open_handles--;
		transport_maybe_done(t);
	}
}

int fs_transport_remove_peer(struct fs_transport *t, uint64_t id)
{
	struct peer *p = peer_find(t, id);
	if (!p)
		return -ENOENT;
	p->removed = 1;
	if (p->conn)
		conn_close(p->conn);
	peer_drop_queue(p);
	for (struct conn *c = t->conns; c; c = c->next)
		if (!c->outbound && c->remote_id == id)
			conn_close(c);
	uv_close((uv_handle_t *)&p->redial, on_peer_timer_closed);
	return 0;
}

int fs_transport_send(struct fs_transport *t, uint64_t to, const void *buf, size_t len)
{
	struct peer *p = peer_find(t, to);
	if (!p)
		return -ENOENT;
	if (p->blocked)
		return 0; /* the fault hook's partition: lost on the wire */
	if (len > t->cfg.max_frame_bytes || p->q_frames + 1 > t->cfg.max_queue_frames ||
	    p->q_bytes + len + FRAME_HEADER > t->cfg.max_queue_bytes) {
		FS_DEBUG("peer %016" PRIx64 " at %s: outbound queue full (%zu frames, %zu bytes), "
			 "dropping a message", p->id, p->addr, p->q_frames, p->q_bytes);
		if (t->cb.on_unreachable)
			t->cb.on_unreachable(t->ud, to);
		return -ENOBUFS;
	}
	struct frame *f = frame_new(KIND_MSG, buf, len);
	if (!f)
		return -ENOMEM;
	if (p->tail)
		p->tail->next = f;
	else
		p->head = f;
	p->tail = f;
	p->q_frames++;
	p->q_bytes += f->len;
	if (!p->conn && !uv_is_active((uv_handle_t *)&p->redial))
		peer_dial(p);
	peer_flush(p);
	return 0;
}

int fs_transport_send_snapshot(struct fs_transport *t, uint64_t to, const void *msg, size_t msglen,
			       const void *data, size_t len, void (*release)(void *arg), void *arg)
{
	struct peer *p = peer_find(t, to);
	if (!p)
		return -ENOENT;
	if (p->blocked)
		return -EHOSTUNREACH;
	struct snap_out *so = calloc(1, sizeof *so);
	uint8_t *m = malloc(msglen ? msglen : 1);
	struct conn *c = so && m ? conn_new(t, 1) : NULL;
	if (!c) {
		free(so);
		free(m);
		return -ENOMEM;
	}
	memcpy(m, msg, msglen);
	*so = (struct snap_out){.to = to, .msg = m, .msglen = msglen, .data = data, .len = len,
				.release = release, .arg = arg};
	c->so = so;
	strcpy(c->addr, p->addr);
	int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->sa,
				on_snap_connected);
	if (rc != 0) {
		so->done = 1; /* the caller hears the error, not the callbacks */
		conn_close(c);
		return rc;
	}
	return 0;
}

int fs_transport_reload_tls(struct fs_transport *t)
{
	if (!t->tls)
		return -ENOTSUP;
	char why[512];
	int rc = fs_tls_reload(t->tls, why, sizeof why);
	if (rc != 0)
		FS_ERROR("peer TLS: reload refused, the previous certificates stay: %s", why);
	else
		FS_INFO("peer TLS: certificates and keys re-read; new connections use them");
	return rc;
}

const char *fs_transport_security(const struct fs_transport *t)
{
	return t->tls ? fs_tls_mode(t->tls) : "plaintext";
}

int fs_transport_peer_subject(const struct fs_transport *t, uint64_t id, char *buf, size_t cap)
{
	if (!t->tls)
		return -ENOTSUP;
	const struct peer *p = peer_find(t, id);
	const struct conn *c = p && p->conn && p->conn->tls_up ? p->conn : NULL;
	for (const struct conn *i = t->conns; !c && i; i = i->next)
		if (!i->outbound && i->tls_up && i->state == CONN_READY && i->remote_id == id)
			c = i;
	if (!c)
		return -ENOTCONN;
	fs_tls_conn_subject(c->tls, buf, cap);
	return 0;
}

int fs_transport_connected(const struct fs_transport *t, uint64_t to)
{
	const struct peer *p = peer_find(t, to);
	return p && p->conn && p->conn->state == CONN_READY;
}

void fs_transport_block(struct fs_transport *t, uint64_t peer, int blocked)
{
	struct peer *p = peer_find(t, peer);
	if (p) {
		p->blocked = blocked;
		if (blocked)
			peer_drop_queue(p);
	}
}

void fs_transport_close(struct fs_transport *t, void (*done)(void *arg), void *arg)
{
	t->closing = 1;
	t->done = done;
	t->done_arg = arg;
	t->open_handles = 1; /* the listener */
	for (struct conn *c = t->conns; c; c = c->next) {
		if (c->state != CONN_CLOSING) {
			t->open_handles++;
			conn_close(c);
		} else {
			t->open_handles++; /* its close callback is still to come */
		}
	}
	for (struct peer *p = t->peers; p; p = p->next) {
		peer_drop_queue(p);
		if (!p->removed) {
			p->removed = 1;
			t->open_handles++;
			uv_close((uv_handle_t *)&p->redial, on_peer_timer_closed);
		} else {
			t->open_handles++; /* closing already */
		}
	}
	uv_close((uv_handle_t *)&t->listener, on_listener_closed);
}
