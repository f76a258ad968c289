"""Shared pytest setup: the hardware-in-loop option and marker."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--board-port", default=None,
                     help="serial port of a real board for hardware-in-loop tests (marker hil)")
    parser.addoption("--board", default="esp32", help="profile of the board at --board-port")
    parser.addoption("--hil-wifi-ssid", default=None, help="Wi-Fi network the board joins (hil end to end)")
    parser.addoption("--hil-wifi-password", default=None, help="its password")
    parser.addoption("--hil-host-ip", default=None, help="this host's address on that network")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--board-port"):
        return
    skip = pytest.mark.skip(reason="hardware-in-loop: needs --board-port /dev/ttyACM0")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def board_port(request):
    return request.config.getoption("--board-port")
