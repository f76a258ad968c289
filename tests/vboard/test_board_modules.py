"""The emulated board modules and flash of the virtual esp32 and Pico W, on the real unix port:
what board code sees of machine, network, sys and os, and a LittleFS filesystem on the emulated
NOR flash mounted at / (nothing of the host visible), its errors and its wear."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.boards import load_profile, micropython_cmd
from tools.vboard import VirtualBoard
from tools.vboard_flash import FlashImage

BIN = Path(sys.executable).parent


def run_on(board, chip_dir, code, **kw):
    """Run `code` on the emulated board (flash mounted at /); return (returncode, stdout lines)."""
    script = Path(chip_dir).parent / ("script_%s.py" % board)
    script.write_text(textwrap.dedent(code))
    image = FlashImage(chip_dir, load_profile(board))
    argv, env = micropython_cmd(board, script, flash=image, **kw)
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=chip_dir)
    return p.returncode, p.stdout.splitlines(), p.stderr


def json_lines(lines):
    return [json.loads(x) for x in lines if x.startswith("{")]


@pytest.mark.parametrize("board, platform, machine, uid_len", [
    ("esp32", "esp32", "Generic ESP32 module with ESP32", 6),
    ("rp2040", "rp2", "Raspberry Pi Pico W with RP2040", 8),
])
def test_sys_os_and_machine_report_the_board(tmp_path, board, platform, machine, uid_len):
    rc, out, err = run_on(board, tmp_path / "chip", """
        import sys, os, json, machine
        u = os.uname()
        print(json.dumps({"platform": sys.platform, "machine": sys.implementation._machine,
                          "sysname": u.sysname, "umachine": u[4], "uid": machine.unique_id().hex(),
                          "cause": machine.reset_cause(), "cwd": os.getcwd(), "ls": os.listdir("/")}))
    """)
    assert rc == 0, err
    (r,) = json_lines(out)
    assert r["platform"] == platform and r["sysname"] == platform
    assert r["machine"] == machine and r["umachine"] == machine
    assert len(bytes.fromhex(r["uid"])) == uid_len
    assert r["cause"] == 1                       # PWRON_RESET on both ports
    assert r["cwd"] == "/" and r["ls"] == []     # a blank flash, formatted at first boot
    if board == "esp32":
        assert r["uid"].startswith("240ac4")     # a MAC in Espressif's OUI
    # the id belongs to the board: the same on the next boot
    rc, out2, _ = run_on(board, tmp_path / "chip", "import machine\nprint(machine.unique_id().hex())\n")
    assert out2 == [r["uid"]]


def test_the_host_filesystem_is_not_visible(tmp_path):
    rc, out, err = run_on("esp32", tmp_path / "chip", """
        import os
        for p in ("/etc/passwd", "/tmp", "/usr/lib"):
            try:
                os.stat(p)
                print("visible", p)
            except OSError as e:
                print("hidden", e.errno)
    """)
    assert rc == 0, err
    assert out == ["hidden 2", "hidden 2", "hidden 2"]   # ENOENT: only the flash is mounted


def test_a_full_flash_raises_enospc_and_loses_nothing(tmp_path):
    # vfs is 960 KiB on the esp32 OTA layout: 1.2 MB cannot fit.
    rc, out, err = run_on("esp32", tmp_path / "chip", """
        import os
        with open("keep.txt", "w") as f:
            f.write("precious")
        buf = bytes(4096)
        try:
            with open("big.bin", "wb") as f:
                for i in range(300):
                    f.write(buf)
            print("fit")
        except OSError as e:
            print("error", e.errno)
        os.remove("big.bin")
        print(open("keep.txt").read())
        with open("after.txt", "w") as f:
            f.write("ok")
        print(open("after.txt").read())
    """)
    assert rc == 0, err
    assert out == ["error 28", "precious", "ok"]    # ENOSPC, as LittleFS reports it on a board


def test_wear_is_counted_per_erase_block(tmp_path):
    image = FlashImage(tmp_path / "chip", load_profile("esp32"))
    rc, _, err = run_on("esp32", tmp_path / "chip", """
        with open("data.bin", "wb") as f:
            f.write(bytes(40960))
    """)
    assert rc == 0, err
    wear = image.fs_wear()
    assert len(wear) == 240                      # 960 KiB of 4 KiB blocks
    assert 10 <= sum(wear) <= 40                 # 10 data blocks at least, plus metadata
    # outside the filesystem only the first boot's two erases: the emulated bootloader writes the
    # stock image into ota_0 (one sector) and otadata[0] (vb_esp32boot.py)
    assert sum(image.wear()) == sum(wear) + 2
    assert (image.root / "data.bin").read_bytes() == bytes(40960)


@pytest.mark.parametrize("board, codes", [
    ("esp32", {"idle": 1000, "bad": 202, "noap": 201, "ok": 1010}),
    ("rp2040", {"idle": 0, "bad": -3, "noap": -2, "ok": 3}),
])
def test_wlan_connects_and_fails_like_the_port(tmp_path, board, codes):
    wifi = json.dumps({"aps": [{"ssid": "lab", "password": "secret", "rssi": -61}], "connect_ms": 50})
    rc, out, err = run_on(board, tmp_path / "chip", """
        import network, time, json
        w = network.WLAN(network.STA_IF)
        w.active(True)
        r = {"idle": w.status()}
        for name, ssid, key in (("bad", "lab", "wrong"), ("noap", "other", "secret"), ("ok", "lab", "secret")):
            w.connect(ssid, key)
            r[name + "_now"] = w.isconnected()
            time.sleep_ms(80)
            r[name] = w.status()
        r["rssi"] = w.status("rssi")
        r["ip"] = w.ifconfig()[0]
        print(json.dumps(r))
    """, wifi=wifi)
    assert rc == 0, err
    (r,) = json_lines(out)
    assert {k: r[k] for k in codes} == codes
    assert r["ok_now"] is False                  # connecting takes connect_ms
    assert r["rssi"] == -61 and r["ip"] == "192.168.4.23"


def test_timer_one_shot_calls_back(tmp_path):
    rc, out, err = run_on("esp32", tmp_path / "chip", """
        import machine, time
        hits = []
        t = machine.Timer(0)
        t.init(mode=machine.Timer.ONE_SHOT, period=30, callback=lambda tm: hits.append(tm is t))
        time.sleep_ms(100)
        for _ in range(3):
            pass
        print(hits)
        try:
            machine.Timer(7)
        except ValueError:
            print("no timer 7")
    """)
    assert rc == 0, err
    assert out == ["[True]", "no timer 7"]


def test_the_hal_of_the_board_runs_on_it(tmp_path):
    hal = Path(__file__).resolve().parents[2] / "boards" / "esp32" / "hal.py"
    (tmp_path / "hal").mkdir()
    (tmp_path / "hal" / "janua_hal.py").write_text(hal.read_text())
    rc, out, err = run_on("esp32", tmp_path / "chip", """
        import janua_hal, json
        ip = janua_hal.connect_network({"wifi": {"ssid": "janua-vboard", "password": "janua-vboard"}})
        try:
            janua_hal.connect_network({"wifi": {"ssid": "janua-vboard", "password": "nope", "timeout": 0.3}})
            bad = "connected"
        except OSError as e:
            bad = str(e)
        st = janua_hal.security_state()
        print(json.dumps({"board": janua_hal.board(), "ip": ip, "code": janua_hal.reset_code(),
                          "rssi": janua_hal.rssi(), "bad": bad, "sec": [st[0], st[1].hex()]}))
    """, mount="/flash", path=[tmp_path / "hal"])
    assert rc == 0, err
    (r,) = json_lines(out)
    # still connected from the first call: the second does not reconnect (the hal checks isconnected)
    # security_state: the classic ESP32's eFuse words as an unfused chip has them (flags 8: read, nothing on)
    assert r == {"board": "esp32", "ip": "192.168.4.23", "code": 1, "rssi": -55, "bad": "connected",
                 "sec": [8, "0000000000000000"]}


def mpremote(port, *args):
    return subprocess.run([str(BIN / "mpremote"), "connect", port, *args],
                          capture_output=True, text=True, timeout=30)


def test_mpremote_fs_ls_lists_only_the_flash(tmp_path):
    local = tmp_path / "hello.txt"
    local.write_text("hi")
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        r = mpremote(vb.port, "fs", "cp", str(local), ":hello.txt", "+", "fs", "mkdir", "lib", "+", "fs", "ls", "/")
        assert r.returncode == 0, r.stderr
    # mpremote prints "ls :/" then one "<size> <name>" line per entry
    listed = [line.split()[-1] for line in r.stdout.splitlines() if line[:1] == " " or line[:1].isdigit()]
    assert sorted(listed) == ["hello.txt", "lib/"]


@pytest.mark.parametrize("board, cause", [("esp32", 5), ("rp2040", 3)])
def test_machine_reset_reboots_with_the_ports_reset_cause(tmp_path, board, cause):
    # esp32: machine.reset() is esp_restart(), reported as SOFT_RESET (5); rp2: a watchdog reboot,
    # reported as WDT_RESET (3) (ports/*/modmachine.c).
    with VirtualBoard(board, tmp_path / "flash") as vb:
        r = mpremote(vb.port, "reset")      # mpremote runs machine.reset() and does not wait
        assert r.returncode == 0, r.stderr
        vb._wait(lambda: ("hard", -9) in vb.resets, 5)
        assert ("hard", -9) in vb.resets
        r = mpremote(vb.port, "exec", "import machine; print(machine.reset_cause())")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(cause)


def test_watchdog_resets_a_stuck_board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        r = mpremote(vb.port, "exec", "--no-follow",
                     "import machine, time\nw = machine.WDT(timeout=200)\nwhile True:\n    time.sleep_ms(50)\n")
        vb._wait(lambda: any(kind == "hard" for kind, _ in vb.resets), 5)
        r = mpremote(vb.port, "exec", "import machine; print(machine.reset_cause())")
        assert r.stdout.strip() == "3"           # WDT_RESET
        assert any(kind == "hard" for kind, _ in vb.resets)


def test_a_power_cut_mid_write_keeps_the_filesystem_mountable(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        (vb.root / "old.txt").write_text("old")
        vb.arm_cut(5)
        mpremote(vb.port, "exec", "--no-follow", "f = open('new.bin', 'wb')\nf.write(bytes(20000))\nf.close()")
        vb._wait(lambda: vb.resets and vb.resets[-1][0] == "cut", 5)
        assert not vb.running
        assert vb.resets[-1][0] == "cut"
        vb.restart()
        r = mpremote(vb.port, "exec", "import os; print(open('old.txt').read(), 'new.bin' in os.listdir())")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == "old"


def test_mpremote_mip_installs_onto_the_flash(tmp_path):
    # mip from a package index served here (the public index is not reachable from this machine).
    import functools
    import http.server
    import threading
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "hello.py").write_text("GREETING = 'hello from mip'\n")
    (site / "package.json").write_text(json.dumps({"urls": [["hello.py", "pkg/hello.py"]], "version": "1.0"}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            url = "http://127.0.0.1:%d/package.json" % srv.server_address[1]
            r = mpremote(vb.port, "mip", "install", url)
            assert r.returncode == 0, r.stdout + r.stderr
            r = mpremote(vb.port, "exec", "import hello; print(hello.GREETING)")
            assert r.stdout.strip() == "hello from mip"
            assert (vb.root / "lib" / "hello.py").is_file()
    finally:
        srv.shutdown()


def test_rp2_flash_is_the_filesystem_region(tmp_path):
    rc, out, err = run_on("rp2040", tmp_path / "chip", """
        import rp2
        f = rp2.Flash()
        print(f.ioctl(4, 0), f.ioctl(5, 0), rp2.country(), rp2.bootsel_button())
        with open("x.txt", "w") as fh:
            fh.write("on the flash")
        # LittleFS's superblock is in block 0 or 1 of the region; its magic string is "littlefs"
        b = bytearray(4096)
        found = False
        for n in (0, 1):
            f.readblocks(n, b)
            found = found or b"littlefs" in b
        print(found)
    """)
    assert rc == 0, err
    assert out == ["212 4096 XX 0", "True"]     # 848 KiB / 4 KiB blocks


@pytest.mark.parametrize("board", ["esp32", "rp2040"])
def test_the_emulation_fits_in_its_heap_allowance(tmp_path, board):
    # The emulation's own objects are not the board's heap: the shim warns when they outgrow the
    # extra heap the interpreter gets for them (the board code would then see less than the profile).
    rc, out, err = run_on(board, tmp_path / "chip", "import gc\ngc.collect()\nprint(gc.mem_free())\n")
    assert rc == 0, err
    assert not any("more than its allowance" in line for line in out), out
    assert int(out[-1]) >= 0.9 * load_profile(board)["heap_bytes"]

