#!/usr/bin/env python3
"""Side-by-side measurements of the bench example against liburing, fio and fio's t/io_uring,
as recorded in BENCHMARKS.md ("The bench tool"). Not run by CI.

    python3 bench/side-by-side.py [PART ...] [--dir DIR] [--rounds N] [--secs S] [--tio PATH]

PARTs (default: all of them, in this order):
  counts    user-space instructions per NOP (callgrind, difference of two run lengths), per
            layer and for liburing
  flat      instructions per NOP as the ring grows (16 to 4096 entries, batch 16, then batch =
            depth) and as the run grows (10^4 to 10^7 ops)
  nop       NOP ops/s, every layer and liburing (and t/io_uring with --tio), alternating
  direct    random 4 KiB O_DIRECT reads at depth 32, batch 8: every layer, liburing, fio (and
            t/io_uring), alternating, on one file
  buffered  the same through the page cache (fio with --invalidate=0)
  sqpoll    io_uring_enter calls of a run with SQPOLL, per layer (perf's syscall tracepoint)

It needs cargo, valgrind (counts, flat), cc and liburing-dev (liburing), fio (direct,
buffered) and perf (sqpoll). The read file is a 256 MiB file of random bytes made in --dir
(default /var/tmp, which must be on a disk file system for O_DIRECT) and removed at the end.
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "examples", "bench")
LIBURING = os.path.join(ROOT, "target", "liburing-bench")
LAYERS = ["core", "ops", "ctx", "io-uring"]


def sh(cmd, **kw):
    """Runs `cmd`, returning its stdout; stderr too when `both`."""
    both = kw.pop("both", False)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + (r.stderr if both else "")


def build():
    sh(["cargo", "build", "--release", "-p", "uring-ops", "--example", "bench"], cwd=ROOT)
    if shutil.which("cc"):
        sh(["cc", "-O2", "-o", LIBURING, os.path.join(ROOT, "bench", "liburing.c"), "-luring"])


def ops_per_sec(out):
    """The RESULT line's ops/s and, when the run printed it, its CPU ns per op."""
    m = re.search(r"^RESULT .* ops_per_sec=(\d+)$", out, re.M)
    if not m:
        sys.exit(f"no RESULT line in:\n{out}")
    c = re.search(r"^  cpu: ([\d.]+) ns per op", out, re.M)
    return float(m.group(1)), float(c.group(1)) if c else None


def instructions(cmd):
    out = sh(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + cmd, both=True)
    return int(re.search(r"Collected : ([\d,]+)", out).group(1).replace(",", ""))


def per_op(cmd, n1, n2):
    """Instructions per op: the difference of two run lengths, which cancels setup."""
    a, b = instructions(cmd + ["--ops", str(n1)]), instructions(cmd + ["--ops", str(n2)])
    return (b - a) / (n2 - n1), a, b


def counts(args):
    print("\n## User-space instructions per NOP, depth 32, batch 32 (callgrind)\n")
    print("| layer | Ir at 320,000 ops | Ir at 3,520,000 ops | per NOP | vs io-uring |")
    print("|---|---:|---:|---:|---:|")
    rows = [(l, [BENCH, "nop", "--layer", l]) for l in LAYERS]
    if os.path.exists(LIBURING):
        rows.append(("liburing (C)", [LIBURING, "nop"]))
    got = {name: per_op(cmd, 320_000, 3_520_000) for name, cmd in rows}
    base = got["io-uring"][0]
    for name, (p, a, b) in got.items():
        print(f"| {name} | {a:,} | {b:,} | {p:.2f} | {p / base:.2f} |")


