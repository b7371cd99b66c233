"""The shape of the command line: the everyday verbs at the top, ``collection`` and ``model``
groups, each command with only the options that mean something to it, the previous release's
spellings still accepted with one deprecation line, and plugins adding commands."""

from __future__ import annotations

import argparse
import json
import logging
import re

import pytest

from m3retriever import plugins
from m3retriever.cli import RENAMED, build_parser, command_config, main
from m3retriever.components import clear_cache
from m3retriever.display import out
from m3retriever.plugin import hookimpl

MODEL_OPTIONS = ("--profile", "--device")
TENANT_OPTIONS = ("--tenant", "--tenant-field")


@pytest.fixture(autouse=True)
def fresh_plugins():
    plugins.reset_plugins()
    clear_cache()
    yield
    plugins.reset_plugins()
    clear_cache()


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _entries(help_text: str) -> list[str]:
    """The commands a ``--help`` lists (the 4-space indented lines under COMMAND)."""
    return re.findall(r"^    (\S+)", help_text, flags=re.MULTILINE)


def test_top_level_help_is_short_and_written_for_users(capsys):
    text = _help(capsys)
    entries = _entries(text)
    assert entries == ["ingest", "search", "delete", "eval", "tune", "serve-mcp", "collection", "model", "plugins", "demo"]
    assert len(entries) <= 12
    assert "add_commands" not in text and "``" not in text and ":mod:" not in text
    for old in RENAMED:  # the old spellings are accepted, not listed
        assert old not in entries


def test_groups_list_their_commands(capsys):
    assert _entries(_help(capsys, "collection")) == [
        "info", "renormalize", "copy", "snapshot", "restore", "add-branch", "warm-up", "defaults",
    ]
    assert _entries(_help(capsys, "model")) == ["finetune", "export-onnx"]
    assert _entries(_help(capsys, "collection", "defaults")) == ["show", "set", "clear"]


@pytest.mark.parametrize(
    ("path", "model", "tenant"),
    [
        ("ingest", True, True), ("search", True, True), ("delete", True, True), ("eval", True, True),
        ("tune", True, True), ("serve-mcp", True, True), ("collection renormalize", True, True),
        ("collection snapshot", False, False), ("collection restore", False, False),
        ("collection warm-up", False, False), ("collection defaults set", False, False),
        ("collection defaults clear", False, False), ("collection add-branch", True, False),
        ("model finetune", True, False),
    ],
)
def test_each_command_takes_only_the_options_that_mean_something_to_it(capsys, path, model, tenant):
    text = _help(capsys, *path.split())
    assert "--location" in text and "--collection" in text and "--config" in text
    for option in MODEL_OPTIONS:
        assert (option in text) is model, (path, option)
    for option in TENANT_OPTIONS:
        assert (option in text) is tenant, (path, option)


def test_commands_without_a_stored_collection_take_no_store_options(capsys):
    for path in (("model", "export-onnx"), ("plugins",)):
        text = _help(capsys, *path)
        assert "--location" not in text and "--tenant" not in text and "--device" not in text


def test_snapshot_refuses_a_tenant_option_it_does_not_take(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["collection", "snapshot", str(tmp_path / "s.snap"), "--tenant", "acme"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --tenant acme" in capsys.readouterr().err


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_every_old_spelling_names_a_command(old, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([old, "--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: m3retriever {RENAMED[old]} ")
    assert err == f"`m3retriever {old}` is now `m3retriever {RENAMED[old]}`; the old spelling goes away in the next release\n"


def test_old_spelling_gives_the_same_result_with_one_deprecation_line(config_file, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Paris is the capital of France.")
    assert main(["ingest", str(corpus), "--config", str(config_file), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["collection", "info", "--config", str(config_file), "--json"]) == 0
    new_out, new_err = capsys.readouterr()
    assert new_err == ""
    assert main(["-v", "info", "--config", str(config_file), "--json"]) == 0
    old_out, old_err = capsys.readouterr()
    assert json.loads(old_out) == json.loads(new_out)
    deprecation = "`m3retriever info` is now `m3retriever collection info`; the old spelling goes away in the next release"
    assert old_err.count(deprecation) == 1 and old_err.startswith(deprecation)


def test_old_spelling_of_an_error_keeps_its_error_line(tmp_path, capsys):
    missing = tmp_path / "nostore"
    assert main(["warm-up", "--location", str(missing), "--collection", "c"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "`m3retriever warm-up` is now `m3retriever collection warm-up`; the old spelling goes away in the next release"
    )
    assert err[1].startswith("error: no collection 'c' at") and len(err) == 2


def test_a_word_after_the_command_is_not_respelled(capsys):
    args = build_parser().parse_args(["search", "info"])  # a query that happens to be an old verb
    assert args.query == "info" and args.command == "search"
    assert capsys.readouterr().err == ""


# -- the register_commands hook --------------------------------------------------------------
class Hello:
    """A plugin adding ``hello`` (with the collection options) and ``collection hello-count``."""

    @hookimpl
    def register_commands(self, cli):
        cli.command("hello", self.hello, help="say hello to a collection", options=("store",), arguments=self.args)
        cli.command("collection hello-count", lambda args: 3, help="always 3")

    @staticmethod
    def args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name")

    @staticmethod
    def hello(args: argparse.Namespace) -> int:
        cfg = command_config(args)
        out(f"hello {args.name} from {cfg.collection}")
        return 0


def test_register_commands_adds_commands_from_a_plugin(capsys, monkeypatch):
    monkeypatch.delenv("M3R_COLLECTION", raising=False)
    plugins.get_plugin_manager().register(Hello(), name="hello")
    assert "hello" in _entries(_help(capsys))
    assert "hello-count" in _entries(_help(capsys, "collection"))
    assert main(["hello", "world", "--collection", "notes"]) == 0
    assert capsys.readouterr().out == "hello world from notes\n"
    assert main(["collection", "hello-count"]) == 3
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["hello"]["components"]["register_commands"] == ["hello", "collection hello-count"]


class Broken:
    """A plugin whose commands cannot be added: a taken name, a missing group, failing arguments."""

    @hookimpl
    def register_commands(self, cli):
        cli.command("ingest", lambda args: 0, help="takes the name of a built-in")
        cli.command("nogroup thing", lambda args: 0, help="in a group that does not exist")
        cli.command("crash", lambda args: 0, help="its arguments fail", arguments=self.fail)
        cli.command("fine", lambda args: 7, help="this one works")

    @staticmethod
    def fail(p: argparse.ArgumentParser) -> None:
        raise RuntimeError("boom")


def test_register_commands_broken_plugin_commands_are_warnings(capsys, caplog):
    plugins.get_plugin_manager().register(Broken(), name="broken")
    with caplog.at_level(logging.WARNING, logger="m3retriever.cli"):
        entries = _entries(_help(capsys))
    assert entries.count("ingest") == 1 and "fine" in entries and "crash" not in entries
    assert "plugin 'broken': command 'ingest' skipped: a command of that name exists already" in caplog.text
    assert "command 'nogroup thing' skipped: there is no group 'nogroup'" in caplog.text
    assert "command 'crash' skipped: its arguments failed: RuntimeError: boom" in caplog.text
    assert main(["fine"]) == 7


def test_register_commands_a_plugin_that_raises_is_skipped(capsys, caplog):
    class Raises:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError("cannot declare")

    plugins.get_plugin_manager().register(Raises(), name="raises")
    with caplog.at_level(logging.WARNING):
        assert _entries(_help(capsys))[:3] == ["ingest", "search", "delete"]
    assert "plugin 'raises': RuntimeError: cannot declare" in caplog.text
