/*
 * check.h: raftfs's one C unit-test runner, used by every module's tests.
 *
 * A test file defines cases with CHECK_TEST(name) { ... }, lists them in a CHECK_SUITE table and
 * calls check_main() from main(). Each case runs in the same process (so AddressSanitizer's leak
 * check at exit covers all of them); a failed CHECK_* records file, line and the values compared,
 * then abandons that case with longjmp and goes on with the next. The run prints one line per case,
 * a recap of each failed case's first failure and a closing `N passed, M failed` line; the exit
 * status is 1 when any case failed (without the leak check: a failed case leaks what it held).
 *
 *   ./test-wal-crc              run every case
 *   ./test-wal-crc name...      run only the named cases
 *   CHECK_SEED=123 ./test-x     cases that use check_seed() take their randomness from 123
 *
 * Header-only on purpose: there is nothing to link, and each test binary gets its own copy of the
 * runner's state. Everything here is prefixed check_ / CHECK_.
 */
#ifndef RAFTFS_CHECK_H
#define RAFTFS_CHECK_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct check_case {
	const char *name;  /* printed and matched against argv */
	void (*fn)(void);  /* the case body */
};

/* Runner state: one copy per test binary. */
static jmp_buf check__jmp;          /* where a failed CHECK_* returns to */
static int check__failed;           /* the running case has failed */
static int check__skipped;          /* the running case was skipped (CHECK_SKIP_IF) */
static const char *check__current;  /* name of the running case */
static char check__why[16][512];    /* the first failure of each failed case, for the recap */
static int check__n_why;

#define CHECK_TEST(name) static void name(void)
#define CHECK_CASE(name) { #name, name }

static inline void check__fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

static inline void check__fail(const char *file, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *name = check__current ? check__current : "?";
	fprintf(stdout, "  %s:%d: %s: %s\n", file, line, name, msg);
	fflush(stdout);
	if (check__n_why < (int)(sizeof check__why / sizeof check__why[0]))
		snprintf(check__why[check__n_why++], sizeof check__why[0], "%s: %s:%d: %s", name,
			 file, line, msg);
	check__failed = 1;
	longjmp(check__jmp, 1);
}

/*
 * Skips the case when cond holds (a missing /dev/fuse, say), saying why. A run whose cases were all
 * skipped exits 77, which meson reports as skipped.
 */
#define CHECK_SKIP_IF(cond, why)                                                                   \
	do {                                                                                       \
		if (cond) {                                                                        \
			printf("  skipped: %s\n", (why));                                          \
			check__skipped = 1;                                                        \
			longjmp(check__jmp, 1);                                                    \
		}                                                                                  \
	} while (0)

/* Fails the case, with a printf-style message. */
#define CHECK_FAIL(...) check__fail(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check__fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                \
	} while (0)

#define CHECK_INT_OP(a, op, b)                                                                     \
	do {                                                                                       \
		long long check__a = (long long)(a), check__b = (long long)(b);                    \
		if (!(check__a op check__b))                                                       \
			check__fail(__FILE__, __LINE__, "%s %s %s failed: %lld vs %lld", #a, #op,  \
				    #b, check__a, check__b);                                       \
	} while (0)

#define CHECK_EQ(a, b) CHECK_INT_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_INT_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_INT_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_INT_OP(a, <=, b)
#define CHECK_GT(a, b) CHECK_INT_OP(a, >, b)
#define CHECK_GE(a, b) CHECK_INT_OP(a, >=, b)

/* Unsigned 64-bit equality, printed in hex (CRCs, ids). */
#define CHECK_EQ_U64(a, b)                                                                         \
	do {                                                                                       \
		uint64_t check__a = (uint64_t)(a), check__b = (uint64_t)(b);                       \
		if (check__a != check__b)                                                          \
			check__fail(__FILE__, __LINE__, "%s == %s failed: 0x%" PRIx64              \
				    " vs 0x%" PRIx64, #a, #b, check__a, check__b);                 \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
	do {                                                                                       \
		const char *check__a = (a), *check__b = (b);                                       \
		if (!check__a || !check__b || strcmp(check__a, check__b) != 0)                     \
			check__fail(__FILE__, __LINE__, "%s == %s failed: \"%s\" vs \"%s\"", #a,   \
				    #b, check__a ? check__a : "(null)",                            \
				    check__b ? check__b : "(null)");                               \
	} while (0)

#define CHECK_MEM_EQ(a, b, n)                                                                      \
	do {                                                                                       \
		if (memcmp((a), (b), (n)) != 0)                                                    \
			check__fail(__FILE__, __LINE__, "memcmp(%s, %s, %s) != 0", #a, #b, #n);    \
	} while (0)

/*
 * The seed for randomized cases: CHECK_SEED from the environment, else the time. The runner prints
 * it so any failing run can be replayed exactly.
 */
static inline uint64_t check_seed(void)
{
	static uint64_t seed;
	static int have;
	if (!have) {
		const char *s = getenv("CHECK_SEED");
		seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
		have = 1;
		printf("# seed %" PRIu64 " (replay with CHECK_SEED=%" PRIu64 ")\n", seed, seed);
	}
	return seed;
}

static inline int check__selected(const char *name, int argc, char **argv)
{
	if (argc <= 1)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

/*
 * Runs one case; returns 1 when it failed, 2 when it was skipped. Kept apart so no local of the
 * caller spans setjmp.
 */
static __attribute__((noinline)) int check__run_one(void (*fn)(void))
{
	check__failed = 0;
	check__skipped = 0;
	if (setjmp(check__jmp) == 0)
		fn();
	return check__failed ? 1 : check__skipped ? 2 : 0;
}

/* Runs the cases (all, or those named in argv) and returns the process exit status. */
static inline int check_main(const char *suite, const struct check_case *cases, size_t n, int argc,
			     char **argv)
{
	int passed = 0, failed = 0, skipped = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# suite %s\n", suite);
	for (size_t i = 0; i < n; i++) {
		if (!check__selected(cases[i].name, argc, argv))
			continue;
		check__current = cases[i].name;
		int r = check__run_one(cases[i].fn);
		if (r == 1) {
			printf("FAIL %s\n", cases[i].name);
			failed++;
		} else if (r == 2) {
			printf("skip %s\n", cases[i].name);
			skipped++;
		} else {
			printf("ok   %s\n", cases[i].name);
			passed++;
		}
	}
	check__current = NULL;
	if (passed + failed + skipped == 0) {
		printf("no case matched\n");
		return 2;
	}
	for (int i = 0; i < check__n_why; i++)
		printf("FAILED %s\n", check__why[i]);
	if (skipped)
		printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	else
		printf("%d passed, %d failed\n", passed, failed);
	if (failed) {
		/*
		 * A failed case left by longjmp and leaked what it held: leave without the leak
		 * check's report, which would bury the failures above under allocation traces.
		 */
		fflush(NULL);
		_exit(1);
	}
	return passed ? 0 : 77;
}

#define CHECK_SUITE(suite, ...)                                                                    \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		static const struct check_case cases[] = {__VA_ARGS__};                            \
		return check_main(suite, cases, sizeof cases / sizeof cases[0], argc, argv);       \
	}

#endif
