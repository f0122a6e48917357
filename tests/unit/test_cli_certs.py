"""``govshare certs``: every command end to end through click, plus help text and errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from certs import CertificateAuthority, crl_number, is_revoked, verify_chain
from gateway.cli.certs import certs


def run(*args: str | Path) -> Result:
    # A wide terminal, so rich never folds serials or URNs in the table.
    return CliRunner().invoke(certs, [str(arg) for arg in args], env={"COLUMNS": "200"})


def ok(*args: str | Path) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    ok("init", "--ca", tmp_path / "ca")
    return tmp_path / "ca"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_command_has_help_text() -> None:
    assert certs.help
    for name, command in certs.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"
        result = ok(name, "--help")
        assert result.output.strip() and "Usage:" in result.output
    assert set(certs.commands) == {
        "init",
        "issue-agency",
        "issue-gateway",
        "issue-staff",
        "issue-network-authority",
        "revoke",
        "crl",
        "list",
    }


def test_init_creates_a_ca(ca_dir: Path) -> None:
    assert {p.name for p in ca_dir.iterdir()} == {
        "ca.key",
        "ca.lock",
        "ca.pem",
        "crl.pem",
        "index.json",
    }
    assert CertificateAuthority.open(ca_dir).certificate.subject.rfc4514_string() == (
        "O=govshare,CN=govshare national root CA"
    )


def test_init_with_a_name(tmp_path: Path) -> None:
    ok("init", "--ca", tmp_path / "ca", "--name", "test root", "--days", "30")
    root = CertificateAuthority.open(tmp_path / "ca").certificate
    assert root.subject.rfc4514_string() == "O=govshare,CN=test root"


def test_errors_are_one_line_and_exit_1(ca_dir: Path) -> None:
    result = run("init", "--ca", ca_dir)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "refusing to overwrite" in line
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [
        ("revoke", "abcdef", "--ca", "{ca}"),
        ("revoke", "urn:govshare:agency:nobody", "--ca", "{ca}"),
        ("list", "--ca", "{ca}/../missing"),
    ],
)
def test_library_errors_become_one_line(ca_dir: Path, args: tuple[str, ...]) -> None:
    result = run(*(arg.format(ca=ca_dir) for arg in args))
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ")


@pytest.mark.parametrize(
    "args",
    [
        ("issue-agency", "Health Ministry"),
        ("issue-staff", "carol", "--role", "agency"),
        ("issue-gateway", "--ip", "localhost"),
    ],
)
def test_bad_arguments_are_usage_errors(
    ca_dir: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run(*args, "--ca", ca_dir, "--out", tmp_path / "out")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: Invalid value for")
    assert not (tmp_path / "out").exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("issue-agency", "o-one", "--out", "{tmp}/out", "--days", "999999999"), "9999-12-31"),
        (("issue-staff", "carol", "--role", "admin", "--out", "{tmp}/out", "--days", "0"), "1"),
        (("issue-gateway", "--out", "{tmp}/out", "--dns", ""), "not a DNS name"),
        (("issue-gateway", "--out", "{tmp}/out", "--dns", "gw..gov"), "not a DNS name"),
        (("issue-gateway", "--out", "{tmp}/out", "--dns", "-gw.gov"), "not a DNS name"),
        (("issue-gateway", "--out", "{tmp}/out", "--dns", "gw_1.gov"), "not a DNS name"),
        (("crl", "--days", "0"), "1"),
        (("crl", "--days", "99999999"), "9999-12-31"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2_and_write_nothing(
    ca_dir: Path, tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    before = snapshot(tmp_path)
    result = run(*(arg.format(tmp=tmp_path) for arg in args), "--ca", ca_dir)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: Invalid value for") and reason in line
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args", [("--name", ""), ("--name", "   "), ("--name", "x" * 65), ("--days", "99999999")]
)
def test_refused_init_is_one_line_and_creates_no_folder(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run("init", "--ca", tmp_path / "ca", *args)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: Invalid value for")
    assert not (tmp_path / "ca").exists()


def test_a_refused_issuance_can_be_retried(ca_dir: Path, tmp_path: Path) -> None:
    args = ("issue-agency", "o-one", "--ca", ca_dir, "--out", tmp_path / "o1")
    assert run(*args, "--days", "999999999").exit_code == 2
    ok(*args)
    assert len(CertificateAuthority.open(ca_dir).list()) == 2


def test_non_ascii_dns_names_are_idna_encoded(ca_dir: Path, tmp_path: Path) -> None:
    ok(
        "issue-gateway",
        "--ca",
        ca_dir,
        "--out",
        tmp_path / "gw",
        "--dns",
        "中国.gov",
        "--dns",
        "GW.Gov.",
    )
    san = load(tmp_path / "gw" / "tls.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["xn--fiqs8s.gov", "gw.gov"]


def test_an_unusable_out_folder_is_one_line_exit_2(ca_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("issue-agency", "o-one", "--ca", ca_dir, "--out", tmp_path / "file" / "out")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: cannot use") and "file" in line


def test_crl_renews_with_the_same_revocations(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    ok("revoke", "urn:govshare:agency:health-ministry", "--ca", ca_dir)
    ca = CertificateAuthority.open(ca_dir)
    before = ca.crl()
    result = ok("crl", "--ca", ca_dir, "--days", "30")
    renewed = ca.crl()
    assert crl_number(renewed) == crl_number(before) + 1
    assert [e.serial_number for e in renewed] == [e.serial_number for e in before]
    assert renewed.next_update_utc == renewed.last_update_utc + timedelta(days=30)
    [line] = result.output.strip().splitlines()
    assert str(ca_dir / "crl.pem") in line and str(renewed.next_update_utc) in line
    assert "2 revoked" in line and f"CRL number {crl_number(renewed)}" in line
    ok("crl", "--ca", ca_dir)
    assert ca.crl().next_update_utc == ca.crl().last_update_utc + timedelta(days=7)


def test_issue_agency(ca_dir: Path, tmp_path: Path) -> None:
    result = ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    assert "urn:govshare:agency:health-ministry" in result.output
    root = load(ca_dir / "ca.pem")
    for name in ("tls.pem", "signing.pem"):
        verify_chain(load(tmp_path / "a" / name), root)


def test_issue_agency_days(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a", "--days", "3")
    tls = load(tmp_path / "a" / "tls.pem")
    assert (tls.not_valid_after_utc - tls.not_valid_before_utc).days == 3


def test_issue_gateway(ca_dir: Path, tmp_path: Path) -> None:
    ok(
        "issue-gateway",
        "--ca",
        ca_dir,
        "--out",
        tmp_path / "gw",
        "--dns",
        "gw.gov",
        "--dns",
        "localhost",
        "--ip",
        "::1",
        "--name",
        "national",
    )
    san = load(tmp_path / "gw" / "tls.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["gw.gov", "localhost"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["::1"]
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:govshare:gateway:national"
    ]
    assert (tmp_path / "gw" / "signing.key").exists()


def test_issue_staff(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-staff", "carol", "--role", "auditor", "--ca", ca_dir, "--out", tmp_path / "s")
    assert {p.name for p in (tmp_path / "s").iterdir()} == {"ca.pem", "tls.key", "tls.pem"}


def test_issue_refuses_to_overwrite(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    result = run("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")


def test_revoke_and_list(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    ok("issue-agency", "tax-office", "--ca", ca_dir, "--out", tmp_path / "b")
    uri = "urn:govshare:agency:health-ministry"
    result = ok("revoke", uri, "--ca", ca_dir, "--reason", "keyCompromise")
    assert len(result.output.strip().splitlines()) == 2

    rows = json.loads(ok("list", "--ca", ca_dir, "--json").output)
    assert [(row["identity"], row["status"]) for row in rows] == [
        ("urn:govshare:agency:health-ministry", "revoked"),
        ("urn:govshare:agency:health-ministry", "revoked"),
        ("urn:govshare:agency:tax-office", "valid"),
        ("urn:govshare:agency:tax-office", "valid"),
    ]
    assert all(row["not_after"] for row in rows)
    assert rows[0]["reason"] == "keyCompromise" and rows[2]["revoked_at"] is None

    table = ok("list", "--ca", ca_dir).output
    assert "urn:govshare:agency:tax-office" in table
    assert table.count("revoked") == 2 and table.count("valid") == 2
    assert rows[0]["serial"] in table and rows[0]["not_after"][:10] in table

    ca = CertificateAuthority.open(ca_dir)
    assert is_revoked(load(tmp_path / "a" / "tls.pem"), ca.crl(), ca.certificate)
    assert not is_revoked(load(tmp_path / "b" / "tls.pem"), ca.crl(), ca.certificate)


def test_list_in_a_narrow_terminal_folds_every_column(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-agency", "health-ministry", "--ca", ca_dir, "--out", tmp_path / "a")
    ok("revoke", "urn:govshare:agency:health-ministry", "--ca", ca_dir, "--reason",
       "keyCompromise")
    result = CliRunner().invoke(certs, ["list", "--ca", str(ca_dir)], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(map(len, result.output.splitlines())) <= 40


def test_revoke_by_serial(ca_dir: Path, tmp_path: Path) -> None:
    ok("issue-staff", "carol", "--role", "admin", "--ca", ca_dir, "--out", tmp_path / "s")
    serial = f"{load(tmp_path / 's' / 'tls.pem').serial_number:x}"
    assert serial in ok("revoke", serial, "--ca", ca_dir).output
    ca = CertificateAuthority.open(ca_dir)
    assert is_revoked(load(tmp_path / "s" / "tls.pem"), ca.crl(), ca.certificate)
