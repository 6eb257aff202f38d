/*
 * test_etcd_client.c: unit tests of the pure parts of the etcd gateway client used by the
 * benchmarks (tests/bench/etcd/etcd_client.h): base64, JSON field extraction, HTTP response heads
 * and the chunked framing of a watch stream, on replies captured from etcd 3.4.23's gateway. No
 * etcd is needed: nothing here opens a socket.
 */
#include "check.h"
#include "etcd_client.h"

#include <errno.h>

/* ---- base64 ---- */

CHECK_TEST(base64_known_answers)
{
	/* RFC 4648 section 10. */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
					    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char out[16];
		unsigned char back[16];
		size_t n = strlen(plain[i]);
		CHECK_EQ(etcdc_base64_encode(plain[i], n, out), strlen(coded[i]));
		CHECK_EQ(ETCDC_BASE64_LEN(n), strlen(coded[i]));
		CHECK_STR_EQ(out, coded[i]);
		CHECK_EQ(etcdc_base64_decode(coded[i], strlen(coded[i]), back), (ssize_t)n);
		CHECK_MEM_EQ(back, plain[i], n);
	}
	unsigned char b[16];
	/* Padding is optional on input. */
	CHECK_EQ(etcdc_base64_decode("Zm9vYg", 6, b), 4);
	CHECK_MEM_EQ(b, "foob", 4);
	CHECK_EQ(etcdc_base64_decode("Zm8", 3, b), 2);
	/* Every byte value through the whole alphabet. */
	CHECK_EQ(etcdc_base64_decode("+/8=", 4, b), 2);
	CHECK_EQ(b[0], 0xfb);
	CHECK_EQ(b[1], 0xff);
}

CHECK_TEST(base64_rejects_garbage)
{
	unsigned char b[16];
	CHECK_EQ(etcdc_base64_decode("Zm9v!", 5, b), -EINVAL);
	CHECK_EQ(etcdc_base64_decode("Z", 1, b), -EINVAL);      /* a lone sextet is no byte */
	CHECK_EQ(etcdc_base64_decode("Zg=", 3, b), -EINVAL);    /* half a padding */
	CHECK_EQ(etcdc_base64_decode("Zg==Zg==", 8, b), -EINVAL); /* padding in the middle */
	CHECK_EQ(etcdc_base64_decode("Zm 9v", 5, b), -EINVAL);
	CHECK_EQ(etcdc_base64_decode("bad!!", 5, b), -EINVAL);
}

CHECK_TEST(base64_roundtrip_random)
{
	uint64_t x = check_seed() | 1;
	unsigned char in[300], back[300 + 3];
	char coded[ETCDC_BASE64_LEN(300) + 1];
	for (size_t n = 0; n <= sizeof in; n++) {
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			in[i] = (unsigned char)x;
		}
		size_t cl = etcdc_base64_encode(in, n, coded);
		CHECK_EQ(cl, ETCDC_BASE64_LEN(n));
		CHECK_EQ(etcdc_base64_decode(coded, cl, back), (ssize_t)n);
		CHECK_MEM_EQ(back, in, n);
	}
}

/* ---- JSON ---- */

/* A serializable range reply of etcd 3.4.23's gateway, as captured. */
static const char range_reply[] =
	"{\"header\":{\"cluster_id\":\"5450334807165458585\",\"member_id\":\"16902658749806261621\","
	"\"revision\":\"2\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\","
	"\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}";

