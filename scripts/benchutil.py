"""benchutil.py - what the benchmark scripts share: printing a result table and writing it to
scripts/results/ (creating the folder)."""
import os


def command_line():
    """The command that ran this script, as a user would retype it from the repository root."""
    import shlex
    import sys
    script = os.path.relpath(os.path.abspath(sys.argv[0]),
                             os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return " ".join(shlex.quote(x) for x in [script] + sys.argv[1:])


def write_table(lines, path, echo=True):
    """Write the table (a list of lines) to path, printing it too unless echo is false (a partial
    table rewritten while a long benchmark runs). A last line names the command that made it,
    unless the table already has one."""
    if not any(l.startswith("Command:") or " Command: " in l for l in lines):
        lines = list(lines) + ["", "Command: `%s`." % command_line()]
    text = "\n".join(lines) + "\n"
    if echo:
        print(text)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_json(records, path):
    """Write records (JSON-serialisable) to path, indented."""
    import json
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(records, f, indent=1)


def mean_std(v, spec="%.2f"):
    """'mean ± sample std' of the values v (the value alone for one, '-' for none)."""
    import statistics
    if not v:
        return "-"
    if len(v) == 1:
        return spec % v[0]
    return (spec + " ± " + spec) % (statistics.mean(v), statistics.stdev(v))


def pyplot(prog):
    """matplotlib.pyplot on the file-only Agg backend, or None (with a note) without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        import sys
        print("%s: matplotlib not available, no plot" % prog, file=sys.stderr)
        return None
    return plt


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
