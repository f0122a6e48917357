"""The gateway process's set-up by `govshare gateway serve`."""

import platform

import pytest

from gateway.cli import serve


def test_the_gateway_process_keeps_one_malloc_arena():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert serve.one_malloc_arena() is False
        pytest.skip("malloc arenas are glibc's: elsewhere the gateway leaves malloc as it is")
    assert serve.one_malloc_arena() is True
