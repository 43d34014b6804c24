# What `.ci/run` needs and a fresh machine may lack, as functions with no side effects, so that
# `.ci/test-detect` can point them at fake roots. Sourced by both; bash only.

# find_libclang [ROOT]
#
# Prints the libclang C libraries that bindgen would find, one a line, and fails when there are
# none. bindgen loads libclang at run time through clang-sys, and this searches the way clang-sys
# 1.x does (build/common.rs and build/dynamic.rs, runtime linking, on Linux):
# - the names `libclang.so`, `libclang-*.so`, `libclang.so.*` and `libclang-*.so.*`, but never a
#   name with `-cpp.` in it: `libclang-cpp.so.N` is Clang's C++ library, which machines with
#   llvm-N-dev have without the C library bindgen calls;
# - only 64-bit ELF files (clang-sys skips libraries of another class);
# - in `$LIBCLANG_PATH` alone when it is set (a directory, or the library itself); otherwise in
#   `llvm-config --prefix`'s bin, lib and lib64, the directories of `$LD_LIBRARY_PATH` and
#   `$LIBRARY_PATH`, then /usr/local/llvm*/lib*, /usr/local/lib* and /usr/lib* and the
#   directories one and two levels below those two.
# ROOT (default: none) is put before the fixed directories, for tests; llvm-config is asked only
# when there is no ROOT. Environment variables are taken as they are.
find_libclang() (
  shopt -s nullglob
  local root=${1:-} dirs=() d f found=1
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ] && _libclang_name "${LIBCLANG_PATH##*/}" && _elf64 "$LIBCLANG_PATH"; then
      printf '%s\n' "$LIBCLANG_PATH"
      return 0
    fi
    dirs=("$LIBCLANG_PATH")
  else
    if [ -z "$root" ] && command -v llvm-config >/dev/null 2>&1; then
      local prefix
      if prefix=$(llvm-config --prefix 2>/dev/null) && [ -n "$prefix" ]; then
        dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
      fi
    fi
    local IFS=:
    for d in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do [ -n "$d" ] && dirs+=("$d"); done
    unset IFS
    for d in "$root"/usr/local/llvm*/lib* \
      "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* "$root"/usr/local/lib* \
      "$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*; do
      [ -d "$d" ] && dirs+=("$d")
    done
  fi
  for d in "${dirs[@]}"; do
    for f in "$d"/libclang.so "$d"/libclang-*.so "$d"/libclang.so.* "$d"/libclang-*.so.*; do
      if _libclang_name "${f##*/}" && _elf64 "$f"; then
        printf '%s\n' "$f"
        found=0
      fi
    done
  done
  return $found
)

# Whether a file name is one clang-sys takes for libclang's C library.
_libclang_name() {
  case $1 in
    *-cpp.*) return 1 ;;
    libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) return 0 ;;
    *) return 1 ;;
  esac
}

# Whether a file (after symlinks) starts with the ELF magic and the 64-bit class byte.
_elf64() {
  [ "$(head -c 5 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c4602 ]
}

# has_line LISTING PREFIX: whether a line of LISTING starts with PREFIX. Listings (of rustup)
# are captured first and searched here: `rustup ... | grep -q` fails under pipefail when grep
# exits early, and would then reinstall what is there.
has_line() {
  grep -q "^$2" <<<"$1"
}

# The workspace's MSRV, from `rust-version` in the root Cargo.toml (ROOT_DIR, default .).
msrv() {
  sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' "${1:-.}/Cargo.toml"
}
