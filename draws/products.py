"""Names and layout of a Pipeline run's products (spec §4).

One run of OUS uid://X1/X1/Xb0 in 2015.1.00657.S at 2018-07-24T09:49:20.902::

    2015.1.00657.S_2018_07_24T09_49_20.902/            products_dir()
    └── SOUS/GOUS/uid___X1_X1_Xb0/products/            products_path()
        ├── pl-report-X1-X1-Xb0-2018-07-24T09:49:20.902.xml
        ├── product-{0..4}-X1-X1-Xb0-2018-07-24T09:49:20.902.data
        └── weblog-X1-X1-Xb0-2018-07-24T09:49:20.902.zip
"""

import re
from pathlib import PurePosixPath

from .exceptions import InvalidRequest
from .ous import encode_uid, file_uid, show

PRODUCT_COUNT = 5
# A plain file or directory name as it may come in a message: no separators,
# no "..", no leading "-" (so it can never be read as a command-line option).
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+=-]{0,254}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$")


def check_name(name):
    """NAME if it is a plain, safe file or directory name; InvalidRequest otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidRequest(f"{show(name)} is not a plain file or directory name")
    return name


def check_timestamp(ts):
    if not isinstance(ts, str) or not TIMESTAMP_RE.match(ts):
        raise InvalidRequest(f"{show(ts)} is not a timestamp like 2018-07-24T09:49:20.902")
    return ts


def products_dir(progid, timestamp):
    """2015.1.00657.S_2018_07_24T09_49_20.902"""
    return f"{progid}_{timestamp.replace('-', '_').replace(':', '_')}"


def products_path(uid):
    """The path of the products folder inside a products directory."""
    return PurePosixPath("SOUS", "GOUS", encode_uid(uid), "products")


def report_name(uid, timestamp):
    return f"pl-report-{file_uid(uid)}-{timestamp}.xml"


def product_names(uid, timestamp):
    return [f"product-{i}-{file_uid(uid)}-{timestamp}.data" for i in range(PRODUCT_COUNT)]


def weblog_stem(uid, timestamp):
    return f"weblog-{file_uid(uid)}-{timestamp}"


def weblog_name(uid, timestamp):
    return weblog_stem(uid, timestamp) + ".zip"
