/*
 * member/tls.h: TLS 1.3 for the peer transport, private to member/transport.c.
 *
 * OpenSSL's libssl driven through memory BIOs: the transport moves ciphertext between the socket
 * (libuv reads and writes) and a connection's BIOs, and plaintext frames in and out of the
 * connection; nothing here touches a socket or blocks. A context holds the flags (certificate,
 * key, trusted CA, client certificate authentication, allowed CN, automatic certificate) and the
 * SSL_CTX made from them; a connection takes the context's current SSL_CTX when it is made, so a
 * reload (SIGHUP) serves new connections and leaves the open ones as they are.
 */
#ifndef RAFTFS_FS_MEMBER_TLS_H
#define RAFTFS_FS_MEMBER_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "member/transport.h"

struct fs_tls;
struct fs_tls_conn;

/*
 * Builds a context from cfg (copied). With cfg->auto_dir and no cert_file, makes a self-signed
 * certificate and key in auto_dir at first use and reuses them after. On success *out is owned
 * by the caller until fs_tls_free. On failure returns -EINVAL (bad or unreadable files, a key
 * readable by group or others, a key that does not match its certificate), -ENOMEM or -EIO, with
 * a one-line reason in why[0..cap).
 */
int fs_tls_new(struct fs_tls **out, const struct fs_transport_tls *cfg, char *why, size_t cap);

/*
 * Re-reads the certificate, key and CA files. On success new connections use them; on failure
 * the old ones stay and why says what is wrong. Returns 0 or as fs_tls_new.
 */
int fs_tls_reload(struct fs_tls *t, char *why, size_t cap);

/* What peer traffic is, for status and logs (a static string). */
const char *fs_tls_mode(const struct fs_tls *t);

/* Frees t; its connections keep what they took from it and must still be freed each. */
void fs_tls_free(struct fs_tls *t);

/*
 * A connection: the dialing side (client = 1) checks the peer's certificate against host (an IP
 * or a name, may be NULL) when a CA is trusted. Owned by the caller until fs_tls_conn_free.
 * NULL on allocation failure.
 */
struct fs_tls_conn *fs_tls_conn_new(struct fs_tls *t, int client, const char *host);
void fs_tls_conn_free(struct fs_tls_conn *c);

/* Hands ciphertext read from the socket to the connection; -ENOMEM. */
int fs_tls_conn_feed(struct fs_tls_conn *c, const void *buf, size_t len);

/*
 * Advances the handshake: 1 once it is complete, 0 while it needs more bytes from the peer,
 * -EPROTO when it failed, with the reason in why (no certificate, unknown CA, CN not allowed,
 * expired, protocol mismatch, or OpenSSL's words). Queue what fs_tls_conn_take returns either way.
 */
int fs_tls_conn_handshake(struct fs_tls_conn *c, char *why, size_t cap);

/*
 * Decrypts what was fed into buf[0..cap): the byte count, 0 when nothing more is there yet,
 * -EPIPE when the peer closed the TLS session, -EPROTO with why filled on bad records.
 */
ssize_t fs_tls_conn_read(struct fs_tls_conn *c, void *buf, size_t cap, char *why, size_t whycap);

/* Encrypts buf[0..len) whole (after the handshake): 0, or -EPROTO/-ENOMEM. */
int fs_tls_conn_write(struct fs_tls_conn *c, const void *buf, size_t len);

/*
 * The ciphertext waiting for the socket, in order: a malloc'd buffer the caller owns, its length
 * in *len; NULL with *len = 0 when there is none (or with *len != 0 when out of memory).
 */
uint8_t *fs_tls_conn_take(struct fs_tls_conn *c, size_t *len);

/* The subject of the peer's certificate ("CN=n2,O=..."), or "" when it showed none. */
void fs_tls_conn_subject(const struct fs_tls_conn *c, char *buf, size_t cap);

#endif
