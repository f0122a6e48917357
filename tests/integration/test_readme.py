"""The README's SDK example runs as written against a real gateway."""

import re
from pathlib import Path

from tests.support.exchange import publish

README = Path(__file__).resolve().parents[2] / "README.md"


def _sdk_example() -> str:
    text = README.read_text()
    section = text[text.index("## SDK\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_sdk_example_runs(network, tmp_path, monkeypatch):
    publish(network.agency("gd-health"), "hospital-beds")
    code = _sdk_example()
    code = code.replace('"127.0.0.1:8443"', repr(network.target))
    code = code.replace('"net/certs/sz-market"', repr(str(network.layout.certs("sz-market"))))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})  # the documented example, as written
    assert (tmp_path / "beds.csv").read_bytes() == b"region,beds,doctors\n1,2,3\n"
