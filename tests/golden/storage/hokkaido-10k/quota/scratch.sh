#!/bin/sh
# Rendered by gpucloud from the plan of cluster hokkaido-10k; edit the spec, not this file.
# Tenant project directories and quotas on Lustre filesystem scratch (fsname scratch, mounted at /lustre/scratch).
# Run as root on a client that mounts it. Safe to run again: it reads the current state with lfs and changes only
# what differs from the plan. Limits: block hard limits in KiB, inode hard limits; 0 means none.
#   MOUNT=<path>    the filesystem is mounted somewhere else on this host
#   LFS=<path>      another lfs binary
#   ALLOW_SHRINK=1  set a block limit below what a project already uses (refused otherwise: writes would fail)
set -eu
MOUNT=${MOUNT:-/lustre/scratch}
LFS=${LFS:-lfs}
ALLOW_SHRINK=${ALLOW_SHRINK:-0}
failed=0

# tenant NAME PROJECT_ID BLOCK_KIB INODES USER...
tenant() {
    name=$1 id=$2 kib=$3 inodes=$4
    shift 4
    dir="$MOUNT/$name"
    if [ ! -d "$dir" ]; then mkdir -p "$dir" && echo "created $dir"; fi
    if getent group "$name" >/dev/null 2>&1; then chgrp "$name" "$dir"; fi
    chmod 2770 "$dir"
    for user in "$@"; do
        if [ ! -d "$dir/$user" ]; then mkdir "$dir/$user" && echo "created $dir/$user"; fi
        if getent passwd "$user" >/dev/null 2>&1; then chown "$user" "$dir/$user"; fi
    done
    # 'lfs project -d DIR' prints: PROJID FLAG DIR (FLAG P = new files inherit the project).
    current=$("$LFS" project -d "$dir" | awk '{print $1 " " $2}')
    if [ "$current" != "$id P" ]; then
        "$LFS" project -p "$id" -s -r "$dir" && echo "project $id set on $dir"
    fi
    # 'lfs quota -q -p ID MOUNT' prints: FS KBYTES QUOTA LIMIT GRACE FILES QUOTA LIMIT GRACE ('*' marks excess).
    set -- $("$LFS" quota -q -p "$id" "$MOUNT" | tr -d '*')
    used=$2 bhard=$4 ihard=$8
    if [ "$bhard" = "$kib" ] && [ "$ihard" = "$inodes" ]; then return 0; fi
    if [ "$kib" != 0 ] && [ "$used" -gt "$kib" ] && [ "$ALLOW_SHRINK" != 1 ]; then
        echo "refused: project $id ($name) uses $used KiB, more than the new limit $kib KiB; set ALLOW_SHRINK=1" >&2
        failed=1
        return 0
    fi
    "$LFS" setquota -p "$id" -b 0 -B "$kib" -i 0 -I "$inodes" "$MOUNT" && echo "quota of project $id: $kib KiB, $inodes inodes"
}

tenant frontier-llm 800909 19531250000000 0 fl01
tenant shared 504795 9765625000000 0 sh01 sh02
exit $failed