def flat(args):
    depths = [16, 64, 256, 1024, 4096]
    for fixed in [True, False]:
        if fixed:
            print("\n## Instructions per NOP as the ring grows (batch 16; 1,000 and 11,000 "
                  "batches)\n")
        else:
            print("\n## Instructions per NOP as the ring and the batch grow (batch = depth; "
                  "100 and 1,100 batches)\n")
        print("| layer | " + " | ".join(f"depth {d}" for d in depths) + " | spread |")
        print("|---|" + "---:|" * (len(depths) + 1))
        for l in ["core", "ops", "io-uring"]:
            ps = []
            for d in depths:
                b = 16 if fixed else d
                n = 1000 if fixed else 100
                cmd = [BENCH, "nop", "--layer", l, "--depth", str(d), "--batch", str(b)]
                ps.append(per_op(cmd, n * b, 11 * n * b)[0])
            spread = max(ps) / min(ps) - 1
            print(f"| {l} | " + " | ".join(f"{p:.2f}" for p in ps) + f" | {spread:.1%} |")
    print("\n## Instructions per NOP as the run grows (depth 32, batch 32; per op between "
          "consecutive lengths)\n")
    lengths = [10_000, 100_000, 1_000_000, 10_000_000]
    print("| layer | " + " | ".join(f"{a:,} to {b:,}" for a, b in zip(lengths, lengths[1:]))
          + " | spread |")
    print("|---|" + "---:|" * len(lengths))
    for l in ["core", "ops", "io-uring"]:
        ir = [instructions([BENCH, "nop", "--layer", l, "--ops", str(n)]) for n in lengths]
        ps = [(ir[i + 1] - ir[i]) / (lengths[i + 1] - lengths[i]) for i in range(len(ir) - 1)]
        spread = max(ps) / min(ps) - 1
        print(f"| {l} | " + " | ".join(f"{p:.2f}" for p in ps) + f" | {spread:.1%} |")


def fio_iops(out):
    """fio's IOPS, and its CPU time (user and system, of the whole job) per I/O."""
    job = json.loads(out[out.index("{"):])["jobs"][0]
    ios, ms = job["read"]["total_ios"], job["job_runtime"]
    cpu = (job["usr_cpu"] + job["sys_cpu"]) / 100 * ms * 1e6 / max(ios, 1)
    return float(job["read"]["iops"]), cpu


def tio_secs(args):
    """t/io_uring prints one IOPS line per whole second after the first: at least 2 s."""
    return max(2, round(args.secs))


def tio_iops(out):
    v = [float(x.replace("M", "e6").replace("K", "e3"))
         for x in re.findall(r"^IOPS=([\d.]+[MK]?),", out, re.M)]
    if not v:
        sys.exit(f"no IOPS line from t/io_uring:\n{out}")
    return statistics.mean(v), None


