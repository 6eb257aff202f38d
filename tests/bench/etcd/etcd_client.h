/*
 * etcd_client.h: a small C client for etcd's v3 HTTP/JSON gateway (grpc-gateway, etcd 3.4), used
 * by raftfs's benchmarks to measure a real etcd cluster in the same run as raftfs (etcd-bench, and
 * fs-bench through `etcd_client_dep`). It speaks HTTP/1.1 over one persistent keep-alive TCP
 * connection per etcdc_conn (TCP_NODELAY), base64-encodes keys and values as the gateway wants,
 * checks every HTTP status and maps gateway errors ({"error","message","code"}) to negative errno
 * values. It covers what the benchmarks need: put, range (serializable or linearizable) and a
 * streaming watch (chunked transfer encoding, one JSON message per watch response).
 *
 * Dependencies: libc and nothing else (no threads are created; link with pthreads only because
 * callers use one connection per thread). Nothing is global: a connection or watch must be used by
 * one thread at a time, and different ones may be used from different threads freely.
 *
 * Conventions: every function is prefixed etcdc_; functions returning int give 0 (or a count) on
 * success and a negative errno on failure:
 *   -EINVAL bad argument or endpoint, -ECONNREFUSED/-ECONNRESET/-EPIPE transport, -ETIMEDOUT no
 *   answer within the connection's timeout, -EPROTO a malformed HTTP or JSON reply, -ENOENT key
 *   not found, -ENOMEM; gateway errors by gRPC code: InvalidArgument -EINVAL, DeadlineExceeded
 *   -ETIMEDOUT, NotFound -ENOENT, ResourceExhausted -ENOSPC, Unavailable -EAGAIN, OutOfRange
 *   -ERANGE, Canceled -ECANCELED, others -EIO; etcdc_errmsg() then holds etcd's message.
 * Ownership: the caller owns what it passes in and every buffer it hands over to be filled; an
 * etcdc_conn / etcdc_watch is owned by its creator and freed by etcdc_close / etcdc_watch_close;
 * strings and event fields returned by pointer belong to the connection or watch and stay valid
 * until its next call.
 *
 * The pure parts (base64, JSON field extraction, HTTP response head and chunked framing) are
 * declared at the end; they do no I/O and are unit-tested by tests/bench/etcd/test_etcd_client.c.
 */
#ifndef RAFTFS_ETCD_CLIENT_H
#define RAFTFS_ETCD_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- connections, put, range ---------------------------------------------------------------- */

/* One keep-alive HTTP/1.1 connection to one member. Opaque. */
struct etcdc_conn;

/*
 * Connects to ENDPOINT ("http://127.0.0.1:2379", or "127.0.0.1:2379"; IPv4 literal addresses only)
 * and stores a new connection in *out. TIMEOUT_MS bounds every later request (0: 10 s). The
 * connection is re-established transparently when the server closed it between requests.
 */
int etcdc_connect(const char *endpoint, int timeout_ms, struct etcdc_conn **out);

/* Closes and frees C (NULL is allowed). */
void etcdc_close(struct etcdc_conn *c);

/* The last error's message (etcd's own message for gateway errors); "" when none. Owned by C. */
const char *etcdc_errmsg(const struct etcdc_conn *c);

/* Puts KEY = VAL. On success stores the revision of the put in *revision when not NULL. */
int etcdc_put(struct etcdc_conn *c, const void *key, size_t klen, const void *val, size_t vlen,
	      int64_t *revision);

/* Flags of etcdc_get. */
#define ETCDC_SERIALIZABLE 1 /* served from the member's local store, no ReadIndex round */

/*
 * Reads KEY (one key, no range). Copies at most CAP bytes of the value into BUF (the caller's) and
 * stores the value's full length in *vlen, so *vlen > CAP says it was cut short. *mod_revision
 * gets the key's mod revision when not NULL. -ENOENT when the key does not exist.
 */
int etcdc_get(struct etcdc_conn *c, const void *key, size_t klen, int flags, void *buf, size_t cap,
	      size_t *vlen, int64_t *mod_revision);

/* The member's id, its leader's id (0: none known) and the raft term, from /v3/maintenance/status.
 * Any pointer may be NULL. */
int etcdc_status(struct etcdc_conn *c, uint64_t *member_id, uint64_t *leader_id,
		 int64_t *raft_term);

/* ---- watch -------------------------------------------------------------------------------- */

/* A watch stream: its own connection, receiving one chunked reply forever. Opaque. */
struct etcdc_watch;

#define ETCDC_WATCH_PREFIX 1 /* watch every key starting with KEY, not KEY alone */

enum etcdc_event_type { ETCDC_EVENT_PUT = 0, ETCDC_EVENT_DELETE = 1 };

/* One event. key and value point into the watch's buffers: valid until the next call on it. */
struct etcdc_event {
	enum etcdc_event_type type;
	const unsigned char *key;
	size_t klen;
	const unsigned char *value; /* empty for deletes */
	size_t vlen;
	int64_t create_revision, mod_revision, version;
	int64_t header_revision;    /* the store revision of the watch response carrying it */
};

