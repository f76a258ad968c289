"""The bulk provisioning reader (tools/provision_bulk.py read_rows, tools/provision.py to_api_row): a CSV with a header
row, or JSON lines, as a factory operator's spreadsheet writes them. An input is the file's bytes.
Documented: CLIError for a file that cannot be read as rows (one `janua:` line), and per row a
ValueError yielded in place of the row; rows that come out are dicts the API takes
(to_api_row must not fail on them).
"""

import os

from fuzz.harness import check
from tools.errors import CLIError
from tools.provision import to_api_row
from tools.provision_bulk import read_rows

ALLOWED = (CLIError,)


def make(workdir):
    path = os.path.join(workdir, "devices.csv")

    def one_input(data):
        with open(path, "wb") as f:
            f.write(data)
        for n, row in read_rows(path):
            check(type(n) is int and n >= 1, f"line number {n!r}")
            if isinstance(row, ValueError):
                continue
            check(isinstance(row, dict), f"row {row!r}")
            to_api_row(row)

    return one_input


def seeds(workdir):
    return [
        b"serial_number,model_id,tags,permissions\nSN-1,m1,a;b,0x0f\nSN-2,m2,,15\n",
        b"serial_number,group,location,trust_level\r\nSN-3,g,\"Hall 2, bay 4\",40\r\n",
        b'{"serial_number": "SN-4", "tags": ["x"], "permissions": 3}\n{"serial_number": "SN-5"}\n',
        b'{"serial_number": "SN-6", "metadata": {"group": "g"}}\n\n[1]\n',
        b"serial_number\nSN-7,extra\n",
    ]
