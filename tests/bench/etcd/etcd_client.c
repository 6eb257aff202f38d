/*
 * etcd_client.c: a dependency-free client for etcd's v3 HTTP/JSON gateway (see etcd_client.h),
 * written so that raftfs's benchmarks can put, range and watch on a real etcd 3.4 cluster in the
 * same run as raftfs and print etcd's figures beside their own. One etcdc_conn is one nonblocking
 * TCP socket used as a persistent HTTP/1.1 connection; every wait goes through poll() against a
 * deadline, so no call blocks longer than the connection's timeout. A watch is a long-lived POST
 * /v3/watch whose chunked reply carries one JSON message per watch response.
 *
 * Memory: each connection owns four growable buffers (raw bytes read, the last response body, the
 * request being sent, scratch for decoded values); they grow to the largest message seen and are
 * freed by etcdc_close; a watch adds its current message and the decoded key and value. Nothing is shared between connections, so there is no locking.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, pipe2, strncasecmp, SOCK_NONBLOCK */
#endif
#include "etcd_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ==== base64 ================================================================================= */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t etcdc_base64_encode(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

ssize_t etcdc_base64_decode(const char *in, size_t n, void *out)
{
	unsigned char *q = out;
	size_t o = 0;
	/* Padding: only at the end, at most two, and only completing a group of four. */
	size_t pad = 0;
	while (n > 0 && in[n - 1] == '=' && pad < 2)
		n--, pad++;
	if (pad && (n + pad) % 4 != 0)
		return -EINVAL;
	if (n % 4 == 1)
		return -EINVAL;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			q[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (ssize_t)o;
}

/* ==== JSON =================================================================================== */

/* Results of the scanners below. */
enum { SCAN_OK = 0, SCAN_MORE = 1, SCAN_BAD = -1 };

static const char *json_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* P at '"': sets *out past the closing quote. */
static int json_skip_string(const char *p, const char *e, const char **out)
{
	for (p++; p < e; p++) {
		if (*p == '\\') {
			if (++p >= e)
				return SCAN_MORE;
		} else if (*p == '"') {
			*out = p + 1;
			return SCAN_OK;
		} else if ((unsigned char)*p < 0x20) {
			return SCAN_BAD;
		}
	}
	return SCAN_MORE;
}

/*
 * Skips the value at P (no leading whitespace) and sets *out past it. AT_END says that E is the end
 * of the text, which completes a trailing number; otherwise a number touching E is SCAN_MORE.
 * Containers are matched with a bit stack of 64 levels; deeper is SCAN_BAD.
 */
static int json_skip_value(const char *p, const char *e, int at_end, const char **out)
{
	if (p >= e)
		return SCAN_MORE;
	if (*p == '"')
		return json_skip_string(p, e, out);
	if (*p == '{' || *p == '[') {
		uint64_t stack = 0; /* bit set: that level is an object */
		int depth = 0;
		while (p < e) {
			char ch = *p;
			if (ch == '"') {
				int r = json_skip_string(p, e, &p);
				if (r != SCAN_OK)
					return r;
				continue;
			}
			if (ch == '{' || ch == '[') {
				if (depth == 64)
					return SCAN_BAD;
				stack = stack << 1 | (ch == '{');
				depth++;
			} else if (ch == '}' || ch == ']') {
				if (depth == 0 || (int)(stack & 1) != (ch == '}'))
					return SCAN_BAD;
				stack >>= 1;
				if (--depth == 0) {
					*out = p + 1;
					return SCAN_OK;
				}
			} else if ((unsigned char)ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') {
				return SCAN_BAD;
			}
			p++;
		}
		return SCAN_MORE;
	}
	static const char *const words[] = {"true", "false", "null"};
	for (size_t w = 0; w < 3; w++) {
		size_t wl = strlen(words[w]);
		if (*p != words[w][0])
			continue;
		size_t have = (size_t)(e - p) < wl ? (size_t)(e - p) : wl;
		if (memcmp(p, words[w], have) != 0)
			return SCAN_BAD;
		if (have < wl)
			return SCAN_MORE;
		*out = p + wl;
		return SCAN_OK;
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		const char *q = p + 1;
		while (q < e && (isdigit((unsigned char)*q) || *q == '.' || *q == 'e' || *q == 'E' ||
				 *q == '+' || *q == '-'))
			q++;
		if (q == e && !at_end)
			return SCAN_MORE;
		*out = q;
		return SCAN_OK;
	}
	return SCAN_BAD;
}

ssize_t etcdc_json_value_end(const char *buf, size_t len)
{
	const char *e = buf + len, *p = json_ws(buf, e), *end;
	if (p == e)
		return 0;
	int r = json_skip_value(p, e, 0, &end);
	if (r == SCAN_MORE)
		return 0;
	if (r == SCAN_BAD)
		return -EPROTO;
	return end - buf;
}

int etcdc_json_find(const char *json, size_t len, const char *path, const char **val,
		    size_t *vlen)
{
	const char *e = json + len, *p = json_ws(json, e), *end;
	const char *comp = path;
	while (*comp) {
		const char *dot = strchr(comp, '.');
		size_t cl = dot ? (size_t)(dot - comp) : strlen(comp);
		if (p >= e)
			return -EPROTO;
		if (*p == '{') {
			p = json_ws(p + 1, e);
			if (p < e && *p == '}')
				return -ENOENT;
			for (;;) {
				if (p >= e || *p != '"')
					return -EPROTO;
				const char *kstart = p + 1;
				if (json_skip_string(p, e, &p) != SCAN_OK)
					return -EPROTO;
				size_t kl = (size_t)(p - 1 - kstart);
				p = json_ws(p, e);
				if (p >= e || *p != ':')
					return -EPROTO;
				p = json_ws(p + 1, e);
				if (kl == cl && memcmp(kstart, comp, cl) == 0)
					break;
				if (json_skip_value(p, e, 1, &p) != SCAN_OK)
					return -EPROTO;
				p = json_ws(p, e);
				if (p < e && *p == ',') {
					p = json_ws(p + 1, e);
					continue;
				}
				if (p < e && *p == '}')
					return -ENOENT;
				return -EPROTO;
			}
		} else if (*p == '[') {
			size_t idx = 0;
			if (cl == 0 || cl > 9)
				return -ENOENT;
			for (size_t i = 0; i < cl; i++) {
				if (!isdigit((unsigned char)comp[i]))
					return -ENOENT;
				idx = idx * 10 + (size_t)(comp[i] - '0');
			}
			p = json_ws(p + 1, e);
			if (p < e && *p == ']')
				return -ENOENT;
			for (size_t i = 0; i < idx; i++) {
				if (json_skip_value(p, e, 1, &p) != SCAN_OK)
					return -EPROTO;
				p = json_ws(p, e);
				if (p < e && *p == ',') {
					p = json_ws(p + 1, e);
					continue;
				}
				if (p < e && *p == ']')
					return -ENOENT;
				return -EPROTO;
			}
		} else {
			return -ENOENT;
		}
		comp = dot ? dot + 1 : comp + cl;
	}
	if (json_skip_value(p, e, 1, &end) != SCAN_OK)
		return -EPROTO;
	*val = p;
	*vlen = (size_t)(end - p);
	return 0;
}

static int hex4(const char *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int d = isdigit((unsigned char)p[i])        ? p[i] - '0'
			: (p[i] >= 'a' && p[i] <= 'f') ? p[i] - 'a' + 10
			: (p[i] >= 'A' && p[i] <= 'F') ? p[i] - 'A' + 10
						       : -1;
		if (d < 0)
			return -EPROTO;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

int etcdc_json_string(const char *json, size_t len, const char *path, char *out, size_t cap,
		      size_t *outlen)
{
	const char *v;
	size_t vl;
	int r = etcdc_json_find(json, len, path, &v, &vl);
	if (r < 0)
		return r;
	if (vl < 2 || v[0] != '"')
		return -EPROTO;
	const char *p = v + 1, *e = v + vl - 1;
	size_t o = 0;
	while (p < e) {
		char tmp[4];
		size_t tl = 1;
		if (*p != '\\') {
			tmp[0] = *p++;
		} else {
			if (e - p < 2)
				return -EPROTO;
			char esc = p[1];
			p += 2;
			switch (esc) {
			case '"': tmp[0] = '"'; break;
			case '\\': tmp[0] = '\\'; break;
			case '/': tmp[0] = '/'; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u': {
				uint32_t cp, lo;
				if (e - p < 4 || hex4(p, &cp) < 0)
					return -EPROTO;
				p += 4;
				if (cp >= 0xD800 && cp < 0xDC00 && e - p >= 6 && p[0] == '\\' &&
				    p[1] == 'u' && hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				}
				if (cp < 0x80) {
					tmp[0] = (char)cp;
				} else if (cp < 0x800) {
					tmp[0] = (char)(0xC0 | cp >> 6);
					tmp[1] = (char)(0x80 | (cp & 63));
					tl = 2;
				} else if (cp < 0x10000) {
					tmp[0] = (char)(0xE0 | cp >> 12);
					tmp[1] = (char)(0x80 | ((cp >> 6) & 63));
					tmp[2] = (char)(0x80 | (cp & 63));
					tl = 3;
				} else {
					tmp[0] = (char)(0xF0 | cp >> 18);
					tmp[1] = (char)(0x80 | ((cp >> 12) & 63));
					tmp[2] = (char)(0x80 | ((cp >> 6) & 63));
					tmp[3] = (char)(0x80 | (cp & 63));
					tl = 4;
				}
				break;
			}
			default:
				return -EPROTO;
			}
		}
		if (o + tl >= cap)
			return -ENOBUFS;
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	if (cap == 0)
		return -ENOBUFS;
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return 0;
}

/* Parses the integer at PATH (bare or quoted) as a sign and a magnitude of at most LIMIT
 * (LIMIT + 1 when negative and NEG_OK). */
static int json_integer(const char *json, size_t len, const char *path, int neg_ok,
			uint64_t limit, int *negative, uint64_t *magnitude)
{
	const char *p;
	size_t vl;
	int r = etcdc_json_find(json, len, path, &p, &vl);
	if (r < 0)
		return r;
	if (vl >= 2 && p[0] == '"') {
		p++;
		vl -= 2;
	}
	int neg = 0;
	size_t i = 0;
	if (neg_ok && i < vl && p[i] == '-')
		neg = 1, i++;
	if (i == vl)
		return -EPROTO;
	uint64_t acc = 0, lim = neg ? limit + 1 : limit;
	for (; i < vl; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -EPROTO;
		unsigned d = (unsigned)(p[i] - '0');
		if (acc > (lim - d) / 10)
			return -EPROTO;
		acc = acc * 10 + d;
	}
	*negative = neg;
	*magnitude = acc;
	return 0;
}

int etcdc_json_int(const char *json, size_t len, const char *path, int64_t *v)
{
	int neg;
	uint64_t m;
	int r = json_integer(json, len, path, 1, (uint64_t)INT64_MAX, &neg, &m);
	if (r == 0)
		*v = neg ? (int64_t)(0 - m) : (int64_t)m;
	return r;
}

int etcdc_json_uint(const char *json, size_t len, const char *path, uint64_t *v)
{
	int neg;
	return json_integer(json, len, path, 0, UINT64_MAX, &neg, v);
}

int etcdc_json_bool(const char *json, size_t len, const char *path, int *v)
{
	const char *p;
	size_t vl;
	int r = etcdc_json_find(json, len, path, &p, &vl);
	if (r < 0)
		return r;
	if (vl == 4 && memcmp(p, "true", 4) == 0)
		*v = 1;
	else if (vl == 5 && memcmp(p, "false", 5) == 0)
		*v = 0;
	else
		return -EPROTO;
	return 0;
}

/* ==== HTTP framing =========================================================================== */

#define HTTP_HEAD_MAX (64 * 1024)

/* Case-insensitive: does [p, p+n) contain the word W (a token of a comma-separated list)? */
static int header_has_token(const char *p, size_t n, const char *w)
{
	size_t wl = strlen(w);
	for (size_t i = 0; i + wl <= n; i++) {
		if (strncasecmp(p + i, w, wl) != 0)
			continue;
		int left_ok = i == 0 || p[i - 1] == ',' || p[i - 1] == ' ' || p[i - 1] == '\t';
		int right_ok = i + wl == n || p[i + wl] == ',' || p[i + wl] == ' ' ||
			       p[i + wl] == '\t' || p[i + wl] == ';';
		if (left_ok && right_ok)
			return 1;
	}
	return 0;
}

ssize_t etcdc_http_parse_head(const char *buf, size_t len, struct etcdc_http_head *h)
{
	const char *p = buf, *e = buf + len;
	int minor = -1, line_no = 0, keep_alive = 0;
	memset(h, 0, sizeof *h);
	h->content_length = -1;
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		if (!nl)
			return len > HTTP_HEAD_MAX ? -EPROTO : 0;
		const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		size_t ll = (size_t)(le - p);
		if (line_no == 0) {
			/* HTTP/1.x SSS reason */
			if (ll < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) ||
			    p[8] != ' ')
				return -EPROTO;
			minor = p[7] - '0';
			for (int i = 9; i < 12; i++)
				if (!isdigit((unsigned char)p[i]))
					return -EPROTO;
			if (ll > 12 && p[12] != ' ')
				return -EPROTO;
			h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
		} else if (ll == 0) {
			if (minor == 0 && !keep_alive)
				h->close = 1;
			return nl + 1 - buf;
		} else {
			const char *colon = memchr(p, ':', ll);
			if (!colon || colon == p)
				return -EPROTO;
			size_t nl_len = (size_t)(colon - p);
			const char *v = colon + 1, *ve = le;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t vl = (size_t)(ve - v);
			if (nl_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
				int64_t n = 0;
				if (vl == 0 || vl > 15)
					return -EPROTO;
				for (size_t i = 0; i < vl; i++) {
					if (!isdigit((unsigned char)v[i]))
						return -EPROTO;
					n = n * 10 + (v[i] - '0');
				}
				if (h->content_length >= 0 && h->content_length != n)
					return -EPROTO;
				h->content_length = n;
			} else if (nl_len == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
				if (header_has_token(v, vl, "chunked"))
					h->chunked = 1;
			} else if (nl_len == 10 && strncasecmp(p, "Connection", 10) == 0) {
				if (header_has_token(v, vl, "close"))
					h->close = 1;
				if (header_has_token(v, vl, "keep-alive"))
					keep_alive = 1;
			}
		}
		line_no++;
		p = nl + 1;
	}
}