CHECK_TEST(json_finds_fields_of_a_range_reply)
{
	const char *j = range_reply, *v;
	size_t n = strlen(j), vl;
	int64_t i;
	char s[64];
	CHECK_EQ(etcdc_json_int(j, n, "header.revision", &i), 0);
	CHECK_EQ(i, 2);
	CHECK_EQ(etcdc_json_int(j, n, "header.member_id", &i), -EPROTO); /* above INT64_MAX */
	uint64_t id;
	CHECK_EQ(etcdc_json_uint(j, n, "header.member_id", &id), 0);
	CHECK_EQ_U64(id, 16902658749806261621u);
	CHECK_EQ(etcdc_json_int(j, n, "count", &i), 0);
	CHECK_EQ(i, 1);
	CHECK_EQ(etcdc_json_string(j, n, "kvs.0.value", s, sizeof s, &vl), 0);
	CHECK_STR_EQ(s, "YmFy");
	CHECK_EQ(vl, 4);
	CHECK_EQ(etcdc_json_string(j, n, "kvs.0.key", s, sizeof s, NULL), 0);
	CHECK_STR_EQ(s, "Zm9v");
	CHECK_EQ(etcdc_json_find(j, n, "kvs.0", &v, &vl), 0);
	CHECK_EQ(v[0], '{');
	CHECK_EQ(v[vl - 1], '}');
	CHECK_EQ(etcdc_json_find(j, n, "", &v, &vl), 0);
	CHECK_EQ(vl, n);
	/* Missing members and indexes, and paths through scalars. */
	CHECK_EQ(etcdc_json_find(j, n, "kvs.1", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find(j, n, "kvs.x", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find(j, n, "more", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find(j, n, "count.0", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find(j, n, "header.rev", &v, &vl), -ENOENT); /* prefix of a name */
	CHECK_EQ(etcdc_json_string(j, n, "kvs", s, sizeof s, NULL), -EPROTO);
	CHECK_EQ(etcdc_json_string(j, n, "kvs.0.value", s, 4, NULL), -ENOBUFS);
}

CHECK_TEST(json_int_limits)
{
	/* member_id is a uint64 that can exceed INT64_MAX: etcdc_json_int refuses, not wraps. */
	const char *j = "{\"id\":\"18446744073709551615\",\"ok\":\"9223372036854775807\","
			"\"neg\":-9223372036854775808,\"bad\":\"12x\",\"empty\":\"\"}";
	size_t n = strlen(j);
	int64_t i;
	uint64_t u;
	CHECK_EQ(etcdc_json_int(j, n, "id", &i), -EPROTO);
	CHECK_EQ(etcdc_json_uint(j, n, "id", &u), 0);
	CHECK_EQ_U64(u, UINT64_MAX);
	CHECK_EQ(etcdc_json_uint(j, n, "neg", &u), -EPROTO);
	CHECK_EQ(etcdc_json_uint(j, n, "ok", &u), 0);
	CHECK_EQ_U64(u, INT64_MAX);
	CHECK_EQ(etcdc_json_int(j, n, "ok", &i), 0);
	CHECK_EQ(i, INT64_MAX);
	CHECK_EQ(etcdc_json_int(j, n, "neg", &i), 0);
	CHECK_EQ(i, INT64_MIN);
	CHECK_EQ(etcdc_json_int(j, n, "bad", &i), -EPROTO);
	CHECK_EQ(etcdc_json_int(j, n, "empty", &i), -EPROTO);
}

CHECK_TEST(json_nesting_whitespace_escapes_and_types)
{
	const char *j = " { \"a\" : [ 1 , {\"b\":\"x}\\\"]\"} , [true, null] ] ,\n"
			"\t\"s\":\"q\\\"\\\\\\/\\n\\u0026\\u00e9\\ud83d\\ude00\", \"t\":true,"
			"\"f\":false, \"num\": -12.5e3, \"n\":7 } ";
	size_t n = strlen(j), vl;
	const char *v;
	char s[64];
	int b;
	int64_t i;
	CHECK_EQ(etcdc_json_string(j, n, "a.1.b", s, sizeof s, NULL), 0);
	CHECK_STR_EQ(s, "x}\"]");
	CHECK_EQ(etcdc_json_bool(j, n, "a.2.0", &b), 0);
	CHECK_EQ(b, 1);
	CHECK_EQ(etcdc_json_bool(j, n, "a.2.1", &b), -EPROTO); /* null is no boolean */
	CHECK_EQ(etcdc_json_find(j, n, "a.2.1", &v, &vl), 0);
	CHECK_EQ(vl, 4);
	CHECK_EQ(etcdc_json_string(j, n, "s", s, sizeof s, NULL), 0);
	CHECK_STR_EQ(s, "q\"\\/\n&\xc3\xa9\xf0\x9f\x98\x80");
	CHECK_EQ(etcdc_json_bool(j, n, "t", &b), 0);
	CHECK_EQ(b, 1);
	CHECK_EQ(etcdc_json_bool(j, n, "f", &b), 0);
	CHECK_EQ(b, 0);
	CHECK_EQ(etcdc_json_find(j, n, "num", &v, &vl), 0);
	CHECK_EQ(vl, 7);
	CHECK_EQ(etcdc_json_int(j, n, "num", &i), -EPROTO); /* not an integer */
	CHECK_EQ(etcdc_json_int(j, n, "n", &i), 0);
	CHECK_EQ(i, 7);
	CHECK_EQ(etcdc_json_int(j, n, "a.0", &i), 0);
	CHECK_EQ(i, 1);
}

CHECK_TEST(json_malformed_is_eproto)
{
	const char *v;
	size_t vl;
	static const char *const bad[] = {
		"{\"a\" 1}", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\":[1}", "{a:1}", "{\"a\":\"x",
		"{\"a\":tru}", "{\"a\":1",
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		int r = etcdc_json_find(bad[k], strlen(bad[k]), "b", &v, &vl);
		if (r != -EPROTO)
			CHECK_FAIL("%s: %d", bad[k], r);
	}
	/* A name that is not there, in a well-formed text, is ENOENT, not EPROTO. */
	CHECK_EQ(etcdc_json_find("{}", 2, "a", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find("[]", 2, "0", &v, &vl), -ENOENT);
	CHECK_EQ(etcdc_json_find("", 0, "a", &v, &vl), -EPROTO);
}

CHECK_TEST(json_value_end_frames_messages)
{
	const char *two = "{\"result\":{\"x\":\"}{\"}}\n{\"result\":{}}\n";
	ssize_t n1 = etcdc_json_value_end(two, strlen(two));
	CHECK_EQ(n1, strchr(two, '\n') - two);
	/* The second one counts the newline before it. */
	CHECK_EQ(etcdc_json_value_end(two + n1, strlen(two) - (size_t)n1),
		 (ssize_t)strlen("\n{\"result\":{}}"));
	/* Every proper prefix of a message is incomplete, never an error. */
	const char *m = "{\"a\":[1,2,{\"b\":\"c\\\"\"}],\"t\":true}";
	for (size_t k = 0; k < strlen(m); k++)
		CHECK_EQ(etcdc_json_value_end(m, k), 0);
	CHECK_EQ(etcdc_json_value_end(m, strlen(m)), (ssize_t)strlen(m));
	CHECK_EQ(etcdc_json_value_end("  \n", 3), 0);
	CHECK_EQ(etcdc_json_value_end("12", 2), 0); /* a number may go on */
	CHECK_EQ(etcdc_json_value_end("12 ", 3), 2);
	CHECK_EQ(etcdc_json_value_end("{]", 2), -EPROTO);
	CHECK_EQ(etcdc_json_value_end("]", 1), -EPROTO);
	CHECK_EQ(etcdc_json_value_end("Grpc-Trailer", 12), -EPROTO);
	/* Deeper than 64 levels is refused rather than overflowing the bracket stack. */
	char deep[200];
	memset(deep, '[', 100);
	CHECK_EQ(etcdc_json_value_end(deep, 100), -EPROTO);
}

/* ---- HTTP heads ---- */

CHECK_TEST(http_head_of_a_put_reply)
{
	const char *r = "HTTP/1.1 200 OK\r\n"
			"Access-Control-Allow-Origin: *\r\n"
			"Content-Type: application/json\r\n"
			"Grpc-Metadata-Content-Type: application/grpc\r\n"
			"Date: Sun, 22 Nov 2026 21:21:55 GMT\r\n"
			"Content-Length: 113\r\n"
			"\r\n"
			"{\"header\":{}}";
	struct etcdc_http_head h;
	ssize_t hl = etcdc_http_parse_head(r, strlen(r), &h);
	CHECK_EQ(hl, (ssize_t)(strstr(r, "\r\n\r\n") + 4 - r));
	CHECK_EQ(h.status, 200);
	CHECK_EQ(h.content_length, 113);
	CHECK_EQ(h.chunked, 0);
	CHECK_EQ(h.close, 0);
	/* Every cut before the empty line is incomplete. */
	for (ssize_t k = 0; k < hl; k++)
		CHECK_EQ(etcdc_http_parse_head(r, (size_t)k, &h), 0);
}

CHECK_TEST(http_head_of_an_error_and_a_stream)
{
	const char *e = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
			"Trailer: Grpc-Trailer-Content-Type\r\ntransfer-encoding: Chunked\r\n\r\n";
	struct etcdc_http_head h;
	CHECK_EQ(etcdc_http_parse_head(e, strlen(e), &h), (ssize_t)strlen(e));
	CHECK_EQ(h.status, 400);
	CHECK_EQ(h.chunked, 1);
	CHECK_EQ(h.content_length, -1);
	const char *c = "HTTP/1.1 503 Service Unavailable\nConnection: keep-alive, close\n\nxx";
	CHECK_EQ(etcdc_http_parse_head(c, strlen(c), &h), (ssize_t)strlen(c) - 2);
	CHECK_EQ(h.status, 503);
	CHECK_EQ(h.close, 1);
	const char *old = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
	CHECK_GT(etcdc_http_parse_head(old, strlen(old), &h), 0);
	CHECK_EQ(h.close, 1);
	const char *oldka = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n";
	CHECK_GT(etcdc_http_parse_head(oldka, strlen(oldka), &h), 0);
	CHECK_EQ(h.close, 0);
}

CHECK_TEST(http_head_malformed)
{
	struct etcdc_http_head h;
	static const char *const bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
		if (etcdc_http_parse_head(bad[k], strlen(bad[k]), &h) != -EPROTO)
			CHECK_FAIL("accepted: %s", bad[k]);
	/* A head that never ends is refused once it is absurdly long. */
	size_t big = 70 * 1024;
	char *junk = malloc(big);
	CHECK(junk);
	memcpy(junk, "HTTP/1.1 200 OK\r\n", 17);
	memset(junk + 17, 'x', big - 17);
	ssize_t r = etcdc_http_parse_head(junk, big, &h);
	free(junk);
	CHECK_EQ(r, -EPROTO);
}

/* ---- chunked framing ---- */

/* The body of a watch reply, as etcd 3.4.23's gateway sent it: a created message, one event
 * message, then (here added) the end of the stream with a trailer, and the next response. */
static const char watch_stream[] =
	"8c\r\n"
	"{\"result\":{\"header\":{\"cluster_id\":\"5450334807165458585\",\"member_id\":"
	"\"16902658749806261621\",\"revision\":\"2\",\"raft_term\":\"2\"},\"created\":true}}\n"
	"\r\n"
	"e4\r\n"
	"{\"result\":{\"header\":{\"cluster_id\":\"5450334807165458585\",\"member_id\":"
	"\"16902658749806261621\",\"revision\":\"3\",\"raft_term\":\"2\"},\"events\":[{\"kv\":"
	"{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\","
	"\"value\":\"YmF6\"}}]}}\n"
	"\r\n"
	"0\r\n"
	"Grpc-Trailer-Content-Type: application/grpc\r\n"
	"\r\n"
	"HTTP/1.1 200 OK\r\n";

CHECK_TEST(chunked_decodes_a_watch_stream_whole)
{
	char buf[sizeof watch_stream];
	size_t len = sizeof watch_stream - 1, used;
	memcpy(buf, watch_stream, len);
	struct etcdc_chunked st;
	etcdc_chunked_init(&st);
	ssize_t out = etcdc_chunked_decode(&st, buf, len, &used);
	CHECK_EQ(out, 0x8c + 0xe4);
	CHECK_EQ(st.done, 1);
	CHECK_EQ(used, len - strlen("HTTP/1.1 200 OK\r\n"));
	CHECK_EQ(buf[0x8c - 1], '\n');
	/* The payload splits into the two messages, which parse. */
	ssize_t m1 = etcdc_json_value_end(buf, (size_t)out);
	CHECK_EQ(m1, 0x8c - 1);
	int created = 0;
	CHECK_EQ(etcdc_json_bool(buf, (size_t)m1, "result.created", &created), 0);
	CHECK_EQ(created, 1);
	const char *m2 = buf + m1;
	ssize_t l2 = etcdc_json_value_end(m2, (size_t)(out - m1));
	CHECK_GT(l2, 0);
	int64_t rev;
	char key[16];
	CHECK_EQ(etcdc_json_int(m2, (size_t)l2, "result.events.0.kv.mod_revision", &rev), 0);
	CHECK_EQ(rev, 3);
	CHECK_EQ(etcdc_json_string(m2, (size_t)l2, "result.events.0.kv.key", key, sizeof key, NULL),
		 0);
	CHECK_STR_EQ(key, "Zm9v");
	const char *v;
	size_t vl;
	CHECK_EQ(etcdc_json_find(m2, (size_t)l2, "result.events.1", &v, &vl), -ENOENT);
	/* Only whitespace remains. */
	CHECK_EQ(etcdc_json_value_end(m2 + l2, (size_t)(out - m1 - l2)), 0);
}

/* Feeds SRC to the decoder in pieces of the sizes the xorshift state X picks (1..MAXPIECE);
 * returns the payload length in OUT and the bytes consumed in *used. */
static ssize_t decode_in_pieces(const char *src, size_t len, uint64_t *x, size_t maxpiece,
				char *out, size_t *used, int *done)
{
	struct etcdc_chunked st;
	etcdc_chunked_init(&st);
	size_t pos = 0, olen = 0;
	char piece[512];
	while (pos < len && !st.done) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		size_t n = 1 + (size_t)(*x % maxpiece);
		if (n > len - pos)
			n = len - pos;
		memcpy(piece, src + pos, n);
		size_t u;
		ssize_t o = etcdc_chunked_decode(&st, piece, n, &u);
		if (o < 0)
			return o;
		if (!st.done && u != n)
			return -1000; /* must consume everything until the end */
		memcpy(out + olen, piece, (size_t)o);
		olen += (size_t)o;
		pos += u;
	}
	*used = pos;
	*done = st.done;
	return (ssize_t)olen;
}

CHECK_TEST(chunked_any_split_gives_the_same_payload)
{
	char whole[sizeof watch_stream], split[sizeof watch_stream];
	size_t len = sizeof watch_stream - 1, used_whole = 0, used = 0;
	memcpy(whole, watch_stream, len);
	struct etcdc_chunked st;
	etcdc_chunked_init(&st);
	ssize_t ow = etcdc_chunked_decode(&st, whole, len, &used_whole);
	CHECK_GT(ow, 0);
	uint64_t x = check_seed() | 1;
	for (size_t maxpiece = 1; maxpiece <= 64; maxpiece++) {
		for (int rep = 0; rep < 20; rep++) {
			int done = 0;
			ssize_t o = decode_in_pieces(watch_stream, len, &x, maxpiece, split, &used,
						     &done);
			CHECK_EQ(o, ow);
			CHECK_MEM_EQ(split, whole, (size_t)ow);
			CHECK_EQ(used, used_whole);
			CHECK_EQ(done, 1);
		}
	}
}

CHECK_TEST(chunked_extensions_bare_lf_and_errors)
{
	char a[] = "3;name=v\r\nabc\r\nA\nabcdefghij\n0\n\nrest";
	struct etcdc_chunked st;
	size_t used;
	etcdc_chunked_init(&st);
	ssize_t o = etcdc_chunked_decode(&st, a, strlen(a), &used);
	CHECK_EQ(o, 13);
	CHECK_MEM_EQ(a, "abcabcdefghij", 13);
	CHECK_EQ(st.done, 1);
	CHECK_EQ(used, strlen("3;name=v\r\nabc\r\nA\nabcdefghij\n0\n\n"));
	static const char *const bad[] = {
		"x\r\n",              /* no hex digit */
		"3\r\nabcX\r\n",      /* data longer than its size */
		"3\rX",               /* CR without LF */
		"FFFFFFFFFFFFFFFF\r\n", /* absurd size */
		"0\r\n\rX",           /* bad end of trailers */
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		char b[64];
		strcpy(b, bad[k]);
		etcdc_chunked_init(&st);
		if (etcdc_chunked_decode(&st, b, strlen(b), &used) != -EPROTO)
			CHECK_FAIL("accepted: %s", bad[k]);
	}
}

CHECK_SUITE("etcd-client", CHECK_CASE(base64_known_answers), CHECK_CASE(base64_rejects_garbage),
	    CHECK_CASE(base64_roundtrip_random), CHECK_CASE(json_finds_fields_of_a_range_reply),
	    CHECK_CASE(json_int_limits),
	    CHECK_CASE(json_nesting_whitespace_escapes_and_types),
	    CHECK_CASE(json_malformed_is_eproto), CHECK_CASE(json_value_end_frames_messages),
	    CHECK_CASE(http_head_of_a_put_reply), CHECK_CASE(http_head_of_an_error_and_a_stream),
	    CHECK_CASE(http_head_malformed), CHECK_CASE(chunked_decodes_a_watch_stream_whole),
	    CHECK_CASE(chunked_any_split_gives_the_same_payload),
	    CHECK_CASE(chunked_extensions_bare_lf_and_errors))
