/*
 * wal.c: the segmented write-ahead log. A log is a directory of segments `%016x-%016x.wal`
 * (sequence, index of the first entry written to it), each starting with a crc record (the running
 * CRC-32C so far) and the metadata record, preallocated to the segment size and cut when full.
 * wal_open reads and checks every record from the segment holding the snapshot's index on, repairs
 * a torn tail, and leaves the last segment open for appending; wal_save appends a batch with one
 * pwrite and shares fdatasyncs between the threads waiting for one (group commit).
 */
#include "wal_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* An open log. Every field is guarded by mu, except dir, seg_size, meta and meta_len, which are set
 * before the log is handed out and read-only afterwards. */
struct wal {
	char *dir;                   /* the log directory */
	uint64_t seg_size;           /* preallocation and cut size */
	void *meta;                  /* metadata (owned) */
	size_t meta_len;             /* its length */
	pthread_mutex_t mu;          /* guards what follows */
	pthread_cond_t synced;       /* broadcast when a sync ends */
	int fd;                      /* the last segment, open read-write; -1 after close */
	uint64_t seq;                /* its sequence number */
	char seg_name[64];           /* its file name */
	uint64_t off;                /* end of the records written to it */
	uint32_t crc;                /* running crc after the last record */
	uint64_t last_index;         /* index of the last entry (the snapshot's when none) */
	struct wal_hard_state hs;    /* last hard state saved, copied into every new segment */
	int has_hs;                  /* hs holds one */
	uint8_t *buf;                /* encoding buffer of a batch */
	size_t buf_cap;              /* its capacity */
	uint8_t *ebuf;               /* one encoded entry */
	size_t ebuf_cap;             /* its capacity */
	uint64_t write_seq;          /* batches written so far */
	uint64_t synced_seq;         /* batches known durable */
	int syncing;                 /* a thread is in fdatasync without mu */
	int broken;                  /* an fsync failed: refuse everything */
	struct wal_read_result read; /* what wal_open read, until wal_read_all */
};

/* One segment file name parsed. */
struct seg {
	uint64_t seq;
	uint64_t first;
	char name[64];
};

/* ===================================== helpers ================================================== */

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 4096;
	while (c < need)
		c *= 2;
	uint8_t *b = realloc(*buf, c);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = c;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lists the segments of dir by sequence into *out (malloc'd). With clean, removes the temp files
 * a crash mid-cut left (only when no log is open on dir: a cut may be making one). */
static int list_segments(const char *dir, struct seg **out, size_t *n, int clean)
{
	DIR *d = opendir(dir);
	if (!d)
		return wal__err(-errno, "wal: cannot open log dir %s: %s", dir, strerror(errno));
	struct seg *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct seg s;
		size_t len = strlen(de->d_name);
		if (clean && len == 37 + 4 && strcmp(de->d_name + 37, ".tmp") == 0) {
			char *p = path_join(dir, de->d_name);
			if (p)
				unlink(p);
			free(p);
			continue;
		}
		char tail[8];
		if (len != 37 || sscanf(de->d_name, "%16" SCNx64 "-%16" SCNx64 "%5s", &s.seq,
					&s.first, tail) != 3 || strcmp(tail, ".wal") != 0)
			continue;
		memcpy(s.name, de->d_name, len + 1); /* len is 37 */
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct seg *nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = s;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof *v, seg_cmp);
	*out = v;
	*n = cnt;
	return 0;
}

/* The fatal path for a failed fsync/fdatasync: marks the log broken and runs the fatal hook. */
static int sync_failed(struct wal *w, const char *what, const char *path, int err)
{
	if (w)
		w->broken = 1;
	wal__fatal("wal: FATAL: %s %s%s%s failed: %s (the data on disk is unknown; not carrying "
		   "on)", what, w && path[0] != '/' ? w->dir : "", w && path[0] != '/' ? "/" : "",
		   path, strerror(err));
	return -EIO;
}

