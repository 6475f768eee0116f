"""The ``tollgate`` command: serve the gateway, run a simulated engine, manage tenants and keys."""

from __future__ import annotations

import typer

from .admin_cmds import admin_app, keys_app, tenants_app
from .ledger_archive import ledger_archive
from .moderation_cmds import moderation_app
from .pricing_cmds import pricing_app
from .report_cmds import ledger_app, limits_app, report
from .rollout_cmds import router_app  # the router group, with its rollout commands
from .run_cmds import engine_sim, serve

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("serve")(serve)
app.command("engine-sim", add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(engine_sim)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_app, name="admin")
app.add_typer(pricing_app, name="pricing")
app.add_typer(router_app, name="router")
app.add_typer(limits_app, name="limits")
app.add_typer(moderation_app, name="moderation")
ledger_app.command("archive")(ledger_archive)
app.add_typer(ledger_app, name="ledger")
app.command("report")(report)


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="tollgate")
