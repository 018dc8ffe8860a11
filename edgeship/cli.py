"""The `edgeship` command: a thin click group.

Subcommands live in ``edgeship/commands/<name>.py`` and are imported only when invoked, so
`edgeship devices` never pays for torch or litert-torch imports.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from edgeship import __version__
from edgeship.errors import EdgeshipError

# command name -> "module:attribute" of a click command, loaded on first use.
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("edgeship.commands.export:export_command", "Export a HF checkpoint to a .litertlm bundle."),
    "inspect": ("edgeship.commands.export:inspect_command", "Show a build's sections, PLE facts, params."),
    "testing": ("edgeship.commands.testing:testing_group", "Test helpers: generate tiny checkpoints."),
    "vdevice": ("edgeship.commands.vdevice:vdevice_group", "Virtual Android devices that speak adb."),
    "devices": ("edgeship.commands.devices:devices_command", "List every device on every adb server."),
    "push": ("edgeship.commands.push:push_command", "Push a bundle to devices, section by section."),
    "gc": ("edgeship.commands.push:gc_command", "Remove old bundles and leftovers from devices."),
    "probe": ("edgeship.commands.probe:probe_group", "Build the native memory probe."),
    "runner": ("edgeship.commands.runner:runner_group", "Runner helpers: parse saved runner logs."),
    "profile": ("edgeship.commands.profile:profile_command", "Profile a bundle on devices."),
    "fit": (
        "edgeship.commands.fit:fit_command",
        "Fit curve: decode speed at decreasing available memory, the knee and the kill point.",
    ),
    "report": (
        "edgeship.commands.report:report_command",
        "Per-device report (HTML, Markdown, JSON) of profiles.",
    ),
    "gate": ("edgeship.commands.gate:gate_command", "Fail CI on a latency or memory regression."),
    "plan": ("edgeship.commands.plan:plan_command", "Predict a bundle's resident memory and fit per device."),
    "verify": (
        "edgeship.commands.verify:verify_command",
        "Check a bundle's accuracy against its checkpoint.",
    ),
    "quantize": ("edgeship.commands.quantize:quantize_command", "Re-quantize a float build per section."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("edgeship.commands"):
                return None  # a room not built yet
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from COMMANDS so that `edgeship --help` imports nothing heavy.
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeship")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edgeship: from an LLM checkpoint to a measured deployment on Android phones."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point: map EdgeshipError to a one-line message and its exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edgeship", standalone_mode=False)
    except EdgeshipError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"edgeship: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("edgeship: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("edgeship: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        # Disk full, permission denied... are user-facing conditions, not bugs.
        if debug:
            traceback.print_exc()
        click.echo(f"edgeship: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