/* ================================== segment creation ============================================ */

/* Appends the frame of one record to buf at *pos, chaining *crc (not for crc records). */
static void put_record(uint8_t *buf, size_t *pos, uint32_t *crc, int64_t type, const void *data,
		       size_t len, int has_data)
{
	if (type != WAL_REC_CRC)
		*crc = wal_crc32c(*crc, data, len);
	*pos += wal__frame_encode(buf + *pos, type, *crc, data, len, has_data);
}

/*
 * Makes segment (seq, first) holding a crc record with w->crc, the metadata, the last hard state
 * and (with snap) a snapshot record: temp file, preallocate, write, fdatasync, rename, fsync dir.
 * On success *fd, *off and *crc describe it; w is unchanged. Called with mu held (or before w is
 * shared).
 */
static int segment_create(struct wal *w, uint64_t seq, uint64_t first,
			  const struct wal_snapshot_ref *snap, int *fd_out, uint64_t *off_out,
			  uint32_t *crc_out, char name[64])
{
	char tmpname[72];
	snprintf(name, 64, "%016" PRIx64 "-%016" PRIx64 ".wal", seq, first);
	snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
	char *path = path_join(w->dir, name), *tmp = path_join(w->dir, tmpname);
	uint8_t *hdr = NULL;
	int fd = -1, r;
	if (!path || !tmp) {
		r = -ENOMEM;
		goto out;
	}
	hdr = malloc(256 + w->meta_len);
	if (!hdr) {
		r = -ENOMEM;
		goto out;
	}
	size_t pos = 0;
	uint32_t crc = w->crc;
	put_record(hdr, &pos, &crc, WAL_REC_CRC, NULL, 0, 0);
	put_record(hdr, &pos, &crc, WAL_REC_METADATA, w->meta, w->meta_len, 1);
	if (w->has_hs) {
		uint8_t hb[33];
		size_t hl = wal__hard_state_encode(hb, &w->hs);
		put_record(hdr, &pos, &crc, WAL_REC_STATE, hb, hl, 1);
	}
	if (snap) {
		uint8_t sb[22];
		size_t sl = wal__snapref_encode(sb, *snap);
		put_record(hdr, &pos, &crc, WAL_REC_SNAPSHOT, sb, sl, 1);
	}
	fd = wal__open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		r = wal__err(-errno, "wal: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	int e = wal__fallocate(fd, (off_t)w->seg_size);
	if (e) {
		r = wal__err(-e, "wal: cannot preallocate %" PRIu64 " bytes for %s: %s",
			     w->seg_size, tmp, strerror(e));
		goto fail;
	}
	r = wal__pwrite_all(fd, hdr, pos, 0);
	if (r < 0) {
		r = wal__err(r, "wal: cannot write the header of %s: %s", tmp, strerror(-r));
		goto fail;
	}
	if (wal__fdatasync(fd) != 0) {
		r = sync_failed(w, "fdatasync", tmp, errno);
		goto fail;
	}
	if (wal__rename(tmp, path) != 0) {
		r = wal__err(-errno, "wal: cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	if (wal__fsync_dir(w->dir) != 0) {
		r = sync_failed(w, "fsync", w->dir, errno);
		close(fd);
		unlink(path); /* never append to a segment whose name may not be durable */
		fd = -1;
		goto out;
	}
	*fd_out = fd;
	*off_out = pos;
	*crc_out = crc;
	r = 0;
	goto out;
fail:
	close(fd);
	unlink(tmp);
out:
	free(hdr);
	free(path);
	free(tmp);
	return r;
}

/*
 * Cuts to a new segment when the current one is full: syncs and trims the old one, then makes the
 * next. Called with mu held; waits for a sync in flight (it uses the old descriptor).
 */
static int cut(struct wal *w)
{
	while (w->syncing)
		pthread_cond_wait(&w->synced, &w->mu);
	if (w->broken)
		return -EIO;
	if (w->off < w->seg_size)
		return 0; /* another thread cut meanwhile */
	if (ftruncate(w->fd, (off_t)w->off) != 0)
		wal__log("wal: cannot trim segment %016" PRIx64 " to %" PRIu64 " bytes: %s", w->seq,
			 w->off, strerror(errno));
	if (wal__fdatasync(w->fd) != 0)
		return sync_failed(w, "fdatasync of segment", w->seg_name, errno);
	w->synced_seq = w->write_seq;
	pthread_cond_broadcast(&w->synced);
	int fd;
	uint64_t off;
	uint32_t crc;
	char name[64];
	int r = segment_create(w, w->seq + 1, w->last_index + 1, NULL, &fd, &off, &crc, name);
	if (r < 0)
		return r;
	close(w->fd);
	w->fd = fd;
	w->seq++;
	w->off = off;
	w->crc = crc;
	memcpy(w->seg_name, name, sizeof w->seg_name);
	return 0;
}

/* Waits until batch target is durable, running the fdatasync when no thread is. mu held. */
static int sync_upto(struct wal *w, uint64_t target)
{
	while (w->synced_seq < target) {
		if (w->broken)
			return wal__err(-EIO, "wal: %s: an earlier fsync failed", w->dir);
		if (w->syncing) {
			pthread_cond_wait(&w->synced, &w->mu);
			continue;
		}
		uint64_t upto = w->write_seq;
		int fd = w->fd;
		w->syncing = 1;
		pthread_mutex_unlock(&w->mu);
		int r = wal__fdatasync(fd), err = errno;
		pthread_mutex_lock(&w->mu);
		w->syncing = 0;
		pthread_cond_broadcast(&w->synced);
		if (r != 0)
			return sync_failed(w, "fdatasync of segment", w->seg_name, err);
		if (upto > w->synced_seq)
			w->synced_seq = upto;
	}
	return 0;
}

/* ======================================= create ================================================= */

static struct wal *wal_alloc(const char *dir, const struct wal_options *opt)
{
	struct wal *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->dir = strdup(dir);
	if (!w->dir) {
		free(w);
		return NULL;
	}
	w->seg_size = opt && opt->segment_size ? opt->segment_size : WAL_SEGMENT_SIZE;
	w->fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->synced, NULL);
	return w;
}

static void wal_free(struct wal *w)
{
	if (w->fd >= 0)
		close(w->fd);
	wal_read_result_free(&w->read);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->synced);
	free(w->meta);
	free(w->buf);
	free(w->ebuf);
	free(w->dir);
	free(w);
}