enum {
	CS_SIZE0,         /* expecting the first hex digit of a chunk size */
	CS_SIZE,          /* in the hex digits */
	CS_EXT,           /* in a chunk extension, up to LF */
	CS_SIZE_LF,       /* CR seen after the size, expecting LF */
	CS_DATA,          /* in chunk data, `left` bytes to go */
	CS_DATA_CR,       /* expecting CRLF after the data */
	CS_DATA_LF,       /* CR seen after the data, expecting LF */
	CS_TRAILER_START, /* at the start of a trailer line (an empty one ends the body) */
	CS_TRAILER_LINE,  /* in a trailer line */
	CS_TRAILER_LF,    /* CR seen at the start of a trailer line, expecting LF */
	CS_DONE,
};

void etcdc_chunked_init(struct etcdc_chunked *st)
{
	memset(st, 0, sizeof *st);
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

ssize_t etcdc_chunked_decode(struct etcdc_chunked *st, char *buf, size_t len, size_t *consumed)
{
	size_t i = 0, o = 0;
	*consumed = 0;
	while (i < len && st->state != CS_DONE) {
		char ch = buf[i];
		int d;
		switch (st->state) {
		case CS_SIZE0:
			if ((d = hex_digit(ch)) < 0)
				return -EPROTO;
			st->left = (uint64_t)d;
			st->state = CS_SIZE;
			i++;
			break;
		case CS_SIZE:
			if ((d = hex_digit(ch)) >= 0) {
				if (st->left >> 40)
					return -EPROTO;
				st->left = st->left << 4 | (uint64_t)d;
			} else if (ch == ';' || ch == ' ' || ch == '\t') {
				st->state = CS_EXT;
			} else if (ch == '\r') {
				st->state = CS_SIZE_LF;
			} else if (ch == '\n') {
				st->state = st->left ? CS_DATA : CS_TRAILER_START;
			} else {
				return -EPROTO;
			}
			i++;
			break;
		case CS_EXT:
			if (ch == '\n')
				st->state = st->left ? CS_DATA : CS_TRAILER_START;
			i++;
			break;
		case CS_SIZE_LF:
			if (ch != '\n')
				return -EPROTO;
			st->state = st->left ? CS_DATA : CS_TRAILER_START;
			i++;
			break;
		case CS_DATA: {
			size_t n = len - i;
			if (n > st->left)
				n = (size_t)st->left;
			memmove(buf + o, buf + i, n);
			o += n;
			i += n;
			st->left -= n;
			if (st->left == 0)
				st->state = CS_DATA_CR;
			break;
		}
		case CS_DATA_CR:
			if (ch == '\r')
				st->state = CS_DATA_LF;
			else if (ch == '\n')
				st->state = CS_SIZE0;
			else
				return -EPROTO;
			i++;
			break;
		case CS_DATA_LF:
			if (ch != '\n')
				return -EPROTO;
			st->state = CS_SIZE0;
			i++;
			break;
		case CS_TRAILER_START:
			if (ch == '\r')
				st->state = CS_TRAILER_LF;
			else if (ch == '\n')
				st->state = CS_DONE;
			else
				st->state = CS_TRAILER_LINE;
			i++;
			break;
		case CS_TRAILER_LINE:
			if (ch == '\n')
				st->state = CS_TRAILER_START;
			i++;
			break;
		case CS_TRAILER_LF:
			if (ch != '\n')
				return -EPROTO;
			st->state = CS_DONE;
			i++;
			break;
		default:
			return -EPROTO;
		}
	}
	st->done = st->state == CS_DONE;
	*consumed = i;
	return (ssize_t)o;
}

/* ==== connections ============================================================================ */

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n + 1);
	if (r < 0)
		return r;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0'; /* keeps text buffers NUL terminated for convenience */
	return 0;
}

