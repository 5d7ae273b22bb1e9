"""benchutil.py - what the benchmark scripts share: printing a result table and writing it to
scripts/results/ (creating the folder)."""
import os


def write_table(lines, path):
    """Print the table (a list of lines) and write it to path."""
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
