"""Starting programs in a simulated guest: argv lookup like ``execvp``, and a tiny ``sh -c``.

The shell understands what people and agents type most: simple commands with
quoting, pipelines (``a | head -n 3``) and lists (``a && b``, ``a || b``, ``a; b``),
plus ``exit``. Anything else (variables, globs, redirections, subshells) is
refused with a message that names the simulator, never guessed at.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from simulator.guest_commands import BASE_SECONDS, Outcome, Program, Session, Stream
from simulator.guest_programs import LINUX_BIN_DIRS, LINUX_PROGRAMS, WINDOWS_PROGRAMS

SHELLS = ("sh", "bash", "dash")
LIST_OPERATORS = ("&&", "||", ";")
UNSUPPORTED_CHARS = ("$", "`", "*", "?", "~")
_END = "\0end"  # marks the end of the token list


class SpawnFailed(Exception):
    """The agent could not start the program (it does not exist in the guest)."""

    def __init__(self, program: str) -> None:
        super().__init__(program)
        self.program = program


def _linux_program(name: str) -> Program | None:
    if "/" in name:
        folder, _, base = name.rpartition("/")
        if folder not in LINUX_BIN_DIRS:
            return None
        name = base
    if name in SHELLS:
        return shell
    return LINUX_PROGRAMS.get(name)


def _windows_program(name: str) -> Program | None:
    base = name.replace("/", "\\").rsplit("\\", 1)[-1].lower().removesuffix(".exe")
    return WINDOWS_PROGRAMS.get(base)


def find_program(session: Session, name: str) -> Program | None:
    if session.machine.distro.family == "windows":
        return _windows_program(name)
    return _linux_program(name)


def run_argv(session: Session, argv: list[str], stdin: Stream) -> Outcome:
    """Run a program the way qemu-ga spawns it (no shell); raises ``SpawnFailed``."""
    program = find_program(session, argv[0])
    if program is None:
        raise SpawnFailed(argv[0])
    if program is shell:
        return _run_shell(session, argv, stdin)
    return program(session, argv[1:], stdin)


# ------------------------------------------------------------------- shell


@dataclass(frozen=True)
class ShellDialect:
    name: str
    dash: bool  # dash words its errors "sh: 1: X: not found"; bash "bash: line 1: ..."

    def error(self, message: str) -> str:
        return f"{self.name}: 1: {message}\n" if self.dash else f"{self.name}: line 1: {message}\n"

    def not_found(self, program: str) -> str:
        return self.error(f"{program}: not found" if self.dash else f"{program}: command not found")


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def shell(session: Session, args: list[str], stdin: Stream) -> Outcome:
    """Placeholder in the program table; ``run_argv`` passes shells the whole argv."""
    return _run_shell(session, ["sh", *args], stdin)


def _run_shell(session: Session, argv: list[str], stdin: Stream) -> Outcome:
    name = argv[0].rsplit("/", 1)[-1]
    dash = name == "dash" or (name == "sh" and session.machine.distro.sh_is_dash)
    dialect = ShellDialect(name, dash)
    args = argv[1:]
    if args[:1] == ["-c"]:
        if len(args) < 2:
            return Outcome(stderr=f"{name}: -c: option requires an argument\n", exitcode=2)
        script, script_stdin = args[1], stdin
    elif not args:
        script, script_stdin = stdin.text, Stream()  # the script comes on stdin
    else:
        return Outcome(stderr=f"{name}: running script files is not simulated\n", exitcode=2)
    return run_script(session, dialect, script, script_stdin)


def _tokens(script: str) -> list[str] | str:
    """Words and operators, or an error message."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:
        return "Syntax error: Unterminated quoted string"


def run_script(session: Session, dialect: ShellDialect, script: str, stdin: Stream) -> Outcome:
    if any(ch in script for ch in UNSUPPORTED_CHARS):
        return _unsupported(dialect)
    tokens = _tokens(script)
    if isinstance(tokens, str):
        return Outcome(stderr=dialect.error(tokens), exitcode=2)
    operators = {t for t in tokens if t and set(t) <= set(";&|<>()")}
    if operators - {"|", *LIST_OPERATORS}:
        return _unsupported(dialect)
    # Split into (operator-before, pipeline) items; a dangling operator is a syntax error.
    items: list[tuple[str, list[list[str]]]] = []
    joiner = ";"
    pipeline: list[list[str]] = []
    words: list[str] = []
    for part in [*tokens, _END]:
        if part == _END and not words:
            if pipeline or joiner in ("&&", "||"):
                return _syntax_error(dialect, "end of file unexpected")
            break
        if part in LIST_OPERATORS or part in ("|", _END):
            if not words:
                return _syntax_error(dialect, f'"{part}" unexpected')
            pipeline.append(words)
            words = []
            if part != "|":
                items.append((joiner, pipeline))
                joiner, pipeline = part, []
        else:
            words.append(part)
    return _run_list(session, dialect, items, stdin)


def _syntax_error(dialect: ShellDialect, what: str) -> Outcome:
    return Outcome(stderr=dialect.error(f"Syntax error: {what}"), exitcode=2)


def _unsupported(dialect: ShellDialect) -> Outcome:
    return Outcome(
        stderr=f"{dialect.name}: simulator: only simple commands, quotes, |, &&, || and ; "
        "are simulated (no variables, globs, redirections or subshells)\n",
        exitcode=2,
    )


def _run_list(session: Session, dialect: ShellDialect,
              items: list[tuple[str, list[list[str]]]], stdin: Stream) -> Outcome:  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    seconds, status = 0.0, 0
    for joiner, pipeline in items:
        if (joiner == "&&" and status != 0) or (joiner == "||" and status == 0):
            continue
        try:
            result = _run_pipeline(session, dialect, pipeline, stdin)
        except _Exit as done:
            return Outcome("".join(out), "".join(err), done.code, seconds + BASE_SECONDS)
        out.append(result.stdout)
        err.append(result.stderr)
        seconds += result.seconds
        status = result.exitcode
        if result.more:
            return Outcome("".join(out), "".join(err), status, seconds, result.more)
    return Outcome("".join(out), "".join(err), status, seconds + BASE_SECONDS)


def _run_pipeline(session: Session, dialect: ShellDialect, pipeline: list[list[str]],
                  stdin: Stream) -> Outcome:  # fmt: skip
    source = stdin
    err: list[str] = []
    seconds = 0.0
    result = Outcome()
    for index, words in enumerate(pipeline):
        result = _run_simple(session, dialect, words, source if index == 0 else result.output,
                             alone=len(pipeline) == 1)  # fmt: skip
        err.append(result.stderr)
        seconds = max(seconds, result.seconds)  # the programs of a pipeline run side by side
        source = Stream()
    return Outcome(result.stdout, "".join(err), result.exitcode, seconds, result.more)


def _run_simple(session: Session, dialect: ShellDialect, words: list[str], stdin: Stream,
                *, alone: bool) -> Outcome:  # fmt: skip
    name, args = words[0], words[1:]
    if name == "exit":
        code = int(args[0]) if args and args[0].isdigit() else 0
        if alone:
            raise _Exit(code % 256)
        return Outcome(exitcode=code % 256)
    program = find_program(session, name)
    if program is None:
        return Outcome(stderr=dialect.not_found(name), exitcode=127)
    if program is shell:
        return _run_shell(session, words, stdin)
    return program(session, args, stdin)