def alternate(title, runners, base, rounds):
    """Runs every runner once per round, in a rotated order, and prints each one's median
    ops/s and CPU time per op, and the median of its per-round ratios to `base`."""
    names = list(runners)
    got = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            got[n].append(runners[n]())
        print(f"  round {r + 1}/{rounds}: "
              + ", ".join(f"{n} {got[n][-1][0]:,.0f}" for n in names), file=sys.stderr)
    print(f"\n## {title} ({rounds} rounds, alternating)\n")
    print(f"| runner | median ops/s | vs {base} (median of per-round ratios) | min | max "
          f"| median CPU ns/op | vs {base}, CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in names:
        ratios = [a[0] / b[0] for a, b in zip(got[n], got[base])]
        cpu = [a[1] for a in got[n] if a[1] is not None]
        cpu_r = [b[1] / a[1] for a, b in zip(got[n], got[base])
                 if a[1] is not None and b[1] is not None]
        print(f"| {n} | {statistics.median(x[0] for x in got[n]):,.0f} "
              f"| {statistics.median(ratios):.3f} | {min(ratios):.3f} | {max(ratios):.3f} "
              + (f"| {statistics.median(cpu):.1f} " if cpu else "| - ")
              + (f"| {statistics.median(cpu_r):.3f} |" if cpu_r else "| - |"))
    print(f"\n(ratios: higher is faster; the CPU ratio is {base}'s CPU time per op over the "
          "runner's, per round. CPU: user and system time of the loop's threads for the bench "
          "layers and liburing, of the whole job for fio; none for t/io_uring.)")


def bench_runner(*a):
    return lambda: ops_per_sec(sh([BENCH] + list(a)))


def nop(args):
    s = str(args.secs)
    runners = {l: bench_runner("nop", "--layer", l, "--secs", s) for l in LAYERS}
    if os.path.exists(LIBURING):
        runners["liburing"] = lambda: ops_per_sec(sh([LIBURING, "nop", "--secs", s]))
    if args.tio:
        runners["t/io_uring"] = lambda: tio_iops(sh(
            [args.tio, "-N1", "-d32", "-s32", "-c32", "-p0", "-B0", "-F0", "-X0",
             f"-r{tio_secs(args)}", args.file]))
    alternate("NOP, depth 32, batch 32", runners, "io-uring", args.rounds)


def reads(args, direct):
    s = str(args.secs)
    extra = [] if direct else ["--buffered"]
    runners = {l: bench_runner("read", "--layer", l, "--file", args.file, "--secs", s, *extra)
               for l in LAYERS}
    if os.path.exists(LIBURING):
        runners["liburing"] = lambda: ops_per_sec(
            sh([LIBURING, "read", "--file", args.file, "--secs", s] + extra))
    if shutil.which("fio"):
        fio = ["fio", "--name=bench", f"--filename={args.file}", "--ioengine=io_uring",
               "--rw=randread", "--bs=4k", f"--direct={int(direct)}", "--iodepth=32",
               "--iodepth_batch_submit=8", "--iodepth_batch_complete_min=8",
               "--iodepth_batch_complete_max=32", "--time_based",
               f"--runtime={int(args.secs * 1000)}ms", "--invalidate=0", "--norandommap",
               "--randrepeat=0", "--thread", "--output-format=json"]
        runners["fio"] = lambda: fio_iops(sh(fio))
    if args.tio:
        runners["t/io_uring"] = lambda: tio_iops(sh(
            [args.tio, "-d32", "-s8", "-c8", "-b4096", "-p0", "-B0", "-F0", "-X0",
             f"-O{int(direct)}", f"-r{tio_secs(args)}", args.file]))
    how = "O_DIRECT" if direct else "page cache"
    base = "fio" if direct and "fio" in runners else "io-uring"
    alternate(f"Random 4 KiB reads ({how}), depth 32, batch 8", runners, base, args.rounds)


def sqpoll(args):
    print("\n## io_uring_enter calls with SQPOLL (perf, syscalls:sys_enter_io_uring_enter)\n")
    print("| run | ops | io_uring_enter calls | per op |")
    print("|---|---:|---:|---:|")
    for mode in ["nop", "read"]:
        for l in ["core", "ops", "io-uring", "ctx"]:
            cmd = [BENCH, mode, "--layer", l, "--secs", "1", "--sqpoll"]
            if mode == "read":
                cmd += ["--file", args.file, "--buffered"]
            out = sh(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_io_uring_enter"] + cmd,
                     both=True)
            ops = int(re.search(r" ops=(\d+) ", out).group(1))
            calls = int(re.search(r"^(\d+),,syscalls:sys_enter_io_uring_enter", out, re.M)
                        .group(1))
            print(f"| {' '.join(cmd[1:])} | {ops:,} | {calls:,} | {calls / max(ops, 1):.5f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("parts", nargs="*",
                   default=["counts", "flat", "nop", "direct", "buffered", "sqpoll"])
    p.add_argument("--dir", default="/var/tmp")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--secs", type=float, default=1.0)
    p.add_argument("--tio", help="fio's t/io_uring binary (built from fio's sources)")
    args = p.parse_args()
    build()
    fs = sh(["stat", "-f", "-c", "%T", args.dir]).strip()
    args.file = os.path.join(args.dir, f"uring-bench-{os.getpid()}")
    print(f"read file: {args.file} (256 MiB, {fs})")
    with open(args.file, "wb") as f:
        rng = random.Random(1)
        for _ in range(256):
            f.write(rng.randbytes(1 << 20))
        f.flush()
        os.fsync(f.fileno())
    try:
        for part in args.parts:
            {"counts": counts, "flat": flat, "nop": nop, "sqpoll": sqpoll,
             "direct": lambda a: reads(a, True),
             "buffered": lambda a: reads(a, False)}[part](args)
    finally:
        os.remove(args.file)


if __name__ == "__main__":
    main()
