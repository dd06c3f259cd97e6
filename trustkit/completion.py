"""Shell completion scripts (bash, zsh, fish) made from a command's own argparse parser
by shtab, so they never drift from the grammar: ``trustkit completion bash`` and
``trustkit-server completion bash`` print them.

Options that take a file or a directory complete paths. A passthrough command
(``trustkit run …``) hands Docker's words to Docker's own bash completion when the
shell has it, else to file names: trustkit's options are never offered among Docker's.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["SHELLS", "script"]

SHELLS = ("bash", "zsh", "fish")
_PATH_METAVARS = {"FILE", "PATH", "KEY", "CERT"}
_DIR_METAVARS = {"DIR", "DIRECTORY"}


def script(parser: argparse.ArgumentParser, shell: str, passthrough: Sequence[str] = ()) -> str:
    """The completion script of ``parser``'s program for ``shell``."""
    import shtab  # only here: no other command needs it

    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell}; shells: {', '.join(SHELLS)}")
    for action in _actions(parser):
        kind = _path_kind(action)
        if kind is not None and getattr(action, "complete", None) is None:
            action.complete = shtab.DIRECTORY if kind == "dir" else shtab.FILE  # type: ignore[attr-defined]
    text: str = shtab.complete(parser, shell)
    if shell == "bash" and passthrough:
        text = _bash_passthrough(parser, text, passthrough)
    return text


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def _path_kind(action: argparse.Action) -> str | None:
    """ "file" or "dir" when the option names a path, by its type or its metavar."""
    if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
        return None
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if metavar.upper() in _DIR_METAVARS:
        return "dir"
    if action.type is Path or metavar.upper() in _PATH_METAVARS:
        return "file"
    return None


def _options(parsers: Sequence[argparse.ArgumentParser], *, values: bool) -> str:
    """The long options of ``parsers`` that take a value (or, not ``values``, none)."""
    found = {
        option
        for parser in parsers
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and (action.nargs != 0) == values
    }
    return " ".join(sorted(found))


def _bash_passthrough(parser: argparse.ArgumentParser, text: str, commands: Sequence[str]) -> str:
    """Wrap shtab's bash function: once a passthrough command's own options are behind
    the cursor, the words are Docker's."""
    prog = parser.prog
    function = "_shtab_" + "".join(c if c.isalnum() else "_" for c in prog)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own = [subparsers.choices[name] for name in commands]
    wrapper = _BASH_WRAPPER.format(
        function=function,
        commands=" ".join(commands),
        top_values=_options([parser], values=True),
        takes_value=_options(own, values=True),
        flags=_options(own, values=False),
    )
    hook = f"complete -o bashdefault -F {function} {prog}"
    if hook not in text:
        raise RuntimeError("shtab's bash script changed: no complete line to wrap")
    wrapped = f"complete -o bashdefault -o default -F {function}_passthrough {prog}"
    return text.replace(hook, wrapper + wrapped)


_BASH_WRAPPER = """
# The words after a passthrough command's own options are Docker's: Docker's completion
# (when the shell has it) or file names, never trustkit's options.
{function}_passthrough() {{
  local passthrough=" {commands} " top_values=" {top_values} "
  local takes_value=" {takes_value} " flags=" {flags} "
  local i=1 command="" start=-1 word
  while [ $i -lt $COMP_CWORD ]; do
    word="${{COMP_WORDS[$i]}}"
    if [ -z "$command" ]; then
      if [[ "$word" == -* ]]; then
        [[ "$word" != *=* && "$top_values" == *" $word "* ]] && i=$((i + 1))
      elif [[ "$passthrough" == *" $word "* ]]; then
        command="$word"
      else
        break
      fi
    elif [[ "$word" == --* && "$word" != *=* && "$takes_value" == *" $word "* ]]; then
      i=$((i + 1))
    elif ! [[ "$word" == --* && ( "$flags" == *" ${{word%%=*}} "* ||
              "$takes_value" == *" ${{word%%=*}} "* ) ]]; then
      start=$i
      break
    fi
    i=$((i + 1))
  done
  if [ -n "$command" ] && [ $start -lt 0 ] && [ $i -eq $COMP_CWORD ] &&
     [[ "${{COMP_WORDS[$COMP_CWORD]}}" != --* ]]; then
    start=$COMP_CWORD
  fi
  if [ -z "$command" ] || [ $start -lt 0 ]; then
    {function} "$@"
    return
  fi
  local words=(docker)
  [ "$command" != docker ] && words+=("$command")
  local cword=$(( ${{#words[@]}} + COMP_CWORD - start ))
  words+=("${{COMP_WORDS[@]:$start}}")
  COMPREPLY=()
  if ! declare -F _docker >/dev/null && declare -F _completion_loader >/dev/null; then
    _completion_loader docker >/dev/null 2>&1
  fi
  declare -F _docker >/dev/null || return 0  # the shell's default: file names
  local COMP_WORDS=("${{words[@]}}") COMP_CWORD=$cword
  local COMP_LINE="${{words[*]}}"
  local COMP_POINT=${{#COMP_LINE}}
  _docker docker "${{words[$cword]}}" "${{words[$cword-1]}}"
}}
"""