int wal_create(const char *dir, const void *metadata, size_t metadata_len,
	       const struct wal_options *opt, struct wal **out)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return wal__err(-errno, "wal: cannot create log dir %s: %s", dir, strerror(errno));
	struct seg *segs;
	size_t n;
	int r = list_segments(dir, &segs, &n, 1);
	if (r < 0)
		return r;
	free(segs);
	if (n)
		return wal__err(-EEXIST, "wal: %s already holds a log", dir);
	struct wal *w = wal_alloc(dir, opt);
	if (!w)
		return -ENOMEM;
	w->meta = malloc(metadata_len ? metadata_len : 1);
	if (!w->meta) {
		wal_free(w);
		return -ENOMEM;
	}
	if (metadata_len)
		memcpy(w->meta, metadata, metadata_len);
	w->meta_len = metadata_len;
	struct wal_snapshot_ref zero = {0, 0};
	r = segment_create(w, 0, 0, &zero, &w->fd, &w->off, &w->crc, w->seg_name);
	if (r < 0) {
		wal_free(w);
		return r;
	}
	/* Make the log dir's own entry durable in its parent. */
	char *parent = strdup(dir), *slash = parent ? strrchr(parent, '/') : NULL;
	if (parent) {
		if (slash == parent)
			slash[1] = 0;
		else if (slash)
			*slash = 0;
		else
			strcpy(parent, ".");
		if (wal__fsync_dir(parent) != 0) {
			r = sync_failed(w, "fsync", parent, errno);
			free(parent);
			wal_free(w);
			return r;
		}
		free(parent);
	}
	*out = w;
	return 0;
}

