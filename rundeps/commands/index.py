"""``rundeps index show|update|clear``: the cached repository indexes."""

from __future__ import annotations

import os

import click

from .common import CONTEXT, FORMAT_HELP, Reporter, ordered_options, handle_errors, make_sources, parse_root, source_options


@click.group(context_settings=CONTEXT, short_help="Inspect, refresh or drop the cached repository indexes.")
def index():
    """Inspect, refresh or drop the cached repository indexes.

    The indexes are the ones the source options name (--index, --repo,
    --alpine, or the root's etc/apk/repositories); show without any lists
    every cached index.
    """


def _index_locations(kw, allow_all: bool):
    from ..api import index_locations, target_arch

    root, explicit_root = parse_root(kw["root"])
    sources = make_sources(kw)
    arch = target_arch(kw["arch"], root, explicit_root)
    if sources.names_index():
        return index_locations(sources, root, arch), root, arch, sources
    if explicit_root:
        return index_locations(sources, root, arch, from_root=True), root, arch, sources
    if allow_all:
        return [], root, arch, sources
    from ..errors import UsageError

    raise UsageError("name the indexes: --index, --repo, --alpine or --root")


SELECT = ("root", "index", "repo", "alpine", "mirror", "arch")
"""The options that name indexes."""


def _print_infos(infos, fmt: str, none: str = "") -> None:
    import json
    from dataclasses import asdict

    from ..apk.fetch import format_age

    if fmt == "json":
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    if not infos and none:
        click.echo(none)
    for i in infos:
        click.echo(i.location)
        if not i.cached:
            click.echo("  not cached")
        if not i.sha256:
            continue
        algo = {"sha1": "RSA/SHA-1", "sha256": "RSA/SHA-256"}.get(i.algo or "", i.algo or "?")
        trust = "verified" if i.verified else "NOT verified"
        click.echo(f"  description  {i.description or '-'}")
        click.echo(f"  arch         {i.arch or '-'}")
        click.echo(f"  packages     {i.package_count}")
        click.echo(f"  so: provides {i.so_provide_count}")
        click.echo(f"  signer       {i.signer or '-'} ({algo}, {trust})")
        if i.key_path:
            click.echo(f"  key          {i.key_path}" + (" (Alpine's, shipped with rundeps)" if i.key_bundled else ""))
        elif i.verified:
            click.echo("  key          not trusted now (not among the trusted keys)")
        if i.cached:
            click.echo(f"  checked      {format_age(i.age)}")


@ordered_options
@index.command("show", context_settings=CONTEXT, short_help="Describe the cached indexes (reads only the cache).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help=f"{FORMAT_HELP}. text: a block an index; json: a JSON list of objects, one an index.")
@source_options(only=SELECT + ("keys-dir", "cache-dir"), scope="index")
@handle_errors
def index_show(fmt, **kw):
    """Describe cached indexes: release, arch, packages, so: provides, signer,
    the trusted key that verified it, age.

    Without --index, --repo, --alpine or --root: every index cached from a
    URL (index files on disk are read in place). Reads only the cache; never
    touches the network.
    """
    from ..api import index_cache, trusted_keys
    from ..cachedir import default_cache_dir
    from ..apk.fetch import describe_keys, index_info
    from ..diagnostics import Diagnostics

    locations, root, arch, sources = _index_locations(kw, allow_all=True)
    cache = index_cache(sources, Diagnostics(warning=Reporter().warning))
    try:
        infos = describe_keys(index_info(locations, cache), trusted_keys(root, arch, sources))
    finally:
        if cache is not None:
            cache.close()
    _print_infos(infos, fmt, none=f"no downloaded index cached in {os.path.join(default_cache_dir(sources.cache_dir), 'index')}")


@ordered_options
@index.command("update", context_settings=CONTEXT, short_help="Fetch the named indexes now and verify them.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help=f"{FORMAT_HELP}. text: a block an index; json: a JSON list of objects, one an index.")
@source_options(only=SELECT + ("keys-dir", "allow-untrusted", "cache-dir"), scope="index")
@handle_errors
def index_update(fmt, **kw):
    """Fetch the named indexes now (a conditional request when cached) and verify them."""
    from ..api import index_cache, trusted_keys
    from ..apk.fetch import FetchOptions, describe_keys, update_indexes
    from ..diagnostics import Diagnostics

    diag = Diagnostics(warning=Reporter().warning)
    locations, root, arch, sources = _index_locations(kw, allow_all=False)
    cache = index_cache(sources, diag)
    keys = trusted_keys(root, arch, sources)
    try:
        infos = update_indexes(locations, keys, FetchOptions(cache=cache, allow_untrusted=sources.allow_untrusted,
                                                             diag=diag))
    finally:
        if cache is not None:
            cache.close()
    _print_infos(describe_keys(infos, keys), fmt)


@index.command("clear", context_settings=CONTEXT)
@source_options(only=("cache-dir",))
@handle_errors
def index_clear(cache_dir):
    """Drop every cached index."""
    from ..cachedir import default_cache_dir
    from ..apk.indexcache import clear_cache

    directory = default_cache_dir(cache_dir)
    removed = clear_cache(directory)
    click.echo(f"cleared {os.path.join(directory, 'index')}" if removed else f"nothing cached in {directory}")
