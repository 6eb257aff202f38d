/*
 * fuzz_driver.c: runs a fuzz target (a file defining LLVMFuzzerTestOneInput:
 * tests/wal/fuzz_record.c, tests/store/fuzz_snapshot.c) without libFuzzer, for the gcc sanitizer
 * build: each seed input as is, then random mutations of them (bit flips, byte sets, truncations,
 * splices). CHECK_SEED picks the randomness; FUZZ_ITERS the number of mutations (default 200k).
 *   ./fuzz-...-driver seed-file...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	uint8_t *seeds[64];
	size_t lens[64];
	int n = 0;
	for (int i = 1; i < argc && n < 64; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		seeds[n] = malloc(1 << 16);
		lens[n] = fread(seeds[n], 1, 1 << 16, f);
		fclose(f);
		LLVMFuzzerTestOneInput(seeds[n], lens[n]);
		n++;
	}
	if (!n)
		return 0;
	const char *e = getenv("CHECK_SEED");
	uint64_t s = (e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL)) | 1;
	printf("# seed %llu\n", (unsigned long long)s);
	const char *it = getenv("FUZZ_ITERS");
	long iters = it ? atol(it) : 200000;
	uint8_t *buf = malloc(1 << 17);
	for (long k = 0; k < iters; k++) {
		int a = (int)(rnd(&s) % (uint64_t)n);
		size_t len = lens[a];
		memcpy(buf, seeds[a], len);
		int muts = 1 + (int)(rnd(&s) % 4);
		for (int m = 0; m < muts && len; m++) {
			size_t p = (size_t)(rnd(&s) % len);
			switch (rnd(&s) % 5) {
			case 0:
				buf[p] ^= (uint8_t)(1u << (rnd(&s) % 8));
				break;
			case 1:
				buf[p] = (uint8_t)rnd(&s);
				break;
			case 2:
				len = p;
				break;
			case 3: { /* splice the tail of another seed */
				int b = (int)(rnd(&s) % (uint64_t)n);
				size_t q = lens[b] ? (size_t)(rnd(&s) % lens[b]) : 0;
				memcpy(buf + p, seeds[b] + q, lens[b] - q);
				len = p + lens[b] - q;
				break;
			}
			default:
				buf[p] = (uint8_t)(rnd(&s) % 2 ? 0x80 : 0xff);
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%ld mutations decoded without a fault\n", iters);
	free(buf);
	for (int i = 0; i < n; i++)
		free(seeds[i]);
	return 0;
}
