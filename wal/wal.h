/*
 * wal.h: the public interface of raftfs's write-ahead log and snapshot files.
 *
 * Records use etcd's WAL framing (wal/FORMAT.md): a length word, a protobuf record
 * {type, crc, data} and padding to 8 bytes, every record's CRC-32C chained from the one before.
 * Functions return 0 or a negative errno value.
 */
#ifndef RAFTFS_WAL_H
#define RAFTFS_WAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC-32C (Castagnoli) of buf[0..len), continued from crc (0 to start). Same convention as Go's
 * crc32.Update, which etcd's WAL uses to chain record checksums: wal_crc32c(wal_crc32c(0, a), b) is
 * the checksum of a followed by b.
 */
uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
