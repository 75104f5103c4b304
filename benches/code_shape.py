#!/usr/bin/env python3
"""The shape of the code, for issue 21's measures: the longest functions and the largest files
of a source tree (default `host/src`), tests (`#[cfg(test)] mod tests`) left out.

    python3 benches/code_shape.py [DIR] [N]

A function's length runs from its `fn` line to its closing brace, blank lines and comments
included (what a reader scrolls through). Braces inside strings, characters and comments do
not count.
"""

import pathlib
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def code_only(line, in_block):
    """The line without comments, strings and character literals; whether a block comment
    is still open at its end."""
    out, i = [], 0
    while i < len(line):
        if in_block:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 2, False
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_block, i = True, i + 2
        elif line[i] == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        elif line[i] == "'" and re.match(r"'(\\.|[^\\'])'", line[i:i + 4]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:i + 4]).group(0))
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_block


def without_tests(lines):
    """The lines before a `#[cfg(test)]` module."""
    for n, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and n + 1 < len(lines) and "mod tests" in lines[n + 1]:
            return lines[:n]
    return lines


def functions(path):
    lines = without_tests(path.read_text().splitlines())
    found, stack, in_block, depth = [], [], False, 0
    for number, line in enumerate(lines, 1):
        match = FN.match(line)
        code, in_block = code_only(line, in_block)
        if match and "{" in code:
            stack.append((match.group(6), number, depth))
        elif match and not code.rstrip().endswith(";"):
            # A signature over several lines: its body opens later.
            stack.append((match.group(6), number, depth))
        for char in code:
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                while stack and depth == stack[-1][2]:
                    name, start, _ = stack.pop()
                    found.append((number - start + 1, f"{path}:{start}", name))
        if match and code.rstrip().endswith(";") and stack and stack[-1][1] == number:
            stack.pop()
    return found, len(lines)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "host/src")
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    every, sizes = [], []
    for path in sorted(root.rglob("*.rs")):
        found, length = functions(path)
        every.extend(found)
        sizes.append((length, str(path)))
    print(f"longest functions under {root} (lines, tests left out):")
    for length, where, name in sorted(every, reverse=True)[:top]:
        print(f"  {length:5}  {name:<32} {where}")
    print(f"largest files under {root} (lines, tests left out):")
    for length, path in sorted(sizes, reverse=True)[:top]:
        print(f"  {length:5}  {path}")
    print(f"functions over 80 lines: {sum(1 for f in every if f[0] > 80)}; "
          f"files over 600 lines: {sum(1 for s in sizes if s[0] > 600)}")


if __name__ == "__main__":
    main()
