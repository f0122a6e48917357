"""``govshare network`` end to end through click: a description built into a configuration,
signed by a network authority the CA issued from the command line, shown and verified, with
the exit codes scripts rely on (0 valid, 1 refused, 2 bad input)."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.v1 import network_pb2
from govshare.signing import SigningKey
from govshare.transparency.cosignature import CosignatureVerifier
from tests.support.federation import (
    AUDIT_KEY_FILE,
    NETWORK_ID,
    REGIONS,
    WITNESS_KEY_FILE,
    Federation,
    origin,
)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], env={"COLUMNS": "200"})


def ok(*args: str | Path) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def describe(net: Federation, address: str = "{id}.example.gov:8443", quorum: int = 1,
             audit: str = f'audit_verifier_key = "{{folder}}/{AUDIT_KEY_FILE}"') -> Path:
    """A description file listing every member of `net` by its folder and key files (`audit`
    names its audit log: the audit.vkey file by default)."""
    lines = [f'network_id = "{NETWORK_ID}"', f"quorum = {quorum}"]
    for gateway_id, regions in REGIONS.items():
        folder = Path("gateways") / gateway_id
        lines += ["", "[[members]]", f'id = "{gateway_id}"',
                  f"region_codes = {json.dumps(regions)}",
                  f'address = "{address.format(id=gateway_id)}"',
                  f'certificates = "{folder}"',
                  audit.format(folder=folder, origin=origin(gateway_id)),
                  f'witness_verifier_key = "{folder / WITNESS_KEY_FILE}"']
    path = net.root / "network.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def net(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


def signed(net: Federation, version: int, name: str | None = None, *,
           current: Path | None = None, **describe_options) -> Path:
    """Version `version` signed (above 1: as the successor of `current`)."""
    unsigned = net.root / f"{name or version}.unsigned.pb"
    out = net.root / f"{name or version}.pb"
    ok("network", "create", describe(net, **describe_options), "--ca", net.root / "ca",
       "--out", unsigned)
    ok("network", "sign", unsigned, "--authority", net.authority, "--version", version,
       *(("--current", current) if current else ()), "--out", out)
    return out


def test_every_command_has_help_text() -> None:
    group = cli.commands["network"]
    assert isinstance(group, click.Group) and group.help
    assert set(group.commands) == {"create", "sign", "show", "verify", "witness-key", "status"}
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"


def test_issue_network_authority_writes_a_signing_certificate_only(tmp_path: Path) -> None:
    ok("certs", "init", "--ca", tmp_path / "ca")
    result = ok("certs", "issue-network-authority", "cn-national", "--ca", tmp_path / "ca",
                "--out", tmp_path / "authority")
    assert "urn:govshare:network:cn-national" in result.output
    files = {path.name for path in (tmp_path / "authority").iterdir()}
    assert files == {"ca.pem", "signing.pem", "signing.key"}
    assert stat.S_IMODE((tmp_path / "authority" / "signing.key").stat().st_mode) == 0o600
    assert run("certs", "issue-network-authority", "CN", "--ca", tmp_path / "ca",
               "--out", tmp_path / "x").exit_code == 2


def test_create_sign_show_verify(net: Federation) -> None:
    path = signed(net, 1)
    shown = ok("network", "show", path).output
    assert "cn-national" in shown and "gd-gateway" in shown and "440000 440100" in shown
    assert "Not verified" in shown
    as_json = json.loads(ok("network", "show", path, "--json").output)
    assert as_json["version"] == "1" and len(as_json["members"]) == 3
    verified = ok("network", "verify", path, "--ca-certificate", net.root / "ca" / "ca.pem")
    assert "Valid: cn-national version 1, 3 members" in verified.output


def test_verify_refuses_a_replayed_version_with_exit_1(net: Federation) -> None:
    old = signed(net, 1)
    new = signed(net, 2, current=old)
    anchor = net.root / "ca" / "ca.pem"
    ok("network", "verify", new, "--ca-certificate", anchor, "--current", old)
    ok("network", "verify", new, "--ca-certificate", anchor, "--current", new)
    replayed = run("network", "verify", old, "--ca-certificate", anchor, "--current", new)
    assert replayed.exit_code == 1
    assert "NETWORK_CONFIGURATION_NOT_NEWER" in replayed.output


def test_sign_refuses_a_version_not_above_the_current(net: Federation) -> None:
    current = signed(net, 4, current=signed(net, 1))
    result = run("network", "sign", net.root / "4.unsigned.pb", "--authority", net.authority,
                 "--version", 3, "--current", current, "--out", net.root / "3.pb")
    assert result.exit_code == 1 and "not newer" in result.output
    assert not (net.root / "3.pb").exists()


def test_sign_refuses_a_version_above_1_without_the_current(net: Federation) -> None:
    signed(net, 1)
    result = run("network", "sign", net.root / "1.unsigned.pb", "--authority", net.authority,
                 "--version", 2, "--out", net.root / "2.pb")
    assert result.exit_code == 2
    assert "--version 2 needs --current" in result.output
    assert not (net.root / "2.pb").exists()


def test_verify_against_another_ca_is_refused(net: Federation, tmp_path: Path) -> None:
    path = signed(net, 1)
    ok("certs", "init", "--ca", tmp_path / "other")
    result = run("network", "verify", path, "--ca-certificate", tmp_path / "other" / "ca.pem")
    assert result.exit_code == 1
    assert "NETWORK_CONFIGURATION_SIGNATURE_INVALID" in result.output


def test_tampered_file_is_refused(net: Federation) -> None:
    path = signed(net, 1)
    message = network_pb2.SignedNetworkConfiguration.FromString(path.read_bytes())
    message.envelope.payload = message.envelope.payload.replace(b"8443", b"9443")
    path.write_bytes(message.SerializeToString())
    result = run("network", "verify", path, "--ca-certificate", net.root / "ca" / "ca.pem")
    assert result.exit_code == 1 and "does not verify" in result.output


def created(net: Federation, **describe_options) -> Result:
    return run("network", "create", describe(net, **describe_options), "--ca", net.root / "ca",
               "--out", net.root / "x.pb")


def test_create_derives_the_audit_verifier_key_from_the_origin(net: Federation) -> None:
    assert created(net, audit='audit_origin = "{origin}"').exit_code == 0
    members = network_pb2.NetworkConfiguration.FromString(
        (net.root / "x.pb").read_bytes()).members
    assert [m.audit_verifier_key for m in members] == [
        (net.folder(gateway_id) / AUDIT_KEY_FILE).read_text().strip() for gateway_id in REGIONS]


def test_create_says_each_gateway_sets_its_own_audit_origin(net: Federation) -> None:
    result = created(net, audit='audit_origin = "govshare.local/audit"')
    assert result.exit_code == 1
    assert "share audit_origin 'govshare.local/audit'" in result.output
    assert "each gateway sets its own [audit] origin" in result.output
    both = created(net, audit='audit_origin = "{origin}"\naudit_verifier_key = "k"')
    assert both.exit_code == 2 and "one of them" in both.output
    assert created(net, audit="").exit_code == 2


def test_create_says_the_member_id_is_the_certificates_gateway_id(net: Federation) -> None:
    shutil.rmtree(net.folder("sh-gateway"))
    net.add_gateway("sh-gateway", name="shanghai")  # issued with another --name
    result = created(net)
    assert result.exit_code == 1
    assert "certs issue-gateway --name sh-gateway" in result.output


def test_bad_input_exits_2(net: Federation) -> None:
    junk = net.root / "junk.pb"
    junk.write_bytes(b"\xff\xff not protobuf")
    anchor = net.root / "ca" / "ca.pem"
    assert run("network", "verify", junk, "--ca-certificate", anchor).exit_code == 2
    assert run("network", "verify", junk, "--ca-certificate", junk).exit_code == 2
    assert run("network", "show", net.root / "missing.pb").exit_code == 2
    description = net.root / "bad.toml"
    description.write_text('network_id = 7\n')
    result = run("network", "create", description, "--ca", net.root / "ca", "--out",
                 net.root / "x.pb")
    assert result.exit_code == 2 and "network_id must be text" in result.output


@pytest.mark.parametrize(("command", "says"), [
    (lambda net, unsigned: ("create", describe(net, quorum=2**32), "--ca", net.root / "ca"),
     "quorum must be a whole number from 0 to 99"),
    (lambda net, unsigned: ("sign", unsigned, "--authority", net.authority, "--version",
                            2**64), "1<=x<=18446744073709551615"),
    (lambda net, unsigned: ("sign", unsigned, "--authority", net.authority, "--version", 1,
                            "--hours", 10**9), "1<=x<=8784"),
], ids=["quorum-beyond-uint32", "version-beyond-uint64", "hours-beyond-a-year"])
def test_a_number_beyond_its_range_exits_2_saying_the_range(net: Federation, command,
                                                             says: str) -> None:
    """Numbers the configuration cannot carry (or dates it cannot reach) are bad input, not
    tracebacks: exit 2, naming the range allowed."""
    unsigned = net.root / "ok.unsigned.pb"
    ok("network", "create", describe(net), "--ca", net.root / "ca", "--out", unsigned)
    result = run("network", *command(net, unsigned), "--out", net.root / "x.pb")
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not (net.root / "x.pb").exists()


def test_create_refuses_a_region_served_twice(net: Federation) -> None:
    description = describe(net)
    description.write_text(description.read_text().replace('["310000"]', '["440100"]'))
    result = run("network", "create", description, "--ca", net.root / "ca", "--out",
                 net.root / "x.pb")
    assert result.exit_code == 1 and "share region_codes '440100'" in result.output


def test_create_refuses_a_quorum_of_zero_in_a_network_of_several(net: Federation) -> None:
    result = run("network", "create", describe(net, quorum=0), "--ca", net.root / "ca",
                 "--out", net.root / "x.pb")
    assert result.exit_code == 1
    assert "quorum is 0 in a network of 3 members" in result.output
    assert not (net.root / "x.pb").exists()


def test_network_text_is_shown_escaped(net: Federation) -> None:
    """An address with a terminal escape is refused; the refusal shows it escaped."""
    result = run("network", "create", describe(net, address="{id}\\u001b[2J:443"), "--ca",
                 net.root / "ca", "--out", net.root / "x.pb")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\\x1b" in result.output


def test_witness_key_writes_a_private_key_and_prints_its_verifier_key(tmp_path: Path) -> None:
    out = tmp_path / "witness.key"
    printed = ok("network", "witness-key", out, "--name", "gd-gateway-witness").output.strip()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert printed == CosignatureVerifier("gd-gateway-witness",
                                          SigningKey.load(out).verifier()).verifier_key
    assert run("network", "witness-key", out, "--name", "x").exit_code != 0  # never overwrites
    assert run("network", "witness-key", tmp_path / "k", "--name", "a+b").exit_code == 2


def test_create_lists_a_renewed_members_previous_signing_certificates(net: Federation) -> None:
    """After a member's certificates are issued again, the description names the new folder
    and lists the signing certificate before it with the time it was replaced."""
    renewed = Path("gateways") / "sh-gateway" / "renewed"
    net.ca.issue_gateway(net.root / renewed, "sh-gateway")
    retired = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    description = describe(net)
    text = description.read_text()
    listed = (f'certificates = "{renewed}"\nprevious_signing_certificates = [{{ certificate ='
              f' "gateways/sh-gateway/signing.pem", retire_time = {retired} }}]')
    description.write_text(text.replace('certificates = "gateways/sh-gateway"', listed))
    ok("network", "create", description, "--ca", net.root / "ca", "--out", net.root / "x.pb")
    created = network_pb2.NetworkConfiguration.FromString((net.root / "x.pb").read_bytes())
    member = created.members[2]
    assert [p.certificate_pem for p in member.previous_signing_certificates] == [
        (net.folder("sh-gateway") / "signing.pem").read_text()]

    description.write_text(text.replace('certificates = "gateways/sh-gateway"', listed.replace(
        f"retire_time = {retired}", f'retire_time = "{retired}"')))
    result = run("network", "create", description, "--ca", net.root / "ca", "--out",
                 net.root / "y.pb")
    assert result.exit_code == 2 and "a date-time with its offset" in result.output
