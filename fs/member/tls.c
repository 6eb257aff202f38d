/*
 * tls.c: TLS 1.3 for the peer transport with OpenSSL's libssl on memory BIOs (see member/tls.h).
 *
 * One SSL_CTX serves both roles; each connection is an SSL with two memory BIOs, one the socket's
 * bytes go into, one the bytes for the socket come out of, so nothing here waits on the network.
 * Session tickets are off (a member dials the same few peers; there is nothing to resume), and
 * only TLS 1.3 is offered or accepted. Handshake failures are turned into one short reason, as
 * the logs of both sides say it: what the certificate lacks on the side that checked it, what
 * the peer's alert said on the other.
 */
#include "member/tls.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_PATH_MAX 4096
#define AUTO_CERT_DAYS 365 /* as etcd's self-signed peer certificates */

struct fs_tls {
	char cert[TLS_PATH_MAX], key[TLS_PATH_MAX], ca[TLS_PATH_MAX]; /* files; "" when absent */
	char allowed_cn[256];   /* "" for any */
	int client_cert_auth;   /* the acceptor requires and verifies client certificates */
	int automatic;          /* the self-signed pair: nobody is verified */
	SSL_CTX *ctx;           /* the current one; each SSL holds a reference to its own */
};

struct fs_tls_conn {
	SSL *ssl;
	BIO *in, *out;          /* socket -> SSL, SSL -> socket; owned by ssl */
	int client;
	char allowed_cn[256];   /* copied: the context may be reloaded meanwhile */
	char refused_cn[256];   /* the CN the verify callback refused, "" if none */
};

static int conn_index = -1; /* SSL ex_data slot of the fs_tls_conn */

/* OpenSSL's first queued error as text (and the queue cleared). */
static const char *ssl_error_text(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();
	ERR_clear_error();
	if (!e)
		return "no further detail";
	ERR_error_string_n(e, buf, cap);
	const char *r = ERR_reason_error_string(e);
	return r ? r : buf;
}

/* The mode bits of path: group or others may read it. */
static int check_key_mode(const char *path, char *why, size_t cap)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(why, cap, "peer key file %s: %s", path, strerror(errno));
		return -EINVAL;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		snprintf(why, cap, "peer key file %s is readable by group or others (mode %04o): "
			 "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		return -EINVAL;
	}
	return 0;
}

/* ---- the automatic certificate ----------------------------------------------------------- */

/* Writes a new self-signed pair for host, named cn, to cert and key (mode 0600). */
static int auto_make(const char *cert, const char *key, const char *host, const char *cn,
		     char *why, size_t cap)
{
	char ebuf[256];
	int rc = -EIO;
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *kf = NULL, *cf = NULL;
	if (!pk || !x)
		goto out;
	X509_set_version(x, 2);
	uint64_t serial;
	if (RAND_bytes((unsigned char *)&serial, sizeof serial) != 1)
		goto out;
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)AUTO_CERT_DAYS * 86400);
	X509_set_pubkey(x, pk);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"raftfs", -1, -1,
				   0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	char san[300];
	struct in6_addr probe;
	int is_ip = inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1;
	snprintf(san, sizeof san, "%s:%s", is_ip ? "IP" : "DNS", host);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext || !X509_add_ext(x, ext, -1)) {
		X509_EXTENSION_free(ext);
		goto out;
	}
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, pk, EVP_sha256()))
		goto out;
	int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(kf = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		snprintf(why, cap, "cannot write %s: %s", key, strerror(errno));
		rc = -EINVAL;
		goto out_said;
	}
	cf = fopen(cert, "w");
	if (!cf) {
		snprintf(why, cap, "cannot write %s: %s", cert, strerror(errno));
		rc = -EINVAL;
		goto out_said;
	}
	if (!PEM_write_PrivateKey(kf, pk, NULL, NULL, 0, NULL, NULL) || !PEM_write_X509(cf, x))
		goto out;
	rc = 0;
