"""Run every fuzz target and write the results: `python -m fuzz.run` (what `make fuzz` calls).

  --seconds S   the long run: each target fuzzes for S seconds (restarted after a crash until S
                is used up, every crash kept); the corpus grows in fuzz/corpus/<target>/
  --execs N     the long run by count: each target until N inputs (1,000,000 host, 100,000 device
                is issue #10's goal), with the kept corpus, restarted after a crash
  --runs N      the short, deterministic run: N inputs per target from the seeds only, fixed seed
  --seed S      libFuzzer's and the device mutator's seed (default 1)
  --only a,b    these targets (host names, or device.<name>)
  --out FILE    the JSON results (default fuzz/results.json): per target executions, crashes,
                exec/s (over the wall time, start-up included; host targets also libFuzzer's own
                figure of the last process, `fuzzing_exec_per_s`), peak memory (host: libFuzzer's peak RSS in MB; device: the peak of
                gc.mem_alloc() on the board heap), seconds, and the known defects hit (fuzz/known.py)
  --crashes DIR crashing inputs are saved here (default fuzz/crashes/), one file each

Host targets run under atheris (fuzz/atheris_main.py); device targets on the MicroPython unix port
with the esp32 profile's heap (fuzz/device.py). The exit status is 1 if any target crashed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz import device
from fuzz.targets import TARGETS, load

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
MAX_LEN = {"http": 16384, "ota": 8192, "dtls": 4096}
MAX_RESTARTS = 50


def _stat(text, name):
    m = re.findall(rf"stat::{name}:\s+(\d+)", text)
    return int(m[-1]) if m else 0


def _crash_kind(text):
    m = re.search(r"=== Uncaught Python exception: ===\n(.*)", text)
    return m.group(1)[:300] if m else ("timeout" if "timeout" in text.lower() else "libFuzzer error")


def _shown(path):
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def run_host(name, seconds, runs, seed, crashes, work, tolerate_known, execs=0):
    target = load(name)
    seeds_dir = work / "seeds"
    seeds_dir.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(target.seeds(str(work))):
        (seeds_dir / f"seed-{i:03d}").write_bytes(s)
    # the corpus kept between long runs holds no input that hits a tolerated defect
    long_run = bool(seconds or execs)
    corpus = (FUZZ_DIR / "corpus" / name) if long_run and not tolerate_known else (work / "corpus")
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), JANUA_FUZZ_WORKDIR=str(work / "world"))
    known_log = work / "known.json"
    if tolerate_known:
        env.update(JANUA_FUZZ_KNOWN="tolerate", JANUA_FUZZ_KNOWN_LOG=str(known_log))
    else:
        env.pop("JANUA_FUZZ_KNOWN", None)
    res = {"executions": 0, "crashes": 0, "crash_kinds": [], "crash_files": [], "peak_rss_mb": 0}
    t0 = time.monotonic()
    for attempt in range(MAX_RESTARTS if long_run else 1):
        left = seconds - (time.monotonic() - t0) if seconds else None
        if (seconds and left < 1) or (execs and res["executions"] >= execs):
            break
        budget = ([f"-max_total_time={int(left)}"] if seconds else
                  [f"-runs={execs - res['executions']}"] if execs else [f"-runs={runs}"])
        argv = [sys.executable, "-m", "fuzz.atheris_main", name, *budget, f"-seed={seed + attempt}",
                "-print_final_stats=1", "-timeout=20", "-rss_limit_mb=2048", f"-max_len={MAX_LEN.get(name, 4096)}",
                f"-artifact_prefix={crashes}/{name}-"]
        if (FUZZ_DIR / "dicts" / f"{name}.dict").is_file():
            argv.append(f"-dict={FUZZ_DIR / 'dicts' / f'{name}.dict'}")
        argv += [str(corpus), str(seeds_dir)]
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace",
                           timeout=(seconds or (86400 if execs else 600)) + 300)
        out = p.stdout + p.stderr
        res["executions"] += _stat(out, "number_of_executed_units")
        res["peak_rss_mb"] = max(res["peak_rss_mb"], _stat(out, "peak_rss_mb"))
        res["fuzzing_exec_per_s"] = _stat(out, "average_exec_per_sec")     # libFuzzer's, without start-up
        if p.returncode == 0:
            break
        res["crashes"] += 1
        res["crash_kinds"].append(_crash_kind(out))
        for f in re.findall(r"Test unit written to (\S+)", out):
            res["crash_files"].append(_shown(f))
            # libFuzzer names corpus files by the SHA-1 of their content, as it names the crash:
            # a crashing input found while loading the corpus must not stop every restart
            (corpus / Path(f).name.rsplit("-", 1)[-1]).unlink(missing_ok=True)
        if not res["crash_files"] and not res["executions"]:
            res["crash_kinds"][-1] += " | " + out[-2000:]
    kinds = {}
    for k in res["crash_kinds"]:
        kinds[k] = kinds.get(k, 0) + 1
    res["crash_kinds"] = [f"{k} (x{n})" for k, n in kinds.items()]
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["exec_per_s"] = round(res["executions"] / res["seconds"], 1) if res["seconds"] else 0
    res["known"] = json.loads(known_log.read_text()) if known_log.is_file() else {}
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--execs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=str(FUZZ_DIR / "results.json"))
    ap.add_argument("--crashes", default=str(FUZZ_DIR / "crashes"))
    ap.add_argument("--tolerate-known", action="store_true",
                    help="count the open defects of fuzz/known.py instead of stopping at them (the short run)")
    a = ap.parse_args(argv)
    if sum(map(bool, (a.seconds, a.runs, a.execs))) != 1:
        ap.error("give exactly one of --seconds, --execs and --runs")
    names = [n for n in a.only.split(",") if n] or list(TARGETS) + [f"device.{d}" for d in device.TARGETS]
    crashes = Path(a.crashes)
    results = {}
    work_root = Path(tempfile.mkdtemp(prefix="janua-fuzz-run-"))
    try:
        for name in names:
            work = work_root / name
            work.mkdir(parents=True)
            if name.startswith("device."):
                res = device.run(name[7:], a.seconds, a.runs or a.execs, a.seed, crashes, work)
            else:
                res = run_host(name, a.seconds, a.runs, a.seed, crashes, work, a.tolerate_known, a.execs)
            key = name if name.startswith("device.") else "host." + name
            results[key] = res
            print(f"{key:24} {res['executions']:>9} execs {res['exec_per_s']:>9.1f}/s  crashes {res['crashes']}"
                  + (f"  known: {', '.join(res['known'])}" if res.get("known") else ""), flush=True)
            for kind in res["crash_kinds"]:
                print(f"    crash: {kind[:400]}", flush=True)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    doc = {"mode": {"seconds_per_target": a.seconds} if a.seconds else
           {"executions_per_target": a.execs} if a.execs else {"runs_per_target": a.runs, "seed": a.seed},
           "targets": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 1 if any(r["crashes"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
