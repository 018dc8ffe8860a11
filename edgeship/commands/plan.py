"""`edgeship plan BUILD_DIR [--device SERIAL | --ram 6GB | --device-profile NAME] [--context N]`: fit?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.errors import UsageError, check_command

if TYPE_CHECKING:
    from edgeship.profiles.planner import Budget


@click.command("plan")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--device", "-s", "serials", multiple=True, help="A connected device (its RAM read live; repeatable)."
)
@click.option("--ram", "rams", multiple=True, help="A phone's RAM, e.g. 6GB or 8GiB (repeatable).")
@click.option(
    "--device-profile", "device_profiles", multiple=True, help="A virtual device profile's RAM (repeatable)."
)
@click.option(
    "--context",
    type=int,
    default=None,
    help="Tokens of context the app runs at, all distinct for the PLE table (default: cache length).",
)
@click.option(
    "--runner", default=None, help="Calibration to use: '<runner name> <version>' (default: the first)."
)
@output_options
@check_command
def plan_command(
    build_dir: Path,
    serials: tuple[str, ...],
    rams: tuple[str, ...],
    device_profiles: tuple[str, ...],
    context: int | None,
    runner: str | None,
    out: Output,
) -> None:
    """Predict BUILD_DIR's resident memory term by term and whether it fits each device named."""
    from edgeship.profiles.planner import budget_for, load_calibrations, plan_build, read_build_facts
    from edgeship.profiles.planner.render import plan_table
    from edgeship.profiles.quantities import parse_size

    build = read_build_facts(build_dir)
    if context is not None and context < 1:
        raise UsageError(f"--context must be at least 1, not {context}")
    if context is not None and build.cache_length and context > build.cache_length:
        raise UsageError(
            f"--context {context} is past the bundle's KV cache of {build.cache_length} positions "
            "(fixed at export: re-export with a larger cache length)"
        )
    if runner is not None and runner not in load_calibrations():
        known = ", ".join(repr(key) for key in load_calibrations())
        raise UsageError(f"--runner {runner!r} has no calibration (known: {known})")
    budgets = [budget_for(f"{text} phone", parse_size(text, "--ram")) for text in rams]
    budgets += [_profile_budget(name) for name in device_profiles]
    budgets += _device_budgets(serials)
    plan = plan_build(build, runner=runner, distinct_tokens=context, budgets=tuple(budgets))

    def human() -> None:
        out.print(plan_table(plan, str(build_dir)))
        lines = [*plan.notes, *(f"{b.name}: {plan.verdict(b)} ({_usable(b)})" for b in plan.budgets)]
        if plan.budgets:
            lines.append(f"({plan.budgets[0].rule})")
        for line in lines:
            out.line(line)

    out.result(plan.to_dict(), human)


def _usable(budget: Budget) -> str:
    from edgeship.units import format_decimal_bytes

    text = f"usable {format_decimal_bytes(budget.usable)} of {format_decimal_bytes(budget.ram_total)}"
    if budget.available_now is not None:
        text += f", {format_decimal_bytes(budget.available_now)} available now"
    return text


def _profile_budget(name: str) -> Budget:
    from edgeship.errors import EdgeshipError
    from edgeship.profiles.planner import budget_for
    from edgeship.vdevice import list_profiles, load_profile

    try:
        profile = load_profile(name)
    except (EdgeshipError, OSError) as exc:
        names = ", ".join(p.name for p in list_profiles())
        raise UsageError(f"--device-profile {name!r}: {exc} (known: {names})") from None
    return budget_for(f"{profile.name} ({profile.model})", int(profile.ram_bytes))


def _device_budgets(serials: tuple[str, ...]) -> list[Budget]:
    if not serials:
        return []
    from edgeship.android_harness.adb import device_facts, select_devices
    from edgeship.config import load_config
    from edgeship.errors import DeviceError
    from edgeship.profiles.planner import budget_for

    budgets = []
    for device in select_devices(load_config(), serials, False, (), ()):
        facts = device_facts(device)
        if not facts.ram_total:
            raise DeviceError(f"{device.serial} did not report its RAM (/proc/meminfo MemTotal)")
        budgets.append(
            budget_for(f"{facts.model or 'device'} ({facts.serial})", facts.ram_total, facts.ram_available)
        )
    return budgets