out:
	if (rc)
		snprintf(why, cap, "cannot make a self-signed peer certificate: %s",
			 ssl_error_text(ebuf, sizeof ebuf));
out_said:
	if (kf && fclose(kf) != 0 && rc == 0) {
		snprintf(why, cap, "cannot write %s: %s", key, strerror(errno));
		rc = -EIO;
	}
	if (cf && fclose(cf) != 0 && rc == 0) {
		snprintf(why, cap, "cannot write %s: %s", cert, strerror(errno));
		rc = -EIO;
	}
	if (rc) {
		unlink(cert);
		unlink(key);
	}
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

/* The automatic pair in dir (and dir's parent): made at first use, reused after. */
static int auto_pair(struct fs_tls *t, const struct fs_transport_tls *cfg, char *why, size_t cap)
{
	char parent[TLS_PATH_MAX];
	snprintf(parent, sizeof parent, "%s", cfg->auto_dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if ((slash && slash != parent && mkdir(parent, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(cfg->auto_dir, 0700) != 0 && errno != EEXIST)) {
		snprintf(why, cap, "cannot make %s: %s", cfg->auto_dir, strerror(errno));
		return -EINVAL;
	}
	if (snprintf(t->cert, sizeof t->cert, "%s/cert.pem", cfg->auto_dir) >= TLS_PATH_MAX ||
	    snprintf(t->key, sizeof t->key, "%s/key.pem", cfg->auto_dir) >= TLS_PATH_MAX) {
		snprintf(why, cap, "%s: path too long", cfg->auto_dir);
		return -EINVAL;
	}
	if (access(t->cert, F_OK) == 0 && access(t->key, F_OK) == 0)
		return 0;
	return auto_make(t->cert, t->key, cfg->auto_host ? cfg->auto_host : "127.0.0.1",
			 cfg->auto_cn ? cfg->auto_cn : "raftfs", why, cap);
}

/* ---- contexts ------------------------------------------------------------------------------ */

/* A new SSL_CTX from t's files; NULL with why filled. */
static SSL_CTX *ctx_build(const struct fs_tls *t, char *why, size_t cap)
{
	char ebuf[256];
	if (check_key_mode(t->key, why, cap) != 0)
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx) {
		snprintf(why, cap, "cannot make a TLS context: %s", ssl_error_text(ebuf, sizeof ebuf));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		snprintf(why, cap, "peer certificate %s: %s", t->cert,
			 ssl_error_text(ebuf, sizeof ebuf));
		goto err;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		snprintf(why, cap, "peer key %s: %s", t->key, ssl_error_text(ebuf, sizeof ebuf));
		goto err;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(why, cap, "peer key %s does not match certificate %s", t->key, t->cert);
		ERR_clear_error();
		goto err;
	}
	if (t->ca[0] && SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
		snprintf(why, cap, "peer trusted CA %s: %s", t->ca, ssl_error_text(ebuf, sizeof ebuf));
		goto err;
	}
	return ctx;
err:
	SSL_CTX_free(ctx);
	return NULL;
}

static int copy_path(char *dst, const char *src, const char *flag, char *why, size_t cap)
{
	if (!src || !src[0]) {
		dst[0] = '\0';
		return 0;
	}
	if (strlen(src) >= TLS_PATH_MAX) {
		snprintf(why, cap, "%s: path too long", flag);
		return -EINVAL;
	}
	strcpy(dst, src);
	return 0;
}

int fs_tls_new(struct fs_tls **out, const struct fs_transport_tls *cfg, char *why, size_t cap)
{
	if (conn_index < 0)
		conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	struct fs_tls *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	int rc = 0;
	if (cfg->cert_file && cfg->cert_file[0]) {
		rc = copy_path(t->cert, cfg->cert_file, "--peer-cert-file", why, cap);
		if (rc == 0)
			rc = copy_path(t->key, cfg->key_file, "--peer-key-file", why, cap);
		if (rc == 0)
			rc = copy_path(t->ca, cfg->ca_file, "--peer-trusted-ca-file", why, cap);
		t->client_cert_auth = t->ca[0] && cfg->client_cert_auth;
	} else if (cfg->auto_dir) {
		t->automatic = 1;
		rc = auto_pair(t, cfg, why, cap);
	} else {
		snprintf(why, cap, "no peer certificate (--peer-cert-file or --peer-auto-tls)");
		rc = -EINVAL;
	}
	if (rc == 0 && cfg->allowed_cn && !t->automatic)
		snprintf(t->allowed_cn, sizeof t->allowed_cn, "%s", cfg->allowed_cn);
	if (rc == 0 && !(t->ctx = ctx_build(t, why, cap)))
		rc = -EINVAL;
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int fs_tls_reload(struct fs_tls *t, char *why, size_t cap)
{
	SSL_CTX *ctx = ctx_build(t, why, cap);
	if (!ctx)
		return -EINVAL;
	SSL_CTX_free(t->ctx); /* open connections hold their own reference */
	t->ctx = ctx;
	return 0;
}

const char *fs_tls_mode(const struct fs_tls *t)
{
	if (t->automatic)
		return "TLS 1.3, self-signed (--peer-auto-tls): encrypted, members not authenticated";
	if (!t->ca[0])
		return "TLS 1.3, no trusted CA: encrypted, members not authenticated";
	if (!t->client_cert_auth)
		return "TLS 1.3, servers verified by the trusted CA, clients not";
	return "TLS 1.3, mutual: both sides verified by the trusted CA";
}

void fs_tls_free(struct fs_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* ---- connections ----------------------------------------------------------------------------- */

/*
 * OpenSSL's chain check, plus the allowed CN on the peer's own certificate (depth 0). A refusal
 * is remembered so the reason names the CN rather than a generic verify failure.
 */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct fs_tls_conn *c = ssl ? SSL_get_ex_data(ssl, conn_index) : NULL;
	if (!ok || !c || !c->allowed_cn[0] || X509_STORE_CTX_get_error_depth(store) != 0)
		return ok;
	char cn[256] = "";
	X509 *x = X509_STORE_CTX_get_current_cert(store);
	if (x)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
	if (strcmp(cn, c->allowed_cn) == 0)
		return 1;
	snprintf(c->refused_cn, sizeof c->refused_cn, "%s", cn[0] ? cn : "(none)");
	X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

struct fs_tls_conn *fs_tls_conn_new(struct fs_tls *t, int client, const char *host)
{
	struct fs_tls_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->client = client;
	c->ssl = SSL_new(t->ctx);
	c->in = BIO_new(BIO_s_mem());
	c->out = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->in || !c->out) {
		BIO_free(c->in);
		BIO_free(c->out);
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return NULL;
	}
	BIO_set_mem_eof_return(c->in, -1); /* empty: "retry", not end of stream */
	BIO_set_mem_eof_return(c->out, -1);
	SSL_set_bio(c->ssl, c->in, c->out);
	SSL_set_ex_data(c->ssl, conn_index, c);
	snprintf(c->allowed_cn, sizeof c->allowed_cn, "%s", t->allowed_cn);
	int mode = SSL_VERIFY_NONE;
	if (client) {
		SSL_set_connect_state(c->ssl);
		if (t->ca[0] && !t->automatic) {
			mode = SSL_VERIFY_PEER;
			X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
			if (host && host[0] && X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
				ERR_clear_error();
				X509_VERIFY_PARAM_set1_host(vp, host, 0);
			}
		}
	} else {
		SSL_set_accept_state(c->ssl);
		if (t->client_cert_auth)
			mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	SSL_set_verify(c->ssl, mode, mode == SSL_VERIFY_NONE ? NULL : verify_cb);
	return c;
}

void fs_tls_conn_free(struct fs_tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl); /* frees both BIOs */
	free(c);
}

int fs_tls_conn_feed(struct fs_tls_conn *c, const void *buf, size_t len)
{
	if (len > INT32_MAX || BIO_write(c->in, buf, (int)len) != (int)len) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
}

/* Why the handshake or a read failed, in the words the log uses. */
static void failure_reason(struct fs_tls_conn *c, char *why, size_t cap)
{
	char ebuf[256];
	unsigned long e = ERR_peek_error();
	int reason = ERR_GET_REASON(e);
	long vr = SSL_get_verify_result(c->ssl);
	const char *detail = ssl_error_text(ebuf, sizeof ebuf); /* clears the queue */
	if (c->refused_cn[0]) {
		snprintf(why, cap, "CN not allowed: its certificate's CN is '%s', only '%s' is",
			 c->refused_cn, c->allowed_cn);
		return;
	}
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
		switch (vr) {
		case X509_V_ERR_CERT_HAS_EXPIRED:
			snprintf(why, cap, "expired: its certificate has expired");
			return;
		case X509_V_ERR_CERT_NOT_YET_VALID:
			snprintf(why, cap, "its certificate is not valid yet");
			return;
		case X509_V_ERR_IP_ADDRESS_MISMATCH:
		case X509_V_ERR_HOSTNAME_MISMATCH:
			snprintf(why, cap, "its certificate does not name the address dialed");
			return;
		default:
			snprintf(why, cap, "unknown CA: its certificate is not signed by the trusted "
				 "CA (%s)", X509_verify_cert_error_string(vr));
			return;
		}
	}
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		snprintf(why, cap, "no certificate: it presented none");
		return;
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		snprintf(why, cap, "no certificate: it requires one and this member has none");
		return;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		snprintf(why, cap, "unknown CA: it does not trust this member's certificate");
		return;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		snprintf(why, cap, "expired: it says this member's certificate has expired");
		return;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
		snprintf(why, cap, "it refused this member's certificate (%s)", detail);
		return;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		if (!SSL_is_init_finished(c->ssl)) { /* after it: a damaged record */
			snprintf(why, cap, "protocol mismatch: %s", detail);
			return;
		}
		/* fall through */
	default:
		snprintf(why, cap, "TLS error: %s", detail);
	}
}