/* Drops the first N bytes. */
static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

struct etcdc_conn {
	int fd;                  /* -1 when not connected */
	struct sockaddr_in addr; /* the member */
	char host[80];           /* "127.0.0.1:2379", for the Host header */
	int timeout_ms;          /* per request */
	struct buf in;           /* bytes read and not yet consumed */
	struct buf body;         /* the last response's body */
	struct buf req;          /* the request being sent */
	struct buf scratch;      /* decoded strings */
	struct etcdc_http_head head; /* the last response's head */
	char err[256];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until DEADLINE for poll(): -1 for no deadline (DEADLINE < 0). */
static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - now_ms();
	return left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats the message of the last error into ERR (a 256-byte field of the connection). */
static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, 256, fmt, ap);
	va_end(ap);
}

static int parse_endpoint(const char *endpoint, struct sockaddr_in *addr, char *host, size_t hcap)
{
	const char *p = endpoint;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strstr(p, "://"))
		return -EINVAL; /* https and the rest are not spoken here */
	char hostpart[64];
	const char *colon = strrchr(p, ':');
	if (!colon || (size_t)(colon - p) >= sizeof hostpart)
		return -EINVAL;
	memcpy(hostpart, p, (size_t)(colon - p));
	hostpart[colon - p] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (end == colon + 1 || (*end && strcmp(end, "/") != 0) || port == 0 || port > 65535)
		return -EINVAL;
	memset(addr, 0, sizeof *addr);
	addr->sin_family = AF_INET;
	addr->sin_port = htons((uint16_t)port);
	if (strcmp(hostpart, "localhost") == 0)
		strcpy(hostpart, "127.0.0.1");
	if (inet_pton(AF_INET, hostpart, &addr->sin_addr) != 1)
		return -EINVAL;
	snprintf(host, hcap, "%s:%lu", hostpart, port);
	return 0;
}