/* ======================================== open ================================================== */

int wal_exists(const char *dir)
{
	struct seg *segs = NULL;
	size_t n = 0;
	if (list_segments(dir, &segs, &n, 0) < 0)
		return 0;
	free(segs);
	return n > 0;
}

/* Everything open reads, while it reads. */
struct reader {
	struct wal_snapshot_ref at; /* the snapshot opened at */
	struct wal_read_result *res; /* where entries, hard state and metadata go */
	size_t cap;                 /* capacity of res->entries */
	uint32_t crc;               /* running crc */
	int snap_found;             /* a snapshot record matching at was seen */
	uint64_t last_index;        /* index of the last entry record seen */
};

static void drop_entries_from(struct wal_read_result *res, size_t from)
{
	for (size_t i = from; i < res->n_entries; i++)
		free((void *)res->entries[i].data);
	res->n_entries = from;
}

/* Applies one record whose crc checked out. 0, or an error (message set) naming path and off. */
static int apply_record(struct reader *rd, const struct wal__rec *rec, const char *path, size_t off,
			int first_in_segment)
{
	const char *why = NULL;
	if (first_in_segment != (rec->type == WAL_REC_CRC)) {
		why = first_in_segment ? "segment does not start with a crc record"
				       : "crc record in the middle of a segment";
		goto corrupt;
	}
	if ((rec->type == WAL_REC_CRC) != (rec->data == NULL)) {
		why = "record data present where none belongs, or missing";
		goto corrupt;
	}
	switch (rec->type) {
	case WAL_REC_METADATA:
		if (rd->res->metadata) {
			if (rd->res->metadata_len != rec->len ||
			    memcmp(rd->res->metadata, rec->data, rec->len) != 0) {
				why = "metadata differs from the earlier segments'";
				goto corrupt;
			}
		} else {
			rd->res->metadata = malloc(rec->len ? rec->len : 1);
			if (!rd->res->metadata)
				return -ENOMEM;
			memcpy(rd->res->metadata, rec->data, rec->len);
			rd->res->metadata_len = rec->len;
		}
		return 0;
	case WAL_REC_ENTRY: {
		struct wal_entry e;
		if (wal__entry_decode(rec->data, rec->len, &e) != 0) {
			why = "entry record does not decode";
			goto corrupt;
		}
		rd->last_index = e.index;
		if (e.index <= rd->at.index)
			return 0;
		uint64_t up = e.index - rd->at.index - 1;
		if (up > rd->res->n_entries) {
			why = "entry index leaves a gap";
			goto corrupt;
		}
		drop_entries_from(rd->res, (size_t)up);
		if (rd->res->n_entries == rd->cap) {
			size_t nc = rd->cap ? rd->cap * 2 : 64;
			struct wal_entry *ne = realloc(rd->res->entries, nc * sizeof *ne);
			if (!ne)
				return -ENOMEM;
			rd->res->entries = ne;
			rd->cap = nc;
		}
		void *copy = malloc(e.len ? e.len : 1);
		if (!copy)
			return -ENOMEM;
		if (e.len)
			memcpy(copy, e.data, e.len);
		e.data = copy;
		rd->res->entries[rd->res->n_entries++] = e;
		return 0;
	}
	case WAL_REC_STATE:
		if (wal__hard_state_decode(rec->data, rec->len, &rd->res->hard) != 0) {
			why = "hard state record does not decode";
			goto corrupt;
		}
		rd->res->has_hard = 1;
		return 0;
	case WAL_REC_CRC:
		return 0;
	case WAL_REC_SNAPSHOT: {
		struct wal_snapshot_ref s;
		if (wal__snapref_decode(rec->data, rec->len, &s) != 0) {
			why = "snapshot record does not decode";
			goto corrupt;
		}
		if (s.index == rd->at.index) {
			if (s.term != rd->at.term) {
				why = "snapshot record's term differs from the snapshot's";
				goto corrupt;
			}
			rd->snap_found = 1;
		}
		return 0;
	}
	}
	why = "unknown record type";
corrupt:
	return wal__err(WAL_ECORRUPT, "wal: %s: corrupt record at offset %zu: %s", path, off, why);
}

