/*
 * fuse_internal.h: libfuse's low-level API at the one version fs/ is written against (3.4, as
 * Debian 12's libfuse 3.14 provides it). Every file of fs/ that speaks FUSE includes this, never
 * <fuse_lowlevel.h> itself, so the version is chosen in one place.
 */
#ifndef RAFTFS_FS_FUSE_INTERNAL_H
#define RAFTFS_FS_FUSE_INTERNAL_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#endif
