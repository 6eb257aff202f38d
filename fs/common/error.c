/*
 * error.c: names and errno values of the daemon's error codes (see common/error.h).
 */
#include "common/common.h"

#include "raft.h"
#include "store.h"

#include <errno.h>
#include <string.h>

const char *fs_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ETIMEDOUT:
		return "no quorum answered within the request timeout";
	case FS_ETOOMANYREQUESTS:
		return "too many requests: applying is behind, try again";
	case FS_ESTOPPING:
		return "the member is stopping";
	case FS_EREMOVED:
		return "this member was removed from the cluster";
	case FS_KV_ECORRUPT:
		return "the CORRUPT alarm is raised: writes are refused until it is disarmed";
	default:
		break;
	}
	if (err <= -1001 && err >= -1099)
		return raft_strerror(err);
	if (err <= -2001 && err >= -2099)
		return store_strerror(err);
	if (fs_err_is_errno(err))
		return strerror(-err);
	return "unknown error";
}

int fs_errno(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -ETIMEDOUT:
	case FS_ESTOPPING:
	case FS_EREMOVED:
	case RAFT_EPROPOSALDROPPED:
		return EIO;
	case FS_ETOOMANYREQUESTS:
		return EAGAIN;
	case FS_KV_ECORRUPT:
		return EIO; /* members disagree: nothing is written until an operator looks */
	case STORE_ENOSPACE:
		return ENOSPC;
	case STORE_ELEASENOTFOUND:
		return EINVAL;
	case STORE_EKEYNOTFOUND:
		return ENOENT;
	default:
		return fs_err_is_errno(err) ? -err : EIO;
	}
}
