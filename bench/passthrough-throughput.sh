#!/usr/bin/env bash
# Read throughput of the passthrough plugin against its source, measured in one run:
# the source tmpfs itself (baseline), passthrough with kernel FUSE passthrough, and
# passthrough served through the plugin. Needs root and /dev/fuse.
#   cargo build --release --workspace && bench/passthrough-throughput.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
fusehost=target/release/fusehost
[ -x "$fusehost" ] || { echo "build first: cargo build --release --workspace"; exit 1; }

work=$(mktemp -d)
source_dir=$work/source mnt=$work/mnt
mkdir -p "$source_dir" "$mnt"
host_pid=
cleanup() {
    [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
    mountpoint -q "$mnt" && umount -l "$mnt"
    mountpoint -q "$source_dir" && umount -l "$source_dir"
    rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs fusehost-bench "$source_dir"
dd if=/dev/urandom of="$source_dir/data" bs=1M count="$size_mib" status=none

gbps() { # file -> GB/s, median of three reads
    for _ in 1 2 3; do
        dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { printf "%.2f\n", $1 / $(NF-3) / 1e9 }'
    done | sort -g | sed -n 2p
}

mount_passthrough() { # kernel_passthrough value
    "$fusehost" mount passthrough "$mnt" -o "source=$source_dir,kernel_passthrough=$1" > "$work/out" 2> "$work/err" &
    host_pid=$!
    for _ in $(seq 100); do grep -q "mounted at" "$work/out" && return; sleep 0.05; done
    echo "mount failed:"; cat "$work/err"; exit 1
}
unmount_passthrough() {
    kill "$host_pid"; wait "$host_pid" || true; host_pid=
}

baseline=$(gbps "$source_dir/data")
mount_passthrough true
kernel=$(gbps "$mnt/data")
refused=$(grep -c "kernel passthrough unavailable" "$work/err" || true)
unmount_passthrough
mount_passthrough false
plugin=$(gbps "$mnt/data")
unmount_passthrough

echo "passthrough read throughput, ${size_mib} MiB file on tmpfs, 1 MiB reads, median of 3"
printf '%-32s %8s GB/s %7s\n' "source tmpfs (baseline)" "$baseline" "1.00x"
printf '%-32s %8s GB/s %7s\n' "kernel_passthrough=true" "$kernel" "$(awk -v a="$kernel" -v b="$baseline" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-32s %8s GB/s %7s\n' "kernel_passthrough=false" "$plugin" "$(awk -v a="$plugin" -v b="$baseline" 'BEGIN { printf "%.2fx", a / b }')"
[ "$refused" = 0 ] || echo "note: this kernel refused FUSE passthrough; the first row is the plugin path"
