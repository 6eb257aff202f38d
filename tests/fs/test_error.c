/* test_error.c: the daemon's one error space: every range named, and the errno a reply carries. */
#include "check.h"
#include "common/common.h"
#include "raft.h"
#include "store.h"

#include <errno.h>
#include <string.h>

CHECK_TEST(every_range_is_named_by_fs_strerror)
{
	CHECK_STR_EQ(fs_strerror(0), "success");
	CHECK_STR_EQ(fs_strerror(-ENOENT), strerror(ENOENT));
	CHECK_STR_EQ(fs_strerror(RAFT_ECOMPACTED), raft_strerror(RAFT_ECOMPACTED));
	CHECK_STR_EQ(fs_strerror(STORE_ENOSPACE), store_strerror(STORE_ENOSPACE));
	CHECK_STR_EQ(fs_strerror(FS_ESTOPPING), "the member is stopping");
	CHECK(strstr(fs_strerror(FS_KV_ECORRUPT), "CORRUPT") != NULL);
	CHECK(strstr(fs_strerror(-ETIMEDOUT), "quorum") != NULL);
	CHECK_STR_EQ(fs_strerror(-5000), "unknown error");
	CHECK(fs_err_is_errno(-EIO) && !fs_err_is_errno(RAFT_EINVAL) && !fs_err_is_errno(0));
}

CHECK_TEST(fs_errno_maps_each_code_to_what_a_reply_carries)
{
	CHECK_EQ(fs_errno(0), 0);
	CHECK_EQ(fs_errno(-EFBIG), EFBIG);
	CHECK_EQ(fs_errno(-ETIMEDOUT), EIO);
	CHECK_EQ(fs_errno(FS_ESTOPPING), EIO);
	CHECK_EQ(fs_errno(FS_EREMOVED), EIO);
	CHECK_EQ(fs_errno(RAFT_EPROPOSALDROPPED), EIO);
	CHECK_EQ(fs_errno(FS_ETOOMANYREQUESTS), EAGAIN);
	CHECK_EQ(fs_errno(FS_KV_ECORRUPT), EIO);
	CHECK_EQ(fs_errno(STORE_ENOSPACE), ENOSPC);
	CHECK_EQ(fs_errno(STORE_ELEASENOTFOUND), EINVAL);
	CHECK_EQ(fs_errno(STORE_EKEYNOTFOUND), ENOENT);
	CHECK_EQ(fs_errno(STORE_ECOMPACTED), EIO);
}

CHECK_SUITE("fs-error", CHECK_CASE(every_range_is_named_by_fs_strerror),
	    CHECK_CASE(fs_errno_maps_each_code_to_what_a_reply_carries))