int fs_tls_conn_handshake(struct fs_tls_conn *c, char *why, size_t cap)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return 1;
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	failure_reason(c, why, cap);
	return -EPROTO;
}

ssize_t fs_tls_conn_read(struct fs_tls_conn *c, void *buf, size_t cap, char *why, size_t whycap)
{
	if (BIO_ctrl_pending(c->in) == 0 && SSL_pending(c->ssl) == 0)
		return 0; /* nothing to decrypt: spares OpenSSL a pass through its record layer */
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	int r = SSL_read(c->ssl, buf, (int)cap);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		return -EPIPE;
	failure_reason(c, why, whycap);
	return -EPROTO;
}

int fs_tls_conn_write(struct fs_tls_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		/* a memory BIO takes everything: each call writes all it is given */
		int n = len > INT32_MAX ? INT32_MAX : (int)len;
		int r = SSL_write(c->ssl, p, n);
		if (r <= 0) {
			ERR_clear_error();
			return -EPROTO;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

uint8_t *fs_tls_conn_take(struct fs_tls_conn *c, size_t *len)
{
	size_t n = BIO_ctrl_pending(c->out);
	*len = n;
	if (n == 0)
		return NULL;
	uint8_t *buf = malloc(n);
	if (!buf)
		return NULL;
	if (BIO_read(c->out, buf, (int)n) != (int)n) {
		free(buf);
		ERR_clear_error();
		return NULL;
	}
	return buf;
}

void fs_tls_conn_subject(const struct fs_tls_conn *c, char *buf, size_t cap)
{
	buf[0] = '\0';
	X509 *x = SSL_get0_peer_certificate(c->ssl);
	if (!x || cap == 0)
		return;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV);
	int n = BIO_read(b, buf, (int)(cap - 1));
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
	ERR_clear_error();
}
