"""Shell lines that run a compiled Flamenco job's tasks (flamenco/compile_job.js's JSON) in order,
as a worker would: each blender-render command is ``exe argsBefore blendfile args``. Each line
logs to LOG_DIR/TASK.log and appends "TASK EXIT_STATUS MILLISECONDS" to LOG_DIR/farm_tasks.txt.

    python scripts/_flamenco_task_lines.py TASKS.json LOG_DIR > tasks.sh
"""
import json
import shlex
import sys


def lines(tasks: list, log_dir: str) -> list:
    out = []
    for t in tasks:
        (cmd,) = t["commands"]
        if cmd["name"] != "blender-render":
            raise ValueError(f"{t['name']}: {cmd['name']} is not a command this runs")
        p = cmd["parameters"]
        argv = shlex.split(p["exe"]) + p["argsBefore"] + [p["blendfile"]] + p["args"]
        log, name = shlex.quote(f"{log_dir}/{t['name']}.log"), shlex.quote(t["name"])
        out.append(f"s=$(date +%s%N); {shlex.join(argv)} > {log} 2>&1; rc=$?; e=$(date +%s%N); "
                   f"echo {name} $rc $(( (e - s) / 1000000 )) >> {shlex.quote(log_dir + '/farm_tasks.txt')}")
    return out


if __name__ == "__main__":
    print("\n".join(lines(json.load(open(sys.argv[1]))["tasks"], sys.argv[2])))