static void conn_disconnect(struct etcdc_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in.len = 0;
}

static int conn_dial(struct etcdc_conn *c, int64_t deadline)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) < 0) {
		if (errno != EINPROGRESS) {
			int r = -errno;
			close(fd);
			set_err(c->err, "connect to %s failed", c->host);
			return r;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int n;
		do
			n = poll(&pfd, 1, left_ms(deadline));
		while (n < 0 && errno == EINTR);
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (n == 0) {
			close(fd);
			set_err(c->err, "connect to %s timed out", c->host);
			return -ETIMEDOUT;
		}
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			int r = n < 0 ? -errno : soerr ? -soerr : -errno;
			close(fd);
			set_err(c->err, "connect to %s failed", c->host);
			return r;
		}
	}
	c->fd = fd;
	c->in.len = 0;
	return 0;
}

static int conn_write_all(struct etcdc_conn *c, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
		int r = poll(&pfd, 1, left_ms(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Reads what is available into c->in, waiting until DEADLINE. Returns bytes read, 0 at EOF. */
static ssize_t conn_read_some(struct etcdc_conn *c, int64_t deadline)
{
	for (;;) {
		int r = buf_reserve(&c->in, 16384);
		if (r < 0)
			return r;
		ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
		if (n >= 0) {
			c->in.len += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, left_ms(deadline));
		if (pr == 0)
			return -ETIMEDOUT;
		if (pr < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * Reads one response head into c->head and consumes it from c->in. -ECONNRESET when the peer
 * closed or reset the connection before sending any byte (the request may be retried then).
 */
static int conn_read_head(struct etcdc_conn *c, int64_t deadline)
{
	for (;;) {
		if (c->in.len > 0) {
			ssize_t hl = etcdc_http_parse_head(c->in.p, c->in.len, &c->head);
			if (hl < 0) {
				set_err(c->err, "malformed HTTP response from %s", c->host);
				return -EPROTO;
			}
			if (hl > 0) {
				buf_consume(&c->in, (size_t)hl);
				if (c->head.status >= 100 && c->head.status < 200)
					continue; /* an interim response: the real one follows */
				return 0;
			}
		}
		size_t had = c->in.len;
		ssize_t n = conn_read_some(c, deadline);
		if (n == 0 || n == -ECONNRESET)
			return had == 0 ? -ECONNRESET : -EPROTO;
		if (n < 0) {
			if (n == -ETIMEDOUT)
				set_err(c->err, "no reply from %s in time", c->host);
			else
				set_err(c->err, "read from %s failed", c->host);
			return (int)n;
		}
	}
}

/* Reads the body of the response whose head was just read into c->body. */
static int conn_read_body(struct etcdc_conn *c, int64_t deadline)
{
	c->body.len = 0;
	int r = buf_reserve(&c->body, 1);
	if (r < 0)
		return r;
	c->body.p[0] = '\0';
	if (c->head.status == 204 || c->head.status == 304)
		return 0;
	if (c->head.chunked) {
		struct etcdc_chunked st;
		etcdc_chunked_init(&st);
		for (;;) {
			size_t used;
			ssize_t out = etcdc_chunked_decode(&st, c->in.p, c->in.len, &used);
			if (out < 0) {
				set_err(c->err, "bad chunked body from %s", c->host);
				return (int)out;
			}
			if ((r = buf_append(&c->body, c->in.p, (size_t)out)) < 0)
				return r;
			buf_consume(&c->in, used);
			if (st.done)
				return 0;
			ssize_t n = conn_read_some(c, deadline);
			if (n <= 0) {
				set_err(c->err, "body from %s cut short", c->host);
				return n == 0 ? -EPROTO : (int)n;
			}
		}
	}
	if (c->head.content_length >= 0) {
		size_t want = (size_t)c->head.content_length;
		while (c->in.len < want) {
			ssize_t n = conn_read_some(c, deadline);
			if (n <= 0) {
				set_err(c->err, "body from %s cut short", c->host);
				return n == 0 ? -EPROTO : (int)n;
			}
		}
		if ((r = buf_append(&c->body, c->in.p, want)) < 0)
			return r;
		buf_consume(&c->in, want);
		return 0;
	}
	/* Neither length nor chunks: the body runs to the end of the connection. */
	for (;;) {
		ssize_t n = conn_read_some(c, deadline);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
	}
	if ((r = buf_append(&c->body, c->in.p, c->in.len)) < 0)
		return r;
	c->in.len = 0;
	c->head.close = 1;
	return 0;
}

/* Builds "POST PATH" with BODY into c->req. */
static int conn_build_request(struct etcdc_conn *c, const char *path, const char *body,
			      size_t blen)
{
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  path, c->host, blen);
	if (hl < 0 || (size_t)hl >= sizeof head)
		return -EINVAL;
	c->req.len = 0;
	int r = buf_append(&c->req, head, (size_t)hl);
	if (r == 0)
		r = buf_append(&c->req, body, blen);
	return r;
}

/* Sends c->req and reads the response head (and the body unless HEAD_ONLY), reconnecting and
 * retrying once when a reused keep-alive connection turns out to be closed. */
static int conn_exchange(struct etcdc_conn *c, int head_only, int64_t deadline)
{
	for (int attempt = 0;; attempt++) {
		int reused = c->fd >= 0, r;
		if (!reused && (r = conn_dial(c, deadline)) < 0)
			return r;
		r = conn_write_all(c, c->req.p, c->req.len, deadline);
		if (r == 0)
			r = conn_read_head(c, deadline);
		if ((r == -EPIPE || r == -ECONNRESET) && reused && attempt == 0) {
			conn_disconnect(c);
			continue;
		}
		if (r == -ECONNRESET)
			set_err(c->err, "%s closed the connection", c->host);
		else if (r == -EPIPE)
			set_err(c->err, "write to %s failed", c->host);
		if (r == 0 && !head_only)
			r = conn_read_body(c, deadline);
		if (r < 0 || (!head_only && c->head.close))
			conn_disconnect(c);
		return r;
	}
}

/* Maps a gRPC status code to a negative errno. */
static int grpc_errno(int64_t code)
{
	switch (code) {
	case 1: return -ECANCELED;
	case 3: return -EINVAL;
	case 4: return -ETIMEDOUT;
	case 5: return -ENOENT;
	case 6: return -EEXIST;
	case 7: case 16: return -EACCES;
	case 8: return -ENOSPC;
	case 11: return -ERANGE;
	case 12: return -ENOSYS;
	case 14: return -EAGAIN;
	default: return -EIO;
	}
}

/* Turns a non-200 reply (body in c->body) into a negative errno and c->err. */
static int http_error(struct etcdc_conn *c)
{
	int64_t code;
	char msg[200];
	const char *b = c->body.p;
	size_t bl = c->body.len;
	if (etcdc_json_string(b, bl, "message", msg, sizeof msg, NULL) == 0 ||
	    etcdc_json_string(b, bl, "error", msg, sizeof msg, NULL) == 0)
		set_err(c->err, "%s", msg);
	else
		snprintf(c->err, sizeof c->err, "HTTP %d from %s", c->head.status, c->host);
	if (etcdc_json_int(b, bl, "code", &code) == 0)
		return grpc_errno(code);
	switch (c->head.status) {
	case 400: return -EINVAL;
	case 404: return -ENOSYS; /* no gateway at this path */
	case 503: return -EAGAIN;
	case 504: return -ETIMEDOUT;
	default: return -EIO;
	}
}

/* POSTs BODY to PATH and leaves a 200 reply's body in c->body; other statuses become errors. */
static int conn_post(struct etcdc_conn *c, const char *path, const char *body, size_t blen)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	c->err[0] = '\0';
	int r = conn_build_request(c, path, body, blen);
	if (r == 0)
		r = conn_exchange(c, 0, deadline);
	if (r < 0)
		return r;
	if (c->head.status != 200)
		return http_error(c);
	return 0;
}

int etcdc_connect(const char *endpoint, int timeout_ms, struct etcdc_conn **out)
{
	struct etcdc_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	int r = parse_endpoint(endpoint, &c->addr, c->host, sizeof c->host);
	if (r == 0)
		r = conn_dial(c, now_ms() + c->timeout_ms);
	if (r < 0) {
		etcdc_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void etcdc_close(struct etcdc_conn *c)
{
	if (!c)
		return;
	conn_disconnect(c);
	free(c->in.p);
	free(c->body.p);
	free(c->req.p);
	free(c->scratch.p);
	free(c);
}

const char *etcdc_errmsg(const struct etcdc_conn *c)
{
	return c->err;
}

/* Appends "NAME":"base64(P[0..N))" to B. */
static int append_b64_field(struct buf *b, const char *name, const void *p, size_t n)
{
	int r = buf_reserve(b, strlen(name) + ETCDC_BASE64_LEN(n) + 8);
	if (r < 0)
		return r;
	b->len += (size_t)sprintf(b->p + b->len, "\"%s\":\"", name);
	b->len += etcdc_base64_encode(p, n, b->p + b->len);
	return buf_append(b, "\"", 1);
}

/* Decodes the base64 string at PATH of the body into c->scratch; *n gets its length. A missing
 * field is the empty string (proto3 JSON leaves out empty fields). */
static int body_b64(struct etcdc_conn *c, const char *path, const unsigned char **p, size_t *n)
{
	const char *v;
	size_t vl;
	int r = etcdc_json_find(c->body.p, c->body.len, path, &v, &vl);
	if (r == -ENOENT) {
		*p = (const unsigned char *)"";
		*n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	c->scratch.len = 0;
	if ((r = buf_reserve(&c->scratch, vl * 2 + 8)) < 0)
		return r;
	size_t sl;
	/* The string unescaped into the first half, decoded into the second. */
	if ((r = etcdc_json_string(c->body.p, c->body.len, path, c->scratch.p, vl + 1, &sl)) < 0)
		return r;
	ssize_t dl = etcdc_base64_decode(c->scratch.p, sl, c->scratch.p + vl + 1);
	if (dl < 0)
		return (int)dl;
	*p = (const unsigned char *)c->scratch.p + vl + 1;
	*n = (size_t)dl;
	return 0;
}

int etcdc_put(struct etcdc_conn *c, const void *key, size_t klen, const void *val, size_t vlen,
	      int64_t *revision)
{
	struct buf b = {0};
	int r = buf_append(&b, "{", 1);
	if (r == 0)
		r = append_b64_field(&b, "key", key, klen);
	if (r == 0)
		r = buf_append(&b, ",", 1);
	if (r == 0)
		r = append_b64_field(&b, "value", val, vlen);
	if (r == 0)
		r = buf_append(&b, "}", 1);
	if (r == 0)
		r = conn_post(c, "/v3/kv/put", b.p, b.len);
	free(b.p);
	if (r < 0)
		return r;
	int64_t rev = 0;
	if (etcdc_json_int(c->body.p, c->body.len, "header.revision", &rev) < 0) {
		set_err(c->err, "put reply from %s has no header.revision", c->host);
		return -EPROTO;
	}
	if (revision)
		*revision = rev;
	return 0;
}

int etcdc_get(struct etcdc_conn *c, const void *key, size_t klen, int flags, void *buf, size_t cap,
	      size_t *vlen, int64_t *mod_revision)
{
	struct buf b = {0};
	int r = buf_append(&b, "{", 1);
	if (r == 0)
		r = append_b64_field(&b, "key", key, klen);
	if (r == 0 && (flags & ETCDC_SERIALIZABLE))
		r = buf_append(&b, ",\"serializable\":true", 20);
	if (r == 0)
		r = buf_append(&b, "}", 1);
	if (r == 0)
		r = conn_post(c, "/v3/kv/range", b.p, b.len);
	free(b.p);
	if (r < 0)
		return r;
	const char *v;
	size_t vl;
	r = etcdc_json_find(c->body.p, c->body.len, "header", &v, &vl);
	if (r < 0) {
		set_err(c->err, "range reply from %s has no header", c->host);
		return -EPROTO;
	}
	r = etcdc_json_find(c->body.p, c->body.len, "kvs.0", &v, &vl);
	if (r == -ENOENT) {
		set_err(c->err, "%s", "key not found");
		return -ENOENT;
	}
	if (r < 0)
		return r;
	const unsigned char *val = NULL;
	size_t n = 0;
	if ((r = body_b64(c, "kvs.0.value", &val, &n)) < 0) {
		set_err(c->err, "range reply from %s has a bad value", c->host);
		return r;
	}
	memcpy(buf, val, n < cap ? n : cap);
	if (vlen)
		*vlen = n;
	if (mod_revision) {
		int64_t mr = 0;
		etcdc_json_int(c->body.p, c->body.len, "kvs.0.mod_revision", &mr);
		*mod_revision = mr;
	}
	return 0;
}

int etcdc_status(struct etcdc_conn *c, uint64_t *member_id, uint64_t *leader_id,
		 int64_t *raft_term)
{
	int r = conn_post(c, "/v3/maintenance/status", "{}", 2);
	if (r < 0)
		return r;
	uint64_t id = 0, leader = 0;
	int64_t term = 0;
	if (etcdc_json_uint(c->body.p, c->body.len, "header.member_id", &id) < 0 ||
	    etcdc_json_uint(c->body.p, c->body.len, "leader", &leader) < 0) {
		set_err(c->err, "status reply from %s lacks member_id or leader", c->host);
		return -EPROTO;
	}
	etcdc_json_int(c->body.p, c->body.len, "raftTerm", &term);
	if (member_id)
		*member_id = id;
	if (leader_id)
		*leader_id = leader;
	if (raft_term)
		*raft_term = term;
	return 0;
}

/* ==== watch ================================================================================== */

struct etcdc_watch {
	struct etcdc_conn *c;    /* the stream's connection; c->body holds decoded payload */
	struct etcdc_chunked st; /* state of the chunked reply */
	struct buf msg;          /* the watch response whose events are being handed out */
	int nev, iev;            /* events in msg, and the next one to hand out */
	int64_t msg_rev;         /* msg's header.revision */
	struct buf kbuf, vbuf;   /* the current event's decoded key and value */
};

int etcdc_watch_fd(const struct etcdc_watch *w)
{
	return w->c->fd;
}

const char *etcdc_watch_errmsg(const struct etcdc_watch *w)
{
	return w->c->err;
}

void etcdc_watch_close(struct etcdc_watch *w)
{
	if (!w)
		return;
	etcdc_close(w->c);
	free(w->msg.p);
	free(w->kbuf.p);
	free(w->vbuf.p);
	free(w);
}

/*
 * Takes the next complete JSON message of the stream into w->msg, waiting until DEADLINE (< 0:
 * forever). Payload not yet forming a whole message stays in c->body.
 */
static int watch_next_message(struct etcdc_watch *w, int64_t deadline)
{
	struct etcdc_conn *c = w->c;
	for (;;) {
		ssize_t n = etcdc_json_value_end(c->body.p, c->body.len);
		if (n < 0) {
			set_err(c->err, "malformed watch message from %s", c->host);
			return -EPROTO;
		}
		if (n > 0) {
			w->msg.len = 0;
			int r = buf_append(&w->msg, c->body.p, (size_t)n);
			if (r < 0)
				return r;
			buf_consume(&c->body, (size_t)n);
			return 0;
		}
		if (w->st.done || c->fd < 0) {
			set_err(c->err, "watch stream from %s ended", c->host);
			return -ECONNRESET;
		}
		/* Decode what is buffered first, then read more. */
		if (c->in.len == 0) {
			ssize_t got = conn_read_some(c, deadline);
			if (got == -ETIMEDOUT)
				return -ETIMEDOUT;
			if (got <= 0) {
				set_err(c->err, "watch stream from %s broke", c->host);
				conn_disconnect(c);
				return got == 0 ? -ECONNRESET : (int)got;
			}
		}
		size_t used;
		ssize_t out = etcdc_chunked_decode(&w->st, c->in.p, c->in.len, &used);
		if (out < 0) {
			set_err(c->err, "bad chunked watch stream from %s", c->host);
			return (int)out;
		}
		int r = buf_append(&c->body, c->in.p, (size_t)out);
		if (r < 0)
			return r;
		buf_consume(&c->in, used);
	}
}

/* Interprets w->msg: 1 when it carries events (w->nev set), 0 for control messages, < 0 errors. */
static int watch_take_message(struct etcdc_watch *w, int *created)
{
	struct etcdc_conn *c = w->c;
	const char *m = w->msg.p, *v;
	size_t ml = w->msg.len, vl;
	char text[200];
	int flag;
	if (etcdc_json_find(m, ml, "error", &v, &vl) == 0) {
		int64_t code = 0;
		if (etcdc_json_string(m, ml, "error.message", text, sizeof text, NULL) == 0 ||
		    etcdc_json_string(m, ml, "error", text, sizeof text, NULL) == 0)
			set_err(c->err, "%s", text);
		else
			set_err(c->err, "watch error from %s", c->host);
		if (etcdc_json_int(m, ml, "error.grpc_code", &code) == 0 ||
		    etcdc_json_int(m, ml, "error.code", &code) == 0)
			return grpc_errno(code);
		return -EIO;
	}
	if (etcdc_json_find(m, ml, "result", &v, &vl) < 0) {
		set_err(c->err, "watch message from %s has no result", c->host);
		return -EPROTO;
	}
	if (etcdc_json_bool(m, ml, "result.canceled", &flag) == 0 && flag) {
		int64_t compacted = 0;
		if (etcdc_json_string(m, ml, "result.cancel_reason", text, sizeof text, NULL) == 0)
			set_err(c->err, "watch canceled: %s", text);
		else if (etcdc_json_int(m, ml, "result.compact_revision", &compacted) == 0)
			set_err(c->err, "watch canceled: revisions up to %" PRId64 " were compacted",
				compacted);
		else
			set_err(c->err, "watch on %s canceled", c->host);
		return -ECANCELED;
	}
	if (etcdc_json_bool(m, ml, "result.created", &flag) == 0 && flag && created)
		*created = 1;
	w->msg_rev = 0;
	etcdc_json_int(m, ml, "result.header.revision", &w->msg_rev);
	int n = 0;
	char path[48];
	for (;; n++) {
		snprintf(path, sizeof path, "result.events.%d", n);
		if (etcdc_json_find(m, ml, path, &v, &vl) < 0)
			break;
	}
	w->nev = n;
	w->iev = 0;
	return n > 0;
}

/* Decodes the base64 string at PATH of w->msg into B (empty when absent). */
static int watch_b64(struct etcdc_watch *w, const char *path, struct buf *b)
{
	const char *v;
	size_t vl, sl;
	b->len = 0;
	int r = etcdc_json_find(w->msg.p, w->msg.len, path, &v, &vl);
	if (r == -ENOENT)
		return buf_reserve(b, 1);
	if (r < 0)
		return r;
	if ((r = buf_reserve(b, vl * 2 + 8)) < 0)
		return r;
	if ((r = etcdc_json_string(w->msg.p, w->msg.len, path, b->p, vl + 1, &sl)) < 0)
		return r;
	ssize_t dl = etcdc_base64_decode(b->p, sl, b->p + vl + 1);
	if (dl < 0)
		return (int)dl;
	memmove(b->p, b->p + vl + 1, (size_t)dl);
	b->len = (size_t)dl;
	return 0;
}

static int watch_fill_event(struct etcdc_watch *w, struct etcdc_event *ev)
{
	char path[64], type[16];
	int i = w->iev++, r;
	const char *m = w->msg.p;
	size_t ml = w->msg.len;
	memset(ev, 0, sizeof *ev);
	snprintf(path, sizeof path, "result.events.%d.type", i);
	if (etcdc_json_string(m, ml, path, type, sizeof type, NULL) == 0 &&
	    strcmp(type, "DELETE") == 0)
		ev->type = ETCDC_EVENT_DELETE;
	snprintf(path, sizeof path, "result.events.%d.kv.key", i);
	if ((r = watch_b64(w, path, &w->kbuf)) < 0)
		goto bad;
	snprintf(path, sizeof path, "result.events.%d.kv.value", i);
	if ((r = watch_b64(w, path, &w->vbuf)) < 0)
		goto bad;
	ev->key = (const unsigned char *)w->kbuf.p;
	ev->klen = w->kbuf.len;
	ev->value = (const unsigned char *)w->vbuf.p;
	ev->vlen = w->vbuf.len;
	snprintf(path, sizeof path, "result.events.%d.kv.create_revision", i);
	etcdc_json_int(m, ml, path, &ev->create_revision);
	snprintf(path, sizeof path, "result.events.%d.kv.mod_revision", i);
	if (etcdc_json_int(m, ml, path, &ev->mod_revision) < 0) {
		r = -EPROTO;
		goto bad;
	}
	snprintf(path, sizeof path, "result.events.%d.kv.version", i);
	etcdc_json_int(m, ml, path, &ev->version);
	ev->header_revision = w->msg_rev;
	return 1;
bad:
	set_err(w->c->err, "malformed watch event from %s", w->c->host);
	return r;
}

int etcdc_watch_next(struct etcdc_watch *w, int timeout_ms, struct etcdc_event *ev)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	for (;;) {
		if (w->iev < w->nev)
			return watch_fill_event(w, ev);
		int r = watch_next_message(w, deadline);
		if (r < 0)
			return r;
		if ((r = watch_take_message(w, NULL)) < 0)
			return r;
	}
}

int etcdc_watch_open(const char *endpoint, const void *key, size_t klen, int flags,
		     int64_t start_revision, int timeout_ms, struct etcdc_watch **out)
{
	struct etcdc_watch *w = calloc(1, sizeof *w);
	struct buf b = {0};
	int r;
	if (!w)
		return -ENOMEM;
	if ((r = etcdc_connect(endpoint, timeout_ms, &w->c)) < 0) {
		free(w);
		return r;
	}
	int64_t deadline = now_ms() + w->c->timeout_ms;
	r = buf_append(&b, "{\"create_request\":{", 19);
	if (r == 0)
		r = append_b64_field(&b, "key", key, klen);
	if (r == 0 && (flags & ETCDC_WATCH_PREFIX)) {
		/* range_end: the key with its last byte below 0xff incremented; "\0" for all keys. */
		unsigned char *end = malloc(klen + 1);
		size_t el = klen;
		if (!end) {
			r = -ENOMEM;
		} else {
			memcpy(end, key, klen);
			while (el > 0 && end[el - 1] == 0xff)
				el--;
			if (el > 0)
				end[el - 1]++;
			else
				end[0] = 0, el = 1;
			r = buf_append(&b, ",", 1);
			if (r == 0)
				r = append_b64_field(&b, "range_end", end, el);
			free(end);
		}
	}
	if (r == 0 && start_revision > 0) {
		char rev[48];
		int n = snprintf(rev, sizeof rev, ",\"start_revision\":\"%" PRId64 "\"", start_revision);
		r = buf_append(&b, rev, (size_t)n);
	}
	if (r == 0)
		r = buf_append(&b, "}}", 2);
	if (r == 0)
		r = conn_build_request(w->c, "/v3/watch", b.p, b.len);
	free(b.p);
	if (r == 0)
		r = conn_exchange(w->c, 1, deadline);
	if (r == 0 && (w->c->head.status != 200 || !w->c->head.chunked)) {
		r = conn_read_body(w->c, deadline);
		if (r == 0)
			r = w->c->head.status != 200 ? http_error(w->c) : -EPROTO;
	}
	w->c->body.len = 0;
	int created = 0;
	while (r == 0 && !created) {
		r = watch_next_message(w, deadline);
		if (r == 0) {
			r = watch_take_message(w, &created);
			r = r < 0 ? r : 0;
		}
	}
	if (r < 0) {
		/* The caller cannot ask a freed watch for its message: print nothing, keep errno. */
		etcdc_watch_close(w);
		return r;
	}
	*out = w;
	return 0;
}
