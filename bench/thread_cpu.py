#!/usr/bin/env python3
"""The busiest threads of a user's processes over an interval, from /proc: CPU share of one core,
nice value, thread name and the process's title.

    bench/thread_cpu.py USER SECONDS [N]
"""
import os
import pwd
import sys
import time


def threads(uid):
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            title = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
                name = stat[stat.index("(") + 1:stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2:].split()
                ticks = int(fields[11]) + int(fields[12])  # utime + stime
                out[(int(pid), int(tid))] = (ticks, int(fields[16]), name, title)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return out


def main():
    user, seconds = sys.argv[1], float(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    uid = pwd.getpwnam(user).pw_uid
    hz = os.sysconf("SC_CLK_TCK")
    before = threads(uid)
    time.sleep(seconds)
    after = threads(uid)
    rows = []
    for key, (ticks, nice, name, title) in after.items():
        used = ticks - before.get(key, (ticks,))[0]
        rows.append((used / hz / seconds * 100, key[1], nice, name, title[:60]))
    rows.sort(reverse=True)
    print(f"{'%CPU':>6} {'TID':>7} {'NI':>3}  THREAD           PROCESS")
    for cpu, tid, nice, name, title in rows[:n]:
        print(f"{cpu:6.1f} {tid:7d} {nice:3d}  {name:<16} {title}")


if __name__ == "__main__":
    main()
