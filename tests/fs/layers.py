"""layers.py FS_DIR: checks that the folders of fs/ depend on each other only downwards.

fs/ is split into folders by concept (fs/README.md). Each folder offers the others one header,
named in EXPORTED; its other headers are its own. A folder may include the exported header of a
folder below it in LAYERS, never one above or beside it, so no include cycle can form between
folders. Prints one line per violation (file, line, the include, why) and `N passed, M failed`;
exits 1 on any violation. A folder is one case: it passes when none of its includes breaks a rule.
"""
import os
import re
import sys

# From the bottom up; a folder may include the exported headers of the folders it lists.
LAYERS = {
    "common": [],
    "member": ["common"],
    "fuse": ["common", "member"],
    "control": ["common", "member", "fuse"],
    "replay": ["common", "fuse"],
    "daemon": ["common", "member", "fuse", "control", "replay"],
    "cli": ["common", "fuse", "daemon"],
}
EXPORTED = {
    "common": "common/common.h",
    "member": "member/member.h",
    "fuse": "fuse/face.h",
    "control": "control/control.h",
    "replay": "replay/replay.h",
    "daemon": "daemon/daemon.h",
    "cli": "cli/cli.h",
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def check(fs_dir):
    """Returns (folders checked, folders failed, lines saying why)."""
    failures, checked, bad = [], 0, set()
    folders = sorted(d for d in os.listdir(fs_dir) if os.path.isdir(os.path.join(fs_dir, d)))
    for folder in folders:
        if folder not in LAYERS:
            failures.append(f"fs/{folder}/: a folder the layering does not know (add it to "
                            f"tests/fs/layers.py and fs/README.md)")
            bad.add(folder)
            continue
        checked += 1
        for name in sorted(os.listdir(os.path.join(fs_dir, folder))):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(fs_dir, folder, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                target, header = m.group(1), f"{m.group(1)}/{m.group(2)}"
                line = text.count("\n", 0, m.start()) + 1
                where = f"fs/{folder}/{name}:{line}: #include \"{header}\""
                if target == folder:
                    continue
                n = len(failures)
                if target not in LAYERS:
                    failures.append(f"{where}: no folder fs/{target}/")
                elif target not in LAYERS[folder]:
                    failures.append(f"{where}: {folder}/ may not depend on {target}/")
                elif header != EXPORTED[target]:
                    failures.append(f"{where}: {target}/ offers only {EXPORTED[target]}")
                if len(failures) > n:
                    bad.add(folder)
    return checked, len(bad), failures


def main():
    fs_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                                 "..", "..", "fs")
    checked, bad, failures = check(fs_dir)
    for f in failures:
        print(f)
    print(f"{checked - bad} passed, {bad} failed")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
