"""``guanxi plugin new channel NAME``: write a third-party channel plugin package to start from.

The package (``guanxi-<name>/``) installs and passes its own tests as written: a ``pyproject.toml``
with the ``guanxi`` entry point, settings, the adapter, the webhook route (core's base route with
a body HMAC, messages and delivery receipts), a table with its first migration, the hook
implementations, a README, and tests with a fake provider and the channel contract suite. The
templates are in ``guanxi/cli/templates/channel/`` (``*.tmpl``, with ``{{name}}``-style holes).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from guanxi.core.hooks.manager import installed_plugins

TEMPLATES = Path(__file__).parent / "templates" / "channel"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def placeholders(name: str) -> dict[str, str]:
    """The values of the templates' holes for a plugin name (``acme_sms``)."""
    words = name.split("_")
    return {
        "name": name,
        "NAME": name.upper(),
        "Name": "".join(w.capitalize() for w in words),
        "Header": "-".join(w.capitalize() for w in words),
        "package": f"guanxi_{name}",
        "dist": f"guanxi-{name.replace('_', '-')}",
        "host": name.replace("_", "-"),
    }


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{[A-Za-z]+\}\}", text)
    if left is not None:
        raise click.ClickException(f"template hole {left.group()} left unfilled")
    return text


def write_channel_package(name: str, directory: Path) -> Path:
    """Write the package for channel ``name`` into ``directory``; return its folder. Refuses a bad
    name, a name an installed plugin has, or a folder that exists."""
    if not NAME.match(name):
        raise click.BadParameter(f"{name!r}: a plugin name is lower snake case, 1 to 32 characters (^[a-z][a-z0-9_]{{0,31}}$)")
    if name in installed_plugins():
        raise click.BadParameter(f"{name!r} is already the name of an installed plugin")
    values = placeholders(name)
    root = directory / values["dist"]
    if root.exists():
        raise click.ClickException(f"{root} already exists; nothing was written")
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")  # drop .tmpl
        parts = [values["package"] if p == "package" else p for p in relative.parts]
        if parts[-1] == "test_channel.py":
            parts[-1] = f"test_{name}.py"
        if parts[-1] == "0001_contacts.py":
            parts[-1] = f"{name}_0001_contacts.py"
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
    return root


@click.group()
def plugin() -> None:
    """Start a new plugin."""


@plugin.group()
def new() -> None:
    """Write a new plugin package from a template."""


@new.command("channel")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="where to create the package folder",
)
def channel(name: str, directory: Path) -> None:
    """Write a third-party channel plugin package NAME (lower snake case) that installs and passes
    its own tests: pyproject with the entry point, settings, adapter, webhook route, a table and
    its migration, tests running the channel contract suite, and a README."""
    root = write_channel_package(name, directory)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    click.echo(f"wrote {root}/ ({len(files)} files):")
    for f in files:
        click.echo(f"  {f}")
    click.echo(f"next: uv pip install -e '{root}[test]' && (cd {root} && pytest)")


def register(group: click.Group) -> None:
    """Add these commands to the ``guanxi`` group."""
    group.add_command(plugin)
