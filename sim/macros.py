"""Run config/failwatch_macros.cfg inside the emulated Klippy, the way Klipper does.

Klipper renders a macro's ``gcode:`` template with Jinja2 (``{ }`` for
expressions, ``{% %}`` for statements), with ``params`` (upper-case names,
string values), ``printer`` (the status objects) and
``action_call_remote_method``, then runs the rendered lines; a line naming
another macro runs that macro. This loader gives the emulated Klippy those
macros, so tests press the same buttons a user presses.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import jinja2

from sim.klippy import EmulatedKlippy, KlippyError, RemoteMethodNotRegistered, parse_gcode_line

MACROS_FILE = Path(__file__).resolve().parent.parent / "config" / "failwatch_macros.cfg"


def load_macros(path: Path = MACROS_FILE) -> dict[str, dict[str, Any]]:
    """{NAME: {"gcode": template text, "variables": {name: value}}} from a Klipper cfg."""
    import ast

    parser = configparser.RawConfigParser(comment_prefixes=("#", ";"),
                                          inline_comment_prefixes=None, strict=True)
    parser.read_string(path.read_text())
    macros: dict[str, dict[str, Any]] = {}
    for section in parser.sections():
        if not section.startswith("gcode_macro "):
            continue
        name = section.split(" ", 1)[1].strip().upper()
        variables = {}
        for key, value in parser.items(section):
            if key.startswith("variable_"):
                variables[key[len("variable_"):]] = ast.literal_eval(value)
        macros[name] = {"gcode": parser.get(section, "gcode"), "variables": variables}
    return macros


def install_macros(klippy: EmulatedKlippy, path: Path = MACROS_FILE) -> dict[str, Any]:
    """Define every macro of ``path`` in ``klippy`` with Klipper's template semantics."""
    env = jinja2.Environment("{%", "%}", "{", "}")
    macros = load_macros(path)

    def make_action(name: str) -> Any:
        template = env.from_string(macros[name]["gcode"])

        async def action(params: dict[str, str]) -> None:
            calls: list[tuple[str, dict[str, Any]]] = []

            def call_remote(method: str, **kwargs: Any) -> str:
                calls.append((method, kwargs))
                return ""

            text = template.render(params={k.upper(): v for k, v in params.items()},
                                   printer=klippy.status, action_call_remote_method=call_remote)
            for method, kwargs in calls:  # rendering happens before the lines run
                try:
                    await klippy.call_remote_method(method, **kwargs)
                except RemoteMethodNotRegistered:
                    pass  # Klipper only logs "Remote Call Error"
            for raw in text.splitlines():
                line = raw.strip()
                if not line:
                    continue
                klippy.gcode_lines.append(line)
                cmd = parse_gcode_line(line)
                if cmd is None:
                    continue
                try:
                    await klippy._run_command(cmd)  # already inside the G-code mutex
                except KlippyError:
                    raise

        return action

    for name, macro in macros.items():
        klippy.add_macro(name, make_action(name), macro["variables"])
    return macros
