"""Fuzzing janua: host harnesses under atheris (fuzz/targets/), device harnesses on the MicroPython
unix port (fuzz/device.py), and the runner that runs them all (fuzz/run.py, `make fuzz`)."""
