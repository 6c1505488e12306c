#!/usr/bin/env bash
# Build a 32-bit MicroPython Unix port configured like a board, to measure heap
# as a board would see it (4-byte words, 16-byte GC blocks, single-precision
# floats; the ESP8266 profile also keeps floats inside the object word).
#
#   MICROPYTHON_SRC=~/micropython      tools/board/build_proxy.sh esp32   OUT_DIR  -> OUT_DIR/micropython-esp32
#   MICROPYTHON_TARBALL=...unix-src.tar.xz tools/board/build_proxy.sh esp8266 OUT_DIR  -> OUT_DIR/micropython-esp8266
# `make proxies` calls this for both profiles (see docs/memory.md).
#
# Profiles (from ports/esp32 and ports/esp8266 mpconfigport.h of v1.28.0):
#   esp32    MICROPY_OBJ_REPR_A, single-precision float (the board's heap starts
#            at 56 KB and can grow once, to about twice that)
#   esp8266  MICROPY_OBJ_REPR_C, single-precision float (the board's heap is a
#            fixed 38 KB, some of it used by boot and WiFi)
# The esp8266 profile also turns off the language features that port turns off
# (str.partition, __file__, math.log10, complex, ...), so code that needs them fails
# here as on the board. Everything else is the Unix port's standard variant (socket, select, asyncio,
# ssl with mbedTLS, hashlib, deflate, vfs with VfsRom, viper), so -X heapsize=N
# sets the heap. Frozen, as on the boards: asyncio and ssl (micropython-lib).
# Source: a MicroPython v1.28.0 tree (MIT) with its mbedTLS (Apache-2.0) and
# micropython-lib (MIT) submodules, or the trimmed tarball CI has in ../shared/micropython/.
# Needs gcc able to build -m32 (Debian: apt-get install gcc-multilib), make,
# python3. About 40 s per profile on 2 cores; OUT_DIR/src-PROFILE is reused.
set -euo pipefail
profile=${1:?usage: build_proxy.sh esp32|esp8266 OUT_DIR}
out=${2:?usage: build_proxy.sh esp32|esp8266 OUT_DIR}
case "$profile" in
  esp32)   repr="MICROPY_OBJ_REPR_A"; extra="" ;;
  # The language features ports/esp8266/mpconfigport.h (v1.28.0) turns off, so code
  # that needs one of them fails here as it would on the board.
  esp8266) repr="MICROPY_OBJ_REPR_C"; extra="
#define MICROPY_COMP_MODULE_CONST               (0)
#define MICROPY_COMP_TRIPLE_TUPLE_ASSIGN        (0)
#define MICROPY_COMP_RETURN_IF_EXPR             (0)
#define MICROPY_OPT_LOAD_ATTR_FAST_PATH         (0)
#define MICROPY_OPT_MAP_LOOKUP_CACHE            (0)
#define MICROPY_OPT_MPZ_BITWISE                 (0)
#define MICROPY_OPT_MATH_FACTORIAL              (0)
#define MICROPY_PY_BUILTINS_COMPLEX             (0)
#define MICROPY_MODULE___FILE__                 (0)
#define MICROPY_PY_DELATTR_SETATTR              (0)
#define MICROPY_PY_BUILTINS_STR_CENTER          (0)
#define MICROPY_PY_BUILTINS_STR_PARTITION       (0)
#define MICROPY_PY_BUILTINS_STR_SPLITLINES      (0)
#define MICROPY_PY_BUILTINS_SLICE_INDICES       (0)
#define MICROPY_PY_BUILTINS_NOTIMPLEMENTED      (0)
#define MICROPY_PY_BUILTINS_POW3                (0)
#define MICROPY_PY_MATH_CONSTANTS               (0)
#define MICROPY_PY_MATH_SPECIAL_FUNCTIONS       (0)
#define MICROPY_PY_MATH_FACTORIAL               (0)
#define MICROPY_PY_MATH_ISCLOSE                 (0)
#define MICROPY_PY_BINASCII_CRC32               (0)
#define MICROPY_PY_RANDOM_EXTRA_FUNCS           (0)
#define MICROPY_PY_HASHLIB_MD5                  (0)" ;;
  *) echo "unknown profile $profile (esp32 or esp8266)" >&2; exit 2 ;;
esac
probe=$(mktemp -d)
echo 'int main(void){return 0;}' > "$probe/p.c"
if ! gcc -m32 -o "$probe/p" "$probe/p.c" 2>/dev/null; then
  rm -rf "$probe"
  echo "gcc cannot build 32-bit programs: apt-get install gcc-multilib" >&2; exit 3
fi
rm -rf "$probe"
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/src-$profile"
if [ ! -f "$src/py/mpconfig.h" ]; then
  rm -rf "$src" && mkdir -p "$src"
  if [ -n "${MICROPYTHON_SRC:-}" ]; then
    # A maker's MicroPython v1.28 checkout (with its lib/mbedtls and lib/micropython-lib
    # submodules): copied, so its own ports/unix build stays untouched.
    [ -f "$MICROPYTHON_SRC/py/mpconfig.h" ] || { echo "MICROPYTHON_SRC=$MICROPYTHON_SRC is not a MicroPython source tree (no py/mpconfig.h)" >&2; exit 2; }
    [ -f "$MICROPYTHON_SRC/lib/mbedtls/include/mbedtls/ssl.h" ] || { echo "$MICROPYTHON_SRC has no lib/mbedtls: run 'git submodule update --init lib/mbedtls lib/micropython-lib' there" >&2; exit 2; }
    cp -a "$MICROPYTHON_SRC/." "$src/"
    rm -rf "$src/ports/unix/build-"*
  else
    tarball=${MICROPYTHON_TARBALL:?set MICROPYTHON_SRC to a MicroPython v1.28 source tree, or MICROPYTHON_TARBALL to its unix-src tarball}
    tar xJf "$tarball" -C "$src" --strip-components=1
  fi
fi
variant="$src/ports/unix/variants/${profile}proxy"
mkdir -p "$variant"
cat > "$variant/mpconfigvariant.h" <<H
// Unix port, 32-bit, with the object model and float type of the $profile port.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_OBJ_REPR ($repr)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
$extra
#include "../mpconfigvariant_common.h"
H
cat > "$variant/mpconfigvariant.mk" <<M
MICROPY_FORCE_32BIT = 1
MICROPY_PY_FFI = 0
MICROPY_PY_BTREE = 0
FROZEN_MANIFEST = \$(VARIANT_DIR)/manifest.py
M
cat > "$variant/manifest.py" <<'P'
include("$(MPY_DIR)/extmod/asyncio")
module("ssl.py", base_path="$(MPY_DIR)/lib/micropython-lib/python-stdlib/ssl", opt=3)
P
make -C "$src/ports/unix" -j"$(nproc)" VARIANT="${profile}proxy" > "$out/build-$profile.log" 2>&1 \
  || { tail -30 "$out/build-$profile.log" >&2; exit 1; }
cp "$src/ports/unix/build-${profile}proxy/micropython" "$out/micropython-$profile"
echo "$out/micropython-$profile"