/* End of the non-zero data in buf[from..size), scanning back over zeros a word at a time. */
static size_t data_end(const uint8_t *buf, size_t from, size_t size)
{
	size_t end = size;
	while (end > from && (end & 7))
		if (buf[--end]) {
			return end + 1;
		}
	while (end >= from + 8) {
		uint64_t v;
		memcpy(&v, buf + end - 8, 8);
		if (v)
			break;
		end -= 8;
	}
	while (end > from && buf[end - 1] == 0)
		end--;
	return end;
}

/*
 * Decoding stopped at off of the last segment: decides whether what follows is a torn tail (no
 * record frame anywhere after it: a crash mid-write) or corruption (a plausible frame follows: a
 * damaged record in the middle). Returns 0 with *garbage_end, or WAL_ECORRUPT.
 */
static int tail_check(const uint8_t *buf, size_t size, size_t off, const char *path,
		      const char *why, size_t *garbage_end)
{
	size_t end = data_end(buf, off, size);
	for (size_t p = off + 8; p + 8 <= end; p += 8) {
		struct wal__rec rec;
		size_t fl;
		const char *w2;
		if (wal__frame_decode(buf + p, size - p, &rec, &fl, &w2) == 0)
			return wal__err(WAL_ECORRUPT,
					"wal: %s: corrupt record at offset %zu (%s); a record "
					"follows at offset %zu",
					path, off, why, p);
	}
	*garbage_end = end;
	return 0;
}

/* Reads one segment's records. On the last segment a torn tail sets *tail_off / *tail_end. */
static int read_segment(struct reader *rd, const char *path, int last, size_t *end_off,
			size_t *garbage_end)
{
	int fd = wal__open(path, O_RDONLY, 0);
	if (fd < 0)
		return wal__err(-errno, "wal: cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return wal__err(-e, "wal: cannot stat %s: %s", path, strerror(e));
	}
	size_t size = (size_t)st.st_size;
	const uint8_t *buf = NULL;
	if (size) {
		void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			close(fd);
			return wal__err(-e, "wal: cannot map %s: %s", path, strerror(e));
		}
		buf = m;
	}
	close(fd);
	size_t off = 0;
	int r = 0, first = 1;
	*garbage_end = 0;
	for (;;) {
		struct wal__rec rec;
		size_t fl = 0;
		const char *why = NULL;
		int d = off < size ? wal__frame_decode(buf + off, size - off, &rec, &fl, &why)
				   : WAL__SHORT;
		if (d == 0) {
			if (!why && rec.type != WAL_REC_CRC) {
				uint32_t c = wal_crc32c(rd->crc, rec.data, rec.len);
				if (c != rec.crc)
					why = "crc mismatch";
				else
					rd->crc = c;
			} else if (!why) {
				if (rd->crc != 0 && rec.crc != rd->crc)
					why = "crc mismatch";
				else
					rd->crc = rec.crc;
			}
			if (why)
				d = WAL_ECORRUPT;
		}
		if (d == 0) {
			r = apply_record(rd, &rec, path, off, first);
			if (r < 0)
				break;
			first = 0;
			off += fl;
			continue;
		}
		if (off >= size && d == WAL__SHORT)
			break; /* exact end of file */
		if (!why)
			why = d == WAL__ZERO ? "zero length word" : "record runs past the end of the file";
		if (!last) {
			size_t end = data_end(buf, off, size);
			if (d == WAL__ZERO && end == off)
				break; /* preallocated zeros after the last record */
			r = wal__err(WAL_ECORRUPT, "wal: %s: corrupt record at offset %zu: %s", path,
				     off, why);
			break;
		}
		r = tail_check(buf, size, off, path, why, garbage_end);
		break;
	}
	if (r == 0 && first)
		r = wal__err(WAL_ECORRUPT, "wal: %s: no records at all", path);
	*end_off = off;
	if (size)
		munmap((void *)buf, size);
	return r;
}

