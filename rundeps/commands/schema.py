"""``rundeps schema``: the JSON Schema of a command's ``--format json`` output."""

from __future__ import annotations

import json

import click

from .common import CONTEXT, handle_errors, ordered_options

NAMES = ("scan", "why", "wheel")
""":data:`rundeps.report.json.SCHEMA_NAMES`, written out: importing that
module here would make every ``rundeps --help``, which imports each
command, read the resolver too."""


@ordered_options
@click.command(context_settings=CONTEXT, short_help="Print the JSON Schema of a command's --format json output.")
@click.argument("name", type=click.Choice(NAMES), metavar="NAME")
@handle_errors
def schema(name: str) -> None:
    """Print the JSON Schema (draft 2020-12) of what 'rundeps NAME --format json'
    prints, NAME one of scan, why and wheel.

    The schema is the contract scripts can rely on: every key, its type, the
    values of the kind fields, and which objects take no other keys. Every
    object starts with "schema_version", an integer: it changes when a key
    is removed or its meaning changes; new keys may appear without a change,
    so check the version, not the set of keys. (wheel prints a list: each
    object in it has the key.)

    \b
    Examples:
      rundeps schema scan > scan.schema.json
      rundeps scan --format json > scan.json
      check-jsonschema --schemafile scan.schema.json scan.json
      rundeps schema why | jq '.["$defs"].file.required'

    Exits 0, or 2 on a NAME it does not know.
    """
    from ..api import json_schema

    click.echo(json.dumps(json_schema(name), indent=2))
