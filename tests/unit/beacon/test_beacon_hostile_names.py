"""Finding 9: a device name from an anonymous join request is shown as plain text.

``[/]`` used to break `meshctl events` and `describe member` with a MarkupError;
terminal escapes and carriage returns are stripped where the name comes in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.testing import CliRunner

from meshctl.main import app
from reconciler.admission_records import record_join
from reconciler.beacon.events import JoinRequested
from reconciler.home import Home
from reconciler.poolinfo import PoolInfo
from reconciler.store import Store

if TYPE_CHECKING:
    from tests.unit.beacon.conftest import Lan

ADMIN = ("10.0.0.1", 42424)
PI = ("10.0.0.2", 42424)
HOSTILE = "[/]\x1b[2J\r[bold red]evil\u202e"


def test_a_markup_device_name_renders_as_text_everywhere(lan: Lan, home: Home) -> None:
    admin = lan.admin(ADMIN, "approve")
    pi = lan.joiner(PI, name=HOSTILE)
    pi.join(lan.now)
    lan.run(0.5)
    [event] = lan.of(ADMIN, JoinRequested)
    assert event.device_name == "[/][2J [bold red]evil"  # no ESC, CR or bidi override
    info = PoolInfo("home", lan.root.pool_id, lan.root.fingerprint, "admin")
    assert admin.admin is not None
    with Store.open(home.root) as store:
        name = record_join(store, info, admin.admin, event)
    assert name is not None
    runner = CliRunner()
    for args in (["events"], ["describe", "member", name], ["get", "members", "-o", "wide"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "\x1b" not in result.stdout and "\r" not in result.stdout
    described = runner.invoke(app, ["describe", "member", name]).stdout
    assert "[/][2J [bold red]evil" in described  # shown literally, not as markup
    assert "[/][2J [bold red]evil" in runner.invoke(app, ["events"]).stdout
