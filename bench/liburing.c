/*
 * The bench example's loop (uring-ops/examples/bench) written with liburing, for the side-by-side
 * comparison in bench/side-by-side.sh. Not part of the build or of CI: the script compiles it.
 *
 *   cc -O2 -o liburing-bench bench/liburing.c -luring
 *   liburing-bench nop|read [--depth N] [--batch N] [--secs S | --ops N] [--file PATH]
 *                  [--buffered] [--fixed]
 *
 * The loop is the one of the Rust tool (run.rs, `drive`): up to `depth` ops in flight, at most
 * `batch` queued per submit, and once `depth` are in flight one wait for `batch` completions;
 * one 4096-byte buffer per slot, aligned to 4096 and reused; random block offsets from the same
 * xorshift generator; every result checked (0 for a NOP, 4096 for a read). It prints the same
 * RESULT line, with layer=liburing, and the same "cpu:" line. A read file must exist (the Rust tool makes the temporary
 * one; the script passes it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: liburing-bench nop|read [--depth N] [--batch N] [--secs S | --ops N] "
			"[--file PATH] [--buffered] [--fixed]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned depth = 32, batch = 0;
	double secs = 2.0;
	unsigned long long limit = ~0ULL;
	const char *path = NULL;
	int read_mode, buffered = 0, fixed = 0;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "nop"))
		read_mode = 0;
	else if (!strcmp(argv[1], "read"))
		read_mode = 1;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--buffered")) {
			buffered = 1;
		} else if (!strcmp(a, "--fixed")) {
			fixed = 1;
		} else if (!v) {
			usage();
		} else if (!strcmp(a, "--depth")) {
			depth = strtoul(v, NULL, 10), i++;
		} else if (!strcmp(a, "--batch")) {
			batch = strtoul(v, NULL, 10), i++;
		} else if (!strcmp(a, "--secs")) {
			secs = strtod(v, NULL), i++;
		} else if (!strcmp(a, "--ops")) {
			limit = strtoull(v, NULL, 10), secs = 0, i++;
		} else if (!strcmp(a, "--file")) {
			path = v, i++;
		} else {
			usage();
		}
	}
	if (!batch)
		batch = read_mode ? 8 : 32;
	if (depth < 1 || depth > 4096 || batch < 1 || batch > depth || (read_mode && !path))
		usage();

	struct io_uring ring;
	int ret = io_uring_queue_init(depth, &ring, 0);
	if (ret < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	int fd = -1;
	unsigned long long blocks = 1;
	char *bufs = NULL;
	if (read_mode) {
		fd = open(path, O_RDONLY | (buffered ? 0 : O_DIRECT));
		if (fd < 0) {
			fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
			return 1;
		}
		off_t size = lseek(fd, 0, SEEK_END);
		blocks = size / BLOCK;
		if (!blocks) {
			fprintf(stderr, "%s is smaller than one block\n", path);
			return 1;
		}
		if (posix_memalign((void **)&bufs, BLOCK, (size_t)depth * BLOCK))
			return 1;
		memset(bufs, 0, (size_t)depth * BLOCK);
		if (fixed) {
			struct iovec *iov = calloc(depth, sizeof(*iov));
			for (unsigned i = 0; i < depth; i++) {
				iov[i].iov_base = bufs + (size_t)i * BLOCK;
				iov[i].iov_len = BLOCK;
			}
			if ((ret = io_uring_register_buffers(&ring, iov, depth)) < 0 ||
			    (ret = io_uring_register_files(&ring, &fd, 1)) < 0) {
				fprintf(stderr, "register: %s\n", strerror(-ret));
				return 1;
			}
			free(iov);
		}
	}

	unsigned *free_slots = malloc(depth * sizeof(unsigned));
	unsigned nfree = depth;
	for (unsigned i = 0; i < depth; i++)
		free_slots[i] = depth - 1 - i;
	uint64_t x = 0x9e3779b97f4a7c15ULL | 1; /* seed 1, as the tool's first thread */
	int expect = read_mode ? BLOCK : 0;
	unsigned in_flight = 0;
	unsigned long long queued = 0, done = 0;
	int stopping = 0;
	double cpu = cpu_now(), start = now(), deadline = start + secs;

	for (;;) {
		if (secs > 0 && !stopping && now() >= deadline)
			stopping = 1;
		unsigned k = 0;
		if (!stopping) {
			k = nfree < batch ? nfree : batch;
			if (limit - queued < k)
				k = limit - queued;
		}
		for (unsigned i = 0; i < k; i++) {
			unsigned slot = free_slots[--nfree];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (read_mode) {
				x ^= x >> 12;
				x ^= x << 25;
				x ^= x >> 27;
				uint64_t r = x * 0x2545f4914f6cdd1dULL;
				uint64_t off = (uint64_t)(((unsigned __int128)r * blocks) >> 64) * BLOCK;
				char *buf = bufs + (size_t)slot * BLOCK;
				if (fixed) {
					io_uring_prep_read_fixed(sqe, 0, buf, BLOCK, off, slot);
					sqe->flags |= IOSQE_FIXED_FILE;
				} else {
					io_uring_prep_read(sqe, fd, buf, BLOCK, off);
				}
			} else {
				io_uring_prep_nop(sqe);
			}
			io_uring_sqe_set_data64(sqe, slot);
		}
		in_flight += k;
		queued += k;
		if (!in_flight) {
			if (stopping || queued == limit)
				break;
			continue;
		}
		unsigned want = (in_flight == depth || k == 0) ? (batch < in_flight ? batch : in_flight) : 0;
		ret = io_uring_submit_and_wait(&ring, want);
		if (ret < 0) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->res != expect) {
				fprintf(stderr, "a %s op returned %d, expected %d\n",
					read_mode ? "read" : "nop", cqe->res, expect);
				return 1;
			}
			free_slots[nfree++] = (unsigned)cqe->user_data;
			n++;
		}
		io_uring_cq_advance(&ring, n);
		in_flight -= n;
		done += n;
	}
	double t = now() - start;
	cpu = cpu_now() - cpu;
	printf("RESULT mode=%s layer=liburing depth=%u batch=%u threads=1 secs=%.2f ops=%llu "
	       "ops_per_sec=%.0f\n",
	       read_mode ? "read" : "nop", depth, batch, t, done, done / t);
	printf("  cpu: %.1f ns per op (user and system time of the loop's thread)\n",
	       cpu * 1e9 / (done ? done : 1));
	io_uring_queue_exit(&ring);
	return 0;
}