int wal_open(const char *dir, struct wal_snapshot_ref at, const struct wal_options *opt,
	     struct wal **out)
{
	struct seg *segs = NULL;
	size_t n = 0;
	int r = list_segments(dir, &segs, &n, 1);
	if (r < 0)
		return r;
	if (n == 0) {
		free(segs);
		return wal__err(-ENOENT, "wal: %s holds no log segment", dir);
	}
	size_t start = n;
	for (size_t i = 0; i < n; i++)
		if (segs[i].first <= at.index)
			start = i;
	if (start == n) {
		r = wal__err(-ENOENT, "wal: %s: no segment holds index %" PRIu64 " (first is %s)", dir,
			     at.index, segs[0].name);
		free(segs);
		return r;
	}
	struct wal *w = wal_alloc(dir, opt);
	if (!w) {
		free(segs);
		return -ENOMEM;
	}
	struct reader rd = {.at = at, .res = &w->read};
	size_t end_off = 0, garbage_end = 0;
	char *path = NULL;
	for (size_t i = start; i < n; i++) {
		free(path);
		path = path_join(dir, segs[i].name);
		if (!path) {
			r = -ENOMEM;
			goto fail;
		}
		if (i > start && segs[i].seq != segs[i - 1].seq + 1) {
			r = wal__err(WAL_ECORRUPT, "wal: %s: segment %016" PRIx64 " is missing before %s",
				     dir, segs[i - 1].seq + 1, segs[i].name);
			goto fail;
		}
		r = read_segment(&rd, path, i == n - 1, &end_off, &garbage_end);
		if (r < 0)
			goto fail;
	}
	if (!w->read.metadata) {
		r = wal__err(WAL_ECORRUPT, "wal: %s: no metadata record", dir);
		goto fail;
	}
	if (!rd.snap_found) {
		r = wal__err(-ENOENT, "wal: %s: no snapshot record for index %" PRIu64 " term %" PRIu64,
			     dir, at.index, at.term);
		goto fail;
	}
	w->fd = wal__open(path, O_RDWR, 0);
	if (w->fd < 0) {
		r = wal__err(-errno, "wal: cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	struct stat st;
	if (fstat(w->fd, &st) != 0) {
		r = wal__err(-errno, "wal: cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (garbage_end > end_off || (uint64_t)st.st_size < w->seg_size) {
		if (garbage_end > end_off) {
			wal__log("wal: %s: torn tail at offset %zu: truncated %zu bytes", path, end_off,
				 garbage_end - end_off);
			if (ftruncate(w->fd, (off_t)end_off) != 0) {
				r = wal__err(-errno, "wal: cannot truncate %s to %zu: %s", path,
					     end_off, strerror(errno));
				goto fail;
			}
		}
		int e = wal__fallocate(w->fd, (off_t)w->seg_size);
		if (e)
			wal__log("wal: cannot preallocate %s: %s", path, strerror(e));
		if (wal__fdatasync(w->fd) != 0) {
			r = sync_failed(w, "fdatasync", path, errno);
			goto fail;
		}
	}
	w->meta = w->read.metadata;
	w->meta_len = w->read.metadata_len;
	w->read.metadata = malloc(w->meta_len ? w->meta_len : 1);
	if (!w->read.metadata) {
		w->read.metadata = w->meta;
		w->meta = NULL;
		r = -ENOMEM;
		goto fail;
	}
	memcpy(w->read.metadata, w->meta, w->meta_len);
	w->seq = segs[n - 1].seq;
	memcpy(w->seg_name, segs[n - 1].name, sizeof w->seg_name);
	w->off = end_off;
	w->crc = rd.crc;
	w->hs = w->read.hard;
	w->has_hs = w->read.has_hard;
	w->last_index = w->read.n_entries ? w->read.entries[w->read.n_entries - 1].index : at.index;
	free(path);
	free(segs);
	*out = w;
	return 0;
fail:
	free(path);
	free(segs);
	wal_free(w);
	return r;
}

int wal_read_all(struct wal *w, struct wal_read_result *res)
{
	pthread_mutex_lock(&w->mu);
	*res = w->read;
	memset(&w->read, 0, sizeof w->read);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void wal_read_result_free(struct wal_read_result *res)
{
	drop_entries_from(res, 0);
	free(res->entries);
	free(res->metadata);
	memset(res, 0, sizeof *res);
}

/* ======================================== append ================================================ */

/* Writes buf[0..len) (records chained to crc) at the end; on failure leaves the log as it was. */
static int append(struct wal *w, size_t len, uint32_t crc)
{
	int r = wal__pwrite_all(w->fd, w->buf, len, (off_t)w->off);
	if (r < 0) {
		/* Nothing of this batch counts: drop whatever reached the file, then try to get the
		 * preallocation back (the disk may still be full: that is fine). */
		if (ftruncate(w->fd, (off_t)w->off) == 0 && w->off < w->seg_size)
			(void)wal__fallocate(w->fd, (off_t)w->seg_size);
		return wal__err(r, "wal: cannot append %zu bytes at offset %" PRIu64 " of %s/%s: %s",
				len, w->off, w->dir, w->seg_name, strerror(-r));
	}
	w->off += len;
	w->crc = crc;
	w->write_seq++;
	return 0;
}

int wal_save(struct wal *w, const struct wal_hard_state *hs, const struct wal_entry *ents,
	     size_t n, int must_sync)
{
	int r = 0;
	pthread_mutex_lock(&w->mu);
	if (w->broken) {
		r = wal__err(-EIO, "wal: %s: an earlier fsync failed", w->dir);
		goto out;
	}
	if (hs || n) {
		size_t need = 96;
		for (size_t i = 0; i < n; i++)
			need += 48 + wal__entry_size(&ents[i]);
		if ((r = grow(&w->buf, &w->buf_cap, need)) < 0)
			goto out;
		size_t pos = 0;
		uint32_t crc = w->crc;
		for (size_t i = 0; i < n; i++) {
			size_t es = wal__entry_size(&ents[i]);
			if ((r = grow(&w->ebuf, &w->ebuf_cap, es)) < 0)
				goto out;
			size_t el = wal__entry_encode(w->ebuf, &ents[i]);
			put_record(w->buf, &pos, &crc, WAL_REC_ENTRY, w->ebuf, el, 1);
		}
		if (hs) {
			uint8_t hb[33];
			size_t hl = wal__hard_state_encode(hb, hs);
			put_record(w->buf, &pos, &crc, WAL_REC_STATE, hb, hl, 1);
		}
		if ((r = append(w, pos, crc)) < 0)
			goto out;
		if (n)
			w->last_index = ents[n - 1].index;
		if (hs) {
			w->hs = *hs;
			w->has_hs = 1;
		}
		if (w->off >= w->seg_size) {
			/* The batch is written; a failed cut is retried on the next save. */
			int c = cut(w);
			if (c < 0 && w->broken) {
				r = c;
				goto out;
			}
			if (c < 0)
				wal__log("%s (cut retried on the next save)", wal_errmsg());
		}
	}
	if (must_sync)
		r = sync_upto(w, w->write_seq);
out:
	pthread_mutex_unlock(&w->mu);
	return r;
}

int wal_save_snapshot(struct wal *w, struct wal_snapshot_ref snap)
{
	int r;
	uint8_t sb[22];
	size_t sl = wal__snapref_encode(sb, snap);
	pthread_mutex_lock(&w->mu);
	if (w->broken) {
		r = wal__err(-EIO, "wal: %s: an earlier fsync failed", w->dir);
		goto out;
	}
	if ((r = grow(&w->buf, &w->buf_cap, 64)) < 0)
		goto out;
	size_t pos = 0;
	uint32_t crc = w->crc;
	put_record(w->buf, &pos, &crc, WAL_REC_SNAPSHOT, sb, sl, 1);
	if ((r = append(w, pos, crc)) < 0)
		goto out;
	if (w->last_index < snap.index)
		w->last_index = snap.index;
	r = sync_upto(w, w->write_seq);
out:
	pthread_mutex_unlock(&w->mu);
	return r;
}

int wal_sync(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	int r = sync_upto(w, w->write_seq);
	pthread_mutex_unlock(&w->mu);
	return r;
}

uint64_t wal_last_index(struct wal *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t i = w->last_index;
	pthread_mutex_unlock(&w->mu);
	return i;
}

int wal_close(struct wal *w)
{
	int r = 0;
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	if (w->broken)
		r = wal__err(-EIO, "wal: %s: an earlier fsync failed", w->dir);
	else
		r = sync_upto(w, w->write_seq);
	pthread_mutex_unlock(&w->mu);
	wal_free(w);
	return r;
}

/* ======================================== purge ================================================= */

int wal_purge(const char *dir, uint64_t upto, unsigned keep, unsigned *removed)
{
	struct seg *segs;
	size_t n;
	unsigned gone = 0;
	int r = list_segments(dir, &segs, &n, 0);
	if (r < 0)
		return r;
	if (!keep)
		keep = WAL_KEEP_DEFAULT;
	for (size_t i = 0; i + 1 < n && n - i > keep; i++) {
		if (segs[i + 1].first > upto + 1)
			break;
		char *p = path_join(dir, segs[i].name);
		if (!p) {
			r = -ENOMEM;
			break;
		}
		if (unlink(p) != 0) {
			r = wal__err(-errno, "wal: cannot remove %s: %s", p, strerror(errno));
			free(p);
			break;
		}
		free(p);
		gone++;
	}
	free(segs);
	if (gone && wal__fsync_dir(dir) != 0)
		wal__log("wal: fsync of %s after purge failed: %s", dir, strerror(errno));
	if (removed)
		*removed = gone;
	return r;
}

/* ======================================= dir lock =============================================== */

int wal_dir_lock(const char *data_dir, int *fd_out)
{
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
		return wal__err(-errno, "wal: cannot create data dir %s: %s", data_dir,
				strerror(errno));
	char *p = path_join(data_dir, "lock");
	if (!p)
		return -ENOMEM;
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int r = wal__err(-errno, "wal: cannot open %s: %s", p, strerror(errno));
		free(p);
		return r;
	}
	free(p);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		char pid[32] = "?";
		ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
		if (k > 0) {
			pid[k] = 0;
			pid[strcspn(pid, "\n")] = 0;
		}
		close(fd);
		if (e == EWOULDBLOCK)
			return wal__err(-EWOULDBLOCK, "data dir %s in use by pid %s", data_dir, pid);
		return wal__err(-e, "wal: cannot lock data dir %s: %s", data_dir, strerror(e));
	}
	char pid[32];
	int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		wal__log("wal: cannot write our pid into %s/lock", data_dir);
	*fd_out = fd;
	return 0;
}

void wal_dir_unlock(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}
