"""
The command line every script shares: flags with help and their defaults in `-h`, and a user's
mistake answered in one line on stderr, `error: ...`, with exit status 2, never a traceback.

A script's defaults are a dataclass whose fields are made with `opt(default, help)`; `parse_config`
builds argparse from it (a bool field is a switch, `type` and `choices` where given), so the help
text sits beside the default it explains:

    @dataclass
    class Config:
        lr: float = opt(1e-4, "peak learning rate")
        task: str = opt("ner", "what to learn", choices=["ner", "classify"])
    cfg = parse_config(Config, argv, description="...")

`ArgumentParser` is argparse with every default shown in `-h` and a bad flag reported in one line
(`error: argument --task: invalid choice ...`); `at_least` and `above` are argparse types for counts
and sizes. `run_main(main)` runs a script's main and turns the mistakes a user makes with input
(a missing file or folder, a file that is not UTF-8, a malformed line: DataError, which names the
file and the line) into that one line. Any other exception is a bug and keeps its traceback.

    python -m pytest -q tests/test_cli.py      # every script's answer to bad input and -h
"""
import argparse
import functools
import os
import shlex
import sys
from dataclasses import MISSING, field, fields


class Stopped(Exception):
    """A run stopped by something the user can fix that is not a file: a server that refuses the model, the key or
    the request (llm.Fatal). run_main says it in one line, as it says a DataError."""


class DataError(ValueError):
    """A malformed data file or model folder; the message names the file and the line.
    Every script imports it from here, its one home, so run_main catches the one class in every script."""


def opt(default, help, type=None, choices=None, required=False, nargs=None, positional=False, aliases=()):
    """A dataclass field with its -h help; `type` when the default does not show it (None), `choices` when fixed,
    `required` for a flag without which the script cannot run, `nargs` ("*", "+") for a list of values (a list
    default is given as a function: default=lambda: [...]), `positional` for an argument without --name, `aliases`
    for older names of the flag that committed commands still use."""
    meta = {"help": help, "type": type, "choices": choices, "required": required, "nargs": nargs,
            "positional": positional, "aliases": aliases}
    return field(default_factory=default, metadata=meta) if callable(default) else field(default=default, metadata=meta)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's '(default: ...)' after every help text but a required flag's (it has none); an empty
    string shows as '' rather than nothing."""

    def _get_help_string(self, action):
        if action.required:
            return action.help
        text = super()._get_help_string(action)
        return text.replace("%(default)s", "''") if action.default == "" else text


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the defaults in -h, and a usage mistake in one line instead of the usage block."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see python {self.prog} -h)\n")


def at_least(low, kind=int):
    """An argparse type: a `kind` (int or float) no smaller than `low`, e.g. type=at_least(1) for a batch size."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} >= {low}, "
                                             f"got {text!r}")
        return value
    return parse


def int_list(text):
    """An argparse type: comma-separated integers >= 0, such as seeds (0,1,2) or sizes (8,32)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return values


def above(low):
    """An argparse type: a float strictly greater than `low`, e.g. type=above(0) for a learning rate."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not value > low:  # `not >` also refuses nan
            raise argparse.ArgumentTypeError(f"expected a number > {low}, got {text!r}")
        return value
    return parse


def add_flags(p, cls):
    """One --flag on parser p per field of the dataclass `cls`, help, type and choices from its opt()."""
    for f in fields(cls):
        meta = f.metadata
        default = (f.default if f.default is not MISSING
                   else f.default_factory() if f.default_factory is not MISSING else None)
        help = (meta.get("help") or "").replace("%", "%%")  # argparse formats help with %
        if f.type in (bool, "bool"):
            action = "store_true" if not default else argparse.BooleanOptionalAction
            p.add_argument(f"--{f.name}", action=action, default=default, help=help)
            continue
        if meta.get("type"):
            kind = meta["type"]
        elif meta.get("nargs"):  # a list: the type of its items
            kind = type(default[0]) if default else str
        else:
            kind = f.type if isinstance(f.type, type) else type(default)
        if meta.get("positional"):
            p.add_argument(f.name, type=kind, choices=meta.get("choices"), help=help, nargs=meta.get("nargs"))
        else:
            p.add_argument(f"--{f.name}", *(f"--{a}" for a in meta.get("aliases", ())), type=kind, default=default,
                           choices=meta.get("choices"), help=help, required=bool(meta.get("required")),
                           nargs=meta.get("nargs"))
    return p


