#!/usr/bin/env bash
# The archive plugin against archivemount, fuse-zip (Debian) and ratarmount (PyPI) on
# the same archives, measured in one run: mount time of a 100,000-entry archive, then
# reading a 256 MiB member whole, and 1 MiB near its end twice (the second read is
# what a seek index makes fast). The baseline is the same bytes read from tmpfs.
# Needs root and /dev/fuse; tools that are missing are skipped, and ONLY="fusehost
# ratarmount" (say) limits the run to those tools.
#   apt-get install archivemount fuse-zip; pip install ratarmount
#   cargo build --release --workspace && bench/archive-compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fusehost=$PWD/target/release/fusehost
[ -x "$fusehost" ] || { echo "build first: cargo build --release --workspace"; exit 1; }

work=$(mktemp -d)
cleanup() {
    # Everything mounted below $work, whoever mounted it, deepest first.
    awk -v work="$work" 'index($2, work "/") == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r dir; do umount "$dir" 2>/dev/null || umount -l "$dir"; done
    [ -f "$work/pids" ] && xargs -r kill < "$work/pids" 2>/dev/null
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
mkdir -p "$work/tmpfs"
mount -t tmpfs fusehost-bench "$work/tmpfs"

echo "building archives in $work ..."
python3 - "$work" <<'PY'
import io, os, sys, tarfile, zipfile
work = sys.argv[1]
with tarfile.open(f"{work}/many.tar.gz", "w:gz") as tar, zipfile.ZipFile(f"{work}/many.zip", "w") as zf:
    for i in range(100_000):
        data = f"{i}\n".encode()
        info = tarfile.TarInfo(f"d{i % 100}/f{i}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        zf.writestr(f"d{i % 100}/f{i}", data)
big = os.urandom(1 << 20) * 256  # 256 MiB, compressible only by repetition
open(f"{work}/tmpfs/big.bin", "wb").write(big)
with tarfile.open(f"{work}/big.tar.gz", "w:gz", compresslevel=1) as tar:
    tar.add(f"{work}/tmpfs/big.bin", arcname="big.bin")
with zipfile.ZipFile(f"{work}/big.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
    zf.write(f"{work}/tmpfs/big.bin", "big.bin")
PY

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# mount_with NAME PROBE COMMAND...: starts COMMAND (which mounts on $work/mnt-NAME),
# waits until PROBE exists there, and leaves the seconds it took in $work/NAME.time.
# Not run in a subshell, so that its process ids reach cleanup through $work/pids.
mount_with() {
    local name=$1 probe=$2; shift 2
    local dir=$work/mnt-$name
    mkdir -p "$dir"
    local start; start=$(now)
    "$@" > "$work/$name.log" 2>&1 &
    echo $! >> "$work/pids"
    for _ in $(seq 30000); do [ -e "$dir/$probe" ] && break; sleep 0.01; done
    [ -e "$dir/$probe" ] || { echo "$name did not mount:"; cat "$work/$name.log"; return 1; }
    elapsed "$start" > "$work/$name.time"
}
unmount() { umount "$work/mnt-$1" 2>/dev/null || umount -l "$work/mnt-$1"; }

# read_whole FILE: seconds to read FILE; read_tail FILE: seconds for 1 MiB near its end.
read_whole() { local start; start=$(now); cat "$1" > /dev/null; elapsed "$start"; }
read_tail() {
    local start; start=$(now)
    dd if="$1" of=/dev/null bs=1M count=1 skip=250 iflag=direct 2>/dev/null || dd if="$1" of=/dev/null bs=1M count=1 skip=250 2>/dev/null
    elapsed "$start"
}

printf '\n%-34s %10s %12s %12s %12s\n' "tool (format)" "mount 100k" "read 256MiB" "tail, 1st" "tail, 2nd"
echo "(tail: 1 MiB at 250 MiB with O_DIRECT where the tool allows it, on a fresh mount, then again)"
baseline_read=$(read_whole "$work/tmpfs/big.bin")
printf '%-34s %10s %11ss %11ss %11ss\n' "tmpfs (baseline)" "-" "$baseline_read" "$(read_tail "$work/tmpfs/big.bin")" "$(read_tail "$work/tmpfs/big.bin")"

row() { # label mount-command-prefix many-archive big-archive
    local label=$1 tool=$2 many=$3 big=$4
    [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $tool "* ]] || return 0
    run_tool "$tool" many "$many" d99/f99999 || return 0
    local mount_time; mount_time=$(cat "$work/$tool-many.time")
    unmount "${tool}-many"
    run_tool "$tool" big "$big" big.bin || return 0
    local file=$work/mnt-${tool}-big/big.bin
    local whole first second
    # The tail first, on a fresh mount: the whole read would leave it in the page cache.
    first=$(read_tail "$file"); second=$(read_tail "$file"); whole=$(read_whole "$file")
    unmount "${tool}-big"
    printf '%-34s %9ss %11ss %11ss %11ss\n' "$label" "$mount_time" "$whole" "$first" "$second"
}

run_tool() { # tool which archive probe
    local tool=$1 which=$2 archive=$3 probe=$4 dir=$work/mnt-$1-$2
    case $tool in
        fusehost) mount_with "$tool-$which" "$probe" "$fusehost" mount archive "$dir" -o "archive=$archive,create" ;;
        archivemount) command -v archivemount > /dev/null || return 1
            mount_with "$tool-$which" "$probe" archivemount -f -o ro,readonly "$archive" "$dir" ;;
        fuse-zip) command -v fuse-zip > /dev/null || return 1
            mount_with "$tool-$which" "$probe" fuse-zip -f -r "$archive" "$dir" ;;
        ratarmount) command -v ratarmount > /dev/null || return 1
            rm -f "$archive.index.sqlite"
            mount_with "$tool-$which" "$probe" ratarmount -f --recreate-index "$archive" "$dir" ;;
    esac
}

row "fusehost archive (tar.gz)" fusehost "$work/many.tar.gz" "$work/big.tar.gz"
row "archivemount (tar.gz)" archivemount "$work/many.tar.gz" "$work/big.tar.gz"
row "ratarmount (tar.gz)" ratarmount "$work/many.tar.gz" "$work/big.tar.gz"
printf '\n'
row "fusehost archive (zip)" fusehost "$work/many.zip" "$work/big.zip"
row "fuse-zip (zip)" fuse-zip "$work/many.zip" "$work/big.zip"
