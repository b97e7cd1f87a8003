#!/usr/bin/env python3
"""genrun's own overhead while the agent runs: peak RSS and CPU of the genrun process (not the agent)
over a ~60 s scripted run (30 turns, a pause of 2 s each).

    cargo build --release && python3 bench/overhead.py [path/to/genrun]

Targets (issue 5): under 15 MiB RSS and under 1 % of one core.
"""
import json, os, subprocess, sys, tempfile, time

exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target", "release", "genrun")
exe = os.path.abspath(exe)
tick = os.sysconf("SC_CLK_TCK")

with tempfile.TemporaryDirectory() as d:
    args = [exe, "run", "--request-id", "overhead", "--prompt", "x", "--workspace", f"{d}/ws",
            "--output", f"{d}/out", "--agent-cmd", f"{exe} scripted-agent --script slow", "--log-format", "json"]
    if os.getuid() == 0:
        args.append("--allow-root-agent")
    start = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib, cpu_ticks = 0, 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                cpu_ticks = int(fields[11]) + int(fields[12])  # utime + stime of genrun itself
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
        time.sleep(0.2)
    wall = time.monotonic() - start
    result = json.load(open(f"{d}/out/overhead/result.json"))
    cpu_s = cpu_ticks / tick
    print(f"genrun overhead over a {wall:.1f} s scripted run ({result['agent']['turns']} turns, outcome {result['outcome']}):")
    print(f"  peak RSS      {peak_kib / 1024:.1f} MiB   (target < 15 MiB)")
    print(f"  CPU           {cpu_s:.2f} s = {100 * cpu_s / wall:.2f} % of one core   (target < 1 %)")