def command_line(script, cfg, command=None):
    """The command that gives `cfg` (a dataclass of opt() fields): `python SCRIPT [COMMAND] --flag value ...` for each
    flag that differs from its default, in the dataclass's order. A run's record keeps it, so the run can be made
    again whether it was started from the shell or by a pipeline in-process."""
    words = ["python", script] + ([command] if command else [])
    for f in fields(cfg):
        default = (f.default if f.default is not MISSING
                   else f.default_factory() if f.default_factory is not MISSING else None)
        value = getattr(cfg, f.name)
        if value == default:
            continue
        if f.type in (bool, "bool"):
            words.append(f"--{f.name}" if value else f"--no-{f.name}")
        elif f.metadata.get("positional"):
            words += [str(v) for v in value] if f.metadata.get("nargs") else [str(value)]
        elif f.metadata.get("nargs"):
            words += [f"--{f.name}", *map(str, value)]
        else:
            words += [f"--{f.name}", str(value)]
    return shlex.join(words)


def config_parser(cls, description=None, epilog=None):
    """An ArgumentParser with one --flag per field of the dataclass `cls`."""
    return add_flags(ArgumentParser(description=description, epilog=epilog), cls)


def parse_config(cls, argv=None, description=None, epilog=None):
    """The dataclass `cls` filled from the command line (argv: a list, default sys.argv[1:])."""
    return cls(**vars(config_parser(cls, description, epilog).parse_args(argv)))


def parse_command(commands, argv=None, description=None, default=None):
    """For a script with subcommands (`python gendist.py generate ...`): `commands` maps each name to (dataclass,
    one line of help); returns (name, that dataclass filled from the rest of the command line). `-h` lists the
    commands, `NAME -h` the flags of one. With `default`, a command line that names no command is that one's."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if default and not (argv[:1] and (argv[0] in commands or argv[0] in ("-h", "--help"))):
        argv = [default, *argv]
    p = ArgumentParser(description=description,
                       epilog=f"python {os.path.basename(sys.argv[0])} COMMAND -h lists the flags "
                              "of a command" + (f"; with none named, the command is {default}" if default else ""))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name, (cls, help) in commands.items():
        add_flags(sub.add_parser(name, help=help, description=help), cls)
    if not (argv[:1] and (argv[0] in commands or argv[0] in ("-h", "--help"))):
        names = list(commands)
        p.error(f"expected a command, {', '.join(names[:-1])} or {names[-1]}, got {argv[0] if argv else 'none'}")
    args = vars(p.parse_args(argv))
    name = args.pop("command")
    return name, commands[name][0](**args)


def error_message(e):
    """What a user needs to read of an input mistake: the file and what is wrong with it."""
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return str(e)


def stop_in_one_line(main):
    """A script's main that, when its run is stopped (Stopped: a server refused the model or the key), says why in one
    line on stderr and returns 2, as run_main would exit: for scripts whose main is also called directly (tests)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Stopped as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return wrapped


def run_main(main, *args):
    """Run a script's main(*args) and exit with what it returns (an int is the status). A user's input
    mistake (DataError: a malformed, empty or non-UTF-8 file, with its name and line; OSError: a
    file or folder that is missing or cannot be read) ends the run with `error: <message>` on stderr
    and status 2. Anything else is a bug: it is not caught, and Python prints its traceback."""
    try:
        status = main(*args)
    except (DataError, Stopped, OSError, UnicodeDecodeError) as e:
        print(f"error: {error_message(e)}", file=sys.stderr)
        sys.exit(2)
    if isinstance(status, int):
        sys.exit(status)