/*
 * Opens a watch on ENDPOINT for KEY (FLAGS: ETCDC_WATCH_PREFIX) from START_REVISION (0: from now)
 * and returns once etcd confirmed it was created, so every later change is seen. TIMEOUT_MS (0:
 * 10 s) bounds the open.
 */
int etcdc_watch_open(const char *endpoint, const void *key, size_t klen, int flags,
		     int64_t start_revision, int timeout_ms, struct etcdc_watch **out);

/*
 * Waits up to TIMEOUT_MS (-1: forever, 0: only what has arrived) for the next event and fills *ev.
 * Returns 1 with an event, -ETIMEDOUT when none came in time, -ECANCELED when etcd canceled the
 * watch (e.g. its revision was compacted), another negative errno on a broken stream.
 */
int etcdc_watch_next(struct etcdc_watch *w, int timeout_ms, struct etcdc_event *ev);

/* The watch's socket, readable when data arrived (events may also be buffered already). */
int etcdc_watch_fd(const struct etcdc_watch *w);

/* The last error's message; "" when none. Owned by W. */
const char *etcdc_watch_errmsg(const struct etcdc_watch *w);

/* Closes and frees W (NULL is allowed). */
void etcdc_watch_close(struct etcdc_watch *w);

/* ---- pure helpers: no I/O, exposed for the unit test ------------------------------------------ */

/* Characters etcdc_base64_encode writes for N bytes, without the terminating NUL. */
#define ETCDC_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Standard base64 (RFC 4648, with padding) of IN into OUT (ETCDC_BASE64_LEN(N) + 1 bytes, NUL
 * terminated). Returns the length written without the NUL. */
size_t etcdc_base64_encode(const void *in, size_t n, char *out);

/* Decodes standard base64 (padding optional) into OUT, which must hold N / 4 * 3 + 3 bytes.
 * Returns the decoded length, or -EINVAL on a character outside the alphabet or a bad length. */
ssize_t etcdc_base64_decode(const char *in, size_t n, void *out);

/*
 * Finds the value at PATH in the JSON text JSON[0..LEN): PATH is dot-separated object member names
 * and array indexes ("header.revision", "kvs.0.value", "result.events.2.kv.key"; "" is the whole
 * text). Stores the raw value's span (a string keeps its quotes) in *val / *vlen. Returns 0, -ENOENT
 * when a member or index does not exist (or a component meets a non-container), -EPROTO on
 * malformed JSON. Member names are compared byte for byte, escapes in them are not decoded.
 */
int etcdc_json_find(const char *json, size_t len, const char *path, const char **val,
		    size_t *vlen);

/* The string at PATH, unescaped (\uXXXX as UTF-8) into OUT[0..CAP) and NUL terminated; *outlen
 * (when not NULL) gets its length. -ENOENT, -EPROTO (not a string), -ENOBUFS when too long. */
int etcdc_json_string(const char *json, size_t len, const char *path, char *out, size_t cap,
		      size_t *outlen);

/* The integer at PATH, bare (5) or quoted as proto3 JSON writes int64 ("5"). -ENOENT, -EPROTO. */
int etcdc_json_int(const char *json, size_t len, const char *path, int64_t *v);

/* The unsigned integer at PATH, bare or quoted (member ids use all 64 bits). -ENOENT, -EPROTO. */
int etcdc_json_uint(const char *json, size_t len, const char *path, uint64_t *v);

/* The boolean at PATH into *v (0/1). -ENOENT, -EPROTO when not true/false. */
int etcdc_json_bool(const char *json, size_t len, const char *path, int *v);

/* Length of the first complete JSON value in BUF[0..LEN) counted from BUF, leading whitespace
 * included; 0 when it is incomplete (more bytes needed); -EPROTO when it cannot be JSON. */
ssize_t etcdc_json_value_end(const char *buf, size_t len);

/* What an HTTP/1.x response head says about its body. */
struct etcdc_http_head {
	int status;             /* e.g. 200 */
	int chunked;            /* Transfer-Encoding: chunked */
	int close;              /* Connection: close, or HTTP/1.0 without keep-alive */
	int64_t content_length; /* -1 when absent */
};

/*
 * Parses the response head at the start of BUF[0..LEN). Returns the head's length including its
 * closing empty line, 0 when incomplete (no empty line yet), -EPROTO when malformed.
 */
ssize_t etcdc_http_parse_head(const char *buf, size_t len, struct etcdc_http_head *h);

/* State of an incremental chunked-body decoder. Zero it (or call etcdc_chunked_init) to start. */
struct etcdc_chunked {
	int state;     /* internal */
	uint64_t left; /* bytes left in the current chunk, or the size being parsed */
	int done;      /* the last chunk and the trailers were consumed */
};

void etcdc_chunked_init(struct etcdc_chunked *st);

/*
 * Decodes the chunked bytes BUF[0..LEN) in place: the payload is moved to the front of BUF.
 * Returns the number of payload bytes now at BUF[0..), having consumed all LEN input bytes unless
 * the body ended (st->done), in which case *consumed (always set) tells where the next response
 * starts. -EPROTO on a framing error. Any split of the input across calls gives the same payload.
 */
ssize_t etcdc_chunked_decode(struct etcdc_chunked *st, char *buf, size_t len, size_t *consumed);

#endif
